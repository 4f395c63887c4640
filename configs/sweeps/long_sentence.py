"""Long-sentence degradation: every attention variant vs a no-attention encoder-decoder, trained
on short sources only and tested on all lengths (Bahdanau et al. 2015, Fig. 2: RNNencdec
collapses as sentences grow, RNNsearch holds).

    python -m experiments.sweep --sweep configs/sweeps/long_sentence.py:small --root /tmp/long \
        --max_parallel 2
    python -m experiments.report --root /tmp/long --out docs/long_sentence

Axes: ``variant`` (``none`` = ``model.decoder=none``, else a score function of ``SCORES``,
i.e. ``attnlab.attention.score_names()``, in a Luong decoder) x ``train_len`` (the longest training
source, ``data.train_max_src_len``; RNNsearch-30 / -50 in the paper). Seeds run side by side
in each trial (``num_seeds``, vmapped). Arguments: a profile, ``small`` (the whole grid on two
CPU cores: 28 minutes for the toy task, 42 for mar_eng, measured on a shared, loaded machine),
``full`` (longer training and sentences, for a GPU or TPU) or
``tiny`` (seconds, for tests), then optionally ``task=mar_eng`` (English -> Marathi, Tatoeba)
instead of the toy translation task, ``seeds=N``, ``steps=N``.
"""

import os

from attnlab.defaults import apply_seeds_and_steps, load_config_file, parse_arg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
mar_eng = load_config_file(os.path.join(CONFIGS, "mar_eng.py"))
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The score functions compared (attnlab.attention.score_names(), written out: configs are data;
# tests/experiments/test_sweep.py checks they agree).
SCORES = ("dot", "scaled_dot", "general", "concat", "additive", "additive_normalized", "location",
          "cosine")
PROFILES = ("tiny", "small", "full")
DEFAULTS = dict(profile="small", task="toy_translation", seeds=0, steps=0)


def _args(arg):
  args = parse_arg(arg, **DEFAULTS)
  if args["profile"] not in PROFILES:
    raise ValueError(f"unknown profile {args['profile']!r}; valid: {', '.join(PROFILES)}")
  if args["task"] not in ("toy_translation", "mar_eng"):
    raise ValueError(f"unknown task {args['task']!r}; valid: toy_translation, mar_eng")
  return args


def train_lengths(arg=None) -> tuple[int, ...]:
  """The training length regimes: longest training source, short and (about) all."""
  args = _args(arg)
  if args["task"] == "mar_eng":
    return {"tiny": (6,), "small": (8, 20), "full": (10, 30)}[args["profile"]]
  return {"tiny": (8,), "small": (15, 30), "full": (30, 60)}[args["profile"]]


def get_config(arg=None):
  args = _args(arg)
  profile = args["profile"]
  if args["task"] == "mar_eng":
    config = mar_eng.get_config("quick" if profile == "tiny" else None)
    config.eval.length_boundaries = (5, 8, 11, 14)
    if profile == "small":
      config.data.max_src_len, config.data.max_tgt_len = 20, 30
      config.data.min_freq = 10
      config.data.num_valid, config.data.num_test = 100, 1000
      config.model.emb_dim, config.model.hidden_dim = 32, 32
      config.model.dropout_rate = 0.0
      config.train.num_steps = 300
      config.train.learning_rate = 1e-2
    elif profile == "full":
      config.data.max_src_len, config.data.max_tgt_len = 30, 40
      config.data.num_valid, config.data.num_test = 1000, 3000
      config.train.num_steps = 20000
  else:
    config = toy_translation.get_config("quick" if profile == "tiny" else None)
    config.eval.length_boundaries = (5, 10, 15, 20, 25)
    if profile == "small":
      config.data.vocab_size = 30
      config.data.max_len = 30
      config.data.num_train, config.data.num_valid, config.data.num_test = 20000, 200, 1000
      config.model.emb_dim, config.model.hidden_dim = 32, 48
      config.train.num_steps = 400
      config.train.learning_rate = 1e-2
      config.train.warmup_steps = 50
    elif profile == "full":
      config.eval.length_boundaries = (10, 20, 30, 40, 50)
      config.data.max_len = 60
      config.data.num_train, config.data.num_valid, config.data.num_test = 100000, 1000, 5000
      config.model.emb_dim, config.model.hidden_dim = 128, 256
      config.train.num_steps = 20000
    else:
      config.eval.length_boundaries = (4, 6)
  if profile == "tiny":
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
    config.batching.num_buckets = 1
  else:
    config.batching.num_buckets = 2 if profile == "small" else 6
    config.batching.round_to = 5
    config.batching.eval_batch_size = 1000
    config.eval.num_heatmaps = 1
    # Evaluate once, at the end: these runs are compared on the test split only.
    config.train.log_every = config.train.eval_every = config.train.num_steps
    config.train.checkpoint_every = config.train.num_steps
  return apply_seeds_and_steps(config, args)


def get_sweep(arg=None):
  """{axis: {label: overrides}}: variant x train_len (experiments/sweep.py)."""
  variants = {"none": {"model.decoder": "none"}}
  names = ("additive",) if _args(arg)["profile"] == "tiny" else SCORES
  variants.update({name: {"model.attention": name} for name in names})
  return {
      "variant": variants,
      "train_len": {str(n): {"data.train_max_src_len": n} for n in train_lengths(arg)},
  }


def get_report(arg=None):
  """experiments.report defaults: exact match / BLEU / AER against source length."""
  del arg
  return {"line": "variant", "x": "length"}
