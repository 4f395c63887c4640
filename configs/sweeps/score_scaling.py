"""Score scaling: unscaled multiplicative scores (dot, general) vs scaled_dot and additive as the
attention / hidden dimension grows. Britz et al. (2017) saw multiplicative attention fall behind
additive at large dimension; Vaswani et al. (2017) explain it: q . k of d-dimensional vectors
with unit-variance components has variance d, pushing the softmax into saturation unless the
scores are divided by sqrt(d).

    python -m experiments.sweep --sweep configs/sweeps/score_scaling.py:small \
        --root /tmp/scaling --max_parallel 2
    python -m experiments.report --root /tmp/scaling --out docs/score_scaling

Axes: ``variant`` (dot, general, scaled_dot, additive) x ``dim`` (``model.hidden_dim``, which
is also the score's width: the query's for dot / scaled_dot / general, ``attention_dim`` for
additive); toy translation, Luong decoder, seeds vmapped in each trial. Profiles: ``small``
(dims 16 / 64 / 256 on two CPU cores), ``full`` (32 / 128 / 512 / 1024, for a GPU or TPU),
``tiny`` (seconds, for tests); options ``seeds=N``, ``steps=N``.
"""

import os

from attnlab.defaults import apply_seeds_and_steps, load_config_file, parse_arg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

PROFILES = ("tiny", "small", "full")
VARIANTS = ("dot", "general", "scaled_dot", "additive")
DEFAULTS = dict(profile="small", seeds=0, steps=0)


def _args(arg):
  args = parse_arg(arg, **DEFAULTS)
  if args["profile"] not in PROFILES:
    raise ValueError(f"unknown profile {args['profile']!r}; valid: {', '.join(PROFILES)}")
  return args


def dims(arg=None) -> tuple[int, ...]:
  return {"tiny": (8, 16), "small": (16, 64, 256), "full": (32, 128, 512, 1024)}[
      _args(arg)["profile"]]


def get_config(arg=None):
  args = _args(arg)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  if profile == "tiny":
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
  else:
    config.data.vocab_size = 30
    config.data.max_len = 15
    config.data.num_train, config.data.num_valid, config.data.num_test = 20000, 200, 1000
    config.model.emb_dim = 32
    config.batching.num_buckets = 2
    config.batching.eval_batch_size = 1000
    config.train.num_steps = 250 if profile == "small" else 10000
    config.train.learning_rate = 5e-3
    config.train.warmup_steps = 50
    config.eval.num_heatmaps = 1
    config.train.log_every = config.train.eval_every = config.train.num_steps
    config.train.checkpoint_every = config.train.num_steps
  return apply_seeds_and_steps(config, args)


def get_sweep(arg=None):
  """{axis: {label: overrides}}: variant x dim (experiments/sweep.py)."""
  return {
      "variant": {name: {"model.attention": name} for name in VARIANTS},
      "dim": {str(d): {"model.hidden_dim": d} for d in dims(arg)},
  }


def get_report(arg=None):
  """experiments.report defaults: overall metrics against the dimension, a line per score."""
  del arg
  return {"line": "variant", "x": "dim"}
