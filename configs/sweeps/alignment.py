"""Alignment quality of every score function on the toy translation task, whose true word
alignment is known: alignment error rate (argmax attention vs the gold links) and attention
entropy, with exact match and BLEU beside them. Luong et al. (2015, Table 6) found the
location-based score, which never looks at the source words, aligns worst.

    python -m experiments.sweep --sweep configs/sweeps/alignment.py:small \
        --root /tmp/alignment --max_parallel 2
    python -m experiments.report --root /tmp/alignment --out docs/alignment

Axis: ``variant`` (every name in ``SCORES``, i.e. ``attnlab.attention.score_names()``, Luong
decoder), seeds vmapped in each trial. Profiles: ``small`` (two CPU cores), ``full`` (GPU /
TPU), ``tiny`` (a smoke test); options ``seeds=N``, ``steps=N``, ``decoder=bahdanau``.
Results: docs/alignment.md.
"""

import os

from attnlab.defaults import load_config_file, parse_arg
from attnlab.sweeps import PROFILES, apply_seeds_and_steps

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The score functions compared (attnlab.attention.score_names(), written out: configs are data;
# tests/experiments/test_sweep.py checks they agree).
SCORES = ("dot", "scaled_dot", "general", "concat", "additive", "additive_normalized", "location",
          "cosine")
DEFAULTS = dict(profile="small", seeds=0, steps=0, decoder="luong")


def get_config(arg=None):
  args = parse_arg(arg, profiles=PROFILES, **DEFAULTS)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  config.model.decoder = args["decoder"]
  if profile == "tiny":
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
  else:
    config.eval.length_boundaries = (5, 10, 15, 20)
    config.batching.eval_batch_size = 1000
    config.eval.num_heatmaps = 1
    if profile == "small":
      config.data.vocab_size = 30
      config.data.max_len = 20
      config.data.num_train, config.data.num_valid, config.data.num_test = 20000, 200, 1000
      config.model.emb_dim, config.model.hidden_dim = 32, 48
      # One padded shape: seeds vmapped together take one call per step (with two, a step
      # runs once per bucket its seeds' batches fall in).
      config.batching.num_buckets = 1
      config.train.num_steps = 500
      config.train.learning_rate = 1e-2
      config.train.warmup_steps = 50
    else:
      config.data.num_train, config.data.num_valid, config.data.num_test = 50000, 1000, 5000
      config.train.num_steps = 10000
    # Five validation points: the learning curves show whether the fixed budget sufficed.
    config.train.log_every = config.train.eval_every = config.train.num_steps // 5
    config.train.checkpoint_every = config.train.num_steps
  return apply_seeds_and_steps(config, args)


def get_sweep(arg=None):
  """{axis: {label: overrides}}: one axis, every registered score function."""
  tiny = parse_arg(arg, profiles=PROFILES, **DEFAULTS)["profile"] == "tiny"
  names = ("dot", "location") if tiny else SCORES
  return {"variant": {name: {"model.attention": name} for name in names}}


def get_report(arg=None):
  """experiments.report defaults: AER / exact match / BLEU by source length, per variant."""
  del arg
  return {"line": "variant", "x": "length"}
