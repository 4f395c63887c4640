"""Mechanisms, not only scores: global, local-m, local-p, monotonic and hard attention on long
inputs, the score fixed, compared on accuracy per source length, alignment error rate and
cost (train steps per second and the train step's memory, summary.json's ``cost``).

    python -m experiments.sweep --sweep configs/sweeps/mechanisms.py:small \
        --root /tmp/mechanisms --max_parallel 2
    python -m experiments.report --root /tmp/mechanisms --out docs/mechanisms

Luong et al. (2015) trained on WMT'14 English-German with sentences of up to 50 words and
chose the window half-width D = 10 empirically; local-p with the ``general`` score was their
best single attentional model, and local attention was meant to be cheaper than global
attention, which scores every source word at every step. On the gold alignments of
RWTH's 508 English-German sentence pairs (their Table 6) the location-based global model
aligned worst, AER 0.39, against 0.34 for local-m (general) and 0.36 for local-p (general).

Here: the toy translation task (its gold alignment is known, so AER is exact) with sources
of 10 to 50 words (the grammar rarely goes past 45), a Luong decoder with input feeding,
``general`` scores (Luong's choice for local-p) and D = 10 (``model.local_window``). Axis:
``mechanism`` (``MECHANISMS``, i.e. ``attnlab.attention.mechanism_names()``); seeds vmapped
in each trial; the train step's memory is measured (``train.measure_memory``) and the
validation split evaluated five times per run, so metrics.jsonl holds learning curves.
Profiles: ``small`` (two CPU cores: the whole grid, two trials at a time, about 15 minutes,
estimated: the slowest trial, monotonic, used 250 CPU seconds), ``full`` (GPU / TPU:
Luong's sizes are out of reach, but a wider model, five times the data and twenty times the
steps), ``tiny`` (seconds, for tests); options ``seeds=N``, ``steps=N``, ``hard=gumbel``
(the hard trial trains with the straight-through Gumbel-softmax instead of REINFORCE).

Probe, ``small`` profile, seed 0 (test set, 1000 steps): global, local-m, monotonic and hard
with ``hard=gumbel`` reach exact match 1.0 at every length (AER 0.19, 0.25, 0.36 and 0.22;
validation exact match 0.97, 0.45, 0.99 and 0.96 at step 400); local-p 0.64 (0.99 up to 15
words, 0.22 at 26-30, 0 beyond 35; AER 0.31); hard with REINFORCE learns the target
language, not the alignment (token accuracy 0.36 against 0.12 for the most frequent word,
exact match 0, AER 0.92). Train steps per second are wall-clock rates: compare them across
trials run on the same, otherwise idle machine; the memory (XLA's analysis) does not depend
on the load.
"""

import os

from attnlab.defaults import apply_seeds_and_steps, load_config_file, parse_arg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The mechanisms compared (attnlab.attention.mechanism_names(), written out: configs are data;
# tests/experiments/test_mechanisms_sweep.py checks they agree), global, the reference, first.
MECHANISMS = ("global", "local_m", "local_p", "monotonic", "hard")
PROFILES = ("tiny", "small", "full")
DEFAULTS = dict(profile="small", seeds=0, steps=0, hard="reinforce")


def _args(arg):
  args = parse_arg(arg, **DEFAULTS)
  if args["profile"] not in PROFILES:
    raise ValueError(f"unknown profile {args['profile']!r}; valid: {', '.join(PROFILES)}")
  if args["hard"] not in ("reinforce", "gumbel"):
    raise ValueError(f"unknown hard={args['hard']!r}; valid: reinforce, gumbel")
  return args


def get_config(arg=None):
  args = _args(arg)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  config.model.decoder = "luong"
  config.model.attention = "general"
  config.model.local_window = 10  # Luong et al.'s D
  config.model.hard_estimator = args["hard"]  # the hard trial's training estimator
  config.train.measure_memory = True
  if profile == "tiny":
    config.model.local_window = 2  # sources of at most 8 words
    config.eval.length_boundaries = (4, 6)
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 2
  else:
    config.data.min_len, config.data.max_len = 10, 50
    config.eval.length_boundaries = (15, 20, 25, 30, 35)
    config.batching.round_to = 5
    # One padded shape: with vmapped seeds a step runs once per bucket its seeds' batches
    # fall in, so two buckets would cost more than padding every batch to the longest.
    config.batching.num_buckets = 1
    config.batching.eval_batch_size = 1000
    config.eval.num_heatmaps = 1
    if profile == "small":
      config.data.vocab_size = 30
      config.data.num_train, config.data.num_valid, config.data.num_test = 20000, 200, 1000
      config.model.emb_dim, config.model.hidden_dim = 32, 48
      config.train.num_steps = 1000
      config.train.learning_rate = 1e-2
      config.train.warmup_steps = 50
    else:
      config.data.num_train, config.data.num_valid, config.data.num_test = 100000, 1000, 5000
      config.model.emb_dim, config.model.hidden_dim = 128, 256
      config.train.num_steps = 20000
    # Five validation points for the learning curves, five timing windows for the steps per
    # second (the first, which compiles, left out).
    config.train.log_every = config.train.eval_every = config.train.num_steps // 5
    config.train.checkpoint_every = config.train.num_steps
  return apply_seeds_and_steps(config, args)


def get_sweep(arg=None):
  """{axis: {label: overrides}}: one axis, every registered mechanism."""
  names = ("local_p", "hard") if _args(arg)["profile"] == "tiny" else MECHANISMS
  return {"mechanism": {name: {"model.mechanism": name} for name in names}}


def get_report(arg=None):
  """experiments.report defaults: accuracy / AER by source length, one line per mechanism."""
  del arg
  return {"line": "mechanism", "x": "length"}
