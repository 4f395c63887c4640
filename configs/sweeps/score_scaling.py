"""Score scaling: unscaled multiplicative scores (dot, general) against scaled_dot and additive
as the attention width grows, the recurrent width held fixed and small.

Britz et al. (2017, "Massive Exploration of Neural Machine Translation Architectures") varied
the attention dimensionality alone (128 / 512 / 1024) in their WMT'15 English -> German
baseline, comparing multiplicative attention with both sides projected, score =
<W_1 h_j, W_2 s_i>, and additive attention, score = <v, tanh(W_1 h_j + W_2 s_i)>: Mul-1024
reached 18.22 BLEU on newstest2013 against 22.10 for Add-1024. Vaswani et al. (2017) explain
it: q . k of two a-dimensional vectors with unit-variance components has variance a, pushing
the softmax into saturation unless the scores are divided by sqrt(a).

    python -m experiments.sweep --sweep configs/sweeps/score_scaling.py:small \
        --root /tmp/scaling --max_parallel 2
    python -m experiments.report --root /tmp/scaling --out docs/score_scaling

Axes: ``variant`` (dot, general, scaled_dot, additive) x ``dim``, which sets
``model.attention_dim``, the width of every score's projection (not the recurrent width): dot,
scaled_dot and general project query and keys to it first ((W_q q) . (W_k k), Britz et al.'s
Mul-<dim>; scaled_dot / sqrt(dim); general (W_q q)^T W_a (W_k k)), additive is
v^T tanh(W q + U k + b) at that width (Add-<dim>). Toy translation, Luong decoder,
bidirectional GRU encoder, seeds vmapped in each trial, evaluated every fifth of the run (so
learning curves exist) and on the test split at the end. Profiles: ``small`` (attention widths
16 / 64 / 256 / 1024 over a recurrent width of 48, embeddings 32, 400 Adam steps of 64, 10
seeds (attnlab.sweeps.SEEDS): 16 trials, two at a time, took 82 minutes on the 2-core machine
with the test suite running beside them (570 s idle with 3 seeds); the slowest, general at
1024, took 2,229 s of it, its a x a matrix for 10 seeds), ``full`` (128 / 512 / 1024 / 2048 over a recurrent width of 256, longer
training and sentences, for a GPU or TPU), ``tiny`` (a smoke test); options
``seeds=N``, ``steps=N`` (evaluating every N / 5 steps).
"""

import os

from attnlab.defaults import load_config_file, parse_arg
from attnlab.sweeps import PROFILES, apply_seeds_and_steps

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

VARIANTS = ("dot", "general", "scaled_dot", "additive")
DEFAULTS = dict(profile="small", seeds=0, steps=0)
# Evaluations per run (train.eval_every = num_steps / EVALS): the learning curves' points.
EVALS = 5


def dims(arg=None) -> tuple[int, ...]:
  """The attention widths swept (``model.attention_dim``)."""
  return {"tiny": (8, 16), "small": (16, 64, 256, 1024), "full": (128, 512, 1024, 2048)}[
      parse_arg(arg, profiles=PROFILES, **DEFAULTS)["profile"]]


def get_config(arg=None):
  args = parse_arg(arg, profiles=PROFILES, **DEFAULTS)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  if profile == "tiny":
    config.model.attention_dim = dims(arg)[0]
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
    return apply_seeds_and_steps(config, args)
  if profile == "small":
    config.data.vocab_size = 30
    config.data.max_len = 15
    config.data.num_train, config.data.num_valid, config.data.num_test = 20000, 200, 1000
    # The recurrent width stays small: only the attention width varies.
    config.model.emb_dim, config.model.hidden_dim = 32, 48
    config.batching.num_buckets = 2
    config.train.num_steps = 400
    config.train.learning_rate = 5e-3
    config.train.warmup_steps = 50
  else:
    config.data.max_len = 30
    config.data.num_train, config.data.num_valid, config.data.num_test = 100000, 1000, 5000
    config.model.emb_dim, config.model.hidden_dim = 128, 256
    config.batching.num_buckets = 6
    config.train.num_steps = 10000
  config.model.attention_dim = dims(arg)[-1]  # every trial sets its own (get_sweep)
  config.batching.eval_batch_size = 1000
  config.eval.num_heatmaps = 1
  config.train.checkpoint_every = config.train.num_steps
  config = apply_seeds_and_steps(config, args)
  config.train.log_every = config.train.eval_every = max(1, config.train.num_steps // EVALS)
  return config


def get_sweep(arg=None):
  """{axis: {label: overrides}}: variant x dim (experiments/sweep.py)."""
  return {
      "variant": {name: {"model.attention": name} for name in VARIANTS},
      "dim": {str(d): {"model.attention_dim": d} for d in dims(arg)},
  }


def get_report(arg=None):
  """experiments.report defaults: overall metrics against the attention width, a line per
  score."""
  del arg
  return {"line": "variant", "x": "dim"}
