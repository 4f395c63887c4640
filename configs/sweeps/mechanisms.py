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
``mechanism`` (``MECHANISMS``, i.e. ``attnlab.attention.mechanism_names()``, and
``hard_gumbel``); 10 seeds vmapped in each trial (the profile's default: ``seeds=N``); the
train step's memory is measured
(``train.measure_memory``). A fair budget: every trial trains until the mean validation loss
of its seeds has not fallen by more than ``MIN_DELTA`` for ``PATIENCE`` evaluations (every 200
steps in ``small``), capped at ``train.num_steps``, and is tested with its checkpoint of lowest
validation loss; metrics.jsonl holds the
learning curves. Profiles: ``small`` (two CPU cores: the whole grid, two trials at a time),
``full`` (GPU / TPU: Luong's sizes are out of reach, but a wider model, five times the data and
ten times the cap), ``tiny`` (a smoke test); options ``seeds=N``, ``steps=N`` (N steps,
no early stopping). Hard attention is trained twice: ``hard`` with REINFORCE (Xu et al. 2015's
estimator with a moving-average reward baseline) and ``hard_gumbel`` with the straight-through
Gumbel-softmax (``model.hard_estimator``). Results: docs/mechanisms.md. Train steps per second
are wall-clock rates: compare them across trials run on the same, otherwise idle machine; the
memory (XLA's analysis) does not depend on the load. Cost: at 10 seeds a trial takes 18 to 40
minutes on two shared cores, the whole ``small`` grid about an hour and a half (about four times
its cost at 3 seeds); ``--only 'mechanism=global' --only 'mechanism=hard*'`` runs a subset.
"""

import os

from attnlab.defaults import load_config_file, parse_arg
from attnlab.sweeps import PROFILES, apply_seeds_and_steps

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The mechanisms compared (attnlab.attention.mechanism_names(), written out: configs are data;
# tests/experiments/test_mechanisms_sweep.py checks they agree), global, the reference, first.
MECHANISMS = ("global", "local_m", "local_p", "monotonic", "hard")
# Evaluations without a lower validation loss (by more than MIN_DELTA nats per token, the mean
# over seeds) before a trial stops; the best checkpoint is the one of lowest validation loss.
PATIENCE = 4
MIN_DELTA = 0.005
DEFAULTS = dict(profile="small", seeds=0, steps=0)
# The same hard mechanism trained with the other estimator, as its own line in the report.
ESTIMATORS = {"hard_gumbel": {"model.mechanism": "hard", "model.hard_estimator": "gumbel"}}


def get_config(arg=None):
  args = parse_arg(arg, profiles=PROFILES, **DEFAULTS)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  config.model.decoder = "luong"
  config.model.attention = "general"
  config.model.local_window = 10  # Luong et al.'s D
  config.model.hard_estimator = "reinforce"  # the `hard` trial's; `hard_gumbel` overrides it
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
      config.train.num_steps = 3000
      config.train.learning_rate = 1e-2
      config.train.warmup_steps = 50
    else:
      config.data.num_train, config.data.num_valid, config.data.num_test = 100000, 1000, 5000
      config.model.emb_dim, config.model.hidden_dim = 128, 256
      config.train.num_steps = 30000
    # A fair budget: each trial trains until its validation loss (mean over seeds) has not
    # improved for PATIENCE evaluations, capped at num_steps, and is tested with its best
    # checkpoint; metrics.jsonl holds the learning curves, and every log_every steps a timing
    # window of the steps per second (the first, which compiles, left out).
    # Validation loss, not exact match: the no-attention model (and hard attention with
    # REINFORCE) spends its first thousands of steps at exact match 0 while its loss falls.
    config.train.best_metric, config.train.best_mode = "loss", "min"
    config.train.early_stopping_patience = PATIENCE
    config.train.early_stopping_min_delta = MIN_DELTA
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = (
        config.train.num_steps // 15)
  config = apply_seeds_and_steps(config, args)
  if args["steps"]:  # a fixed budget of N steps
    config.train.early_stopping_patience = 0
  return config


def get_sweep(arg=None):
  """{axis: {label: overrides}}: one axis, every registered mechanism, and hard attention
  trained with the straight-through Gumbel-softmax as well as with REINFORCE."""
  if parse_arg(arg, profiles=PROFILES, **DEFAULTS)["profile"] == "tiny":
    return {"mechanism": {name: {"model.mechanism": name} for name in ("local_p", "hard")}}
  return {"mechanism": {**{name: {"model.mechanism": name} for name in MECHANISMS},
                        **ESTIMATORS}}


def get_report(arg=None):
  """experiments.report defaults: accuracy / AER by source length, one line per mechanism."""
  del arg
  return {"line": "mechanism", "x": "length"}
