"""Long-sentence degradation (Bahdanau et al. 2015, Fig. 2): every attention variant against a
no-attention encoder-decoder, trained on sources of at most 30 words and tested on every length
up to 60, on toy translation (its gold alignment gives AER too).

    python -m experiments.sweep --sweep configs/sweeps/long_sentence.py:small \
        --root /tmp/sweeps/long --max_parallel 2
    python -m experiments.report --root /tmp/sweeps/long --out docs/long_sentence

Bahdanau et al. trained RNNencdec and RNNsearch on sentences of at most 30 or 50 words and
plotted test BLEU against length (their Fig. 2: RNNencdec falls as sentences grow, RNNsearch-50
holds, even past 50 words). Here every model trains on sources of at most 30 words
(``data.train_max_src_len``, axis ``train_len``; validation, which stops training and ranks
checkpoints, is cut the same way) and is tested on 3 to 60: the 31-60 buckets are
extrapolation, labelled so in the report. The test split is evaluated greedily and with beam 5
(``eval.test_beam_sizes``), so the report has a ``decoding`` axis. Batches are padded to the
training length or the longest test length (``batching.bucket_boundaries``), so the vmapped
seeds take one call per training step.

A fair budget: every trial trains until its validation loss (the mean over the seeds, every
``eval_every`` steps) has not fallen by more than ``MIN_DELTA`` for ``PATIENCE`` evaluations
(``train.early_stopping_patience``, ``train.early_stopping_min_delta``), capped at
``train.num_steps``, and is tested with its checkpoint of lowest validation loss. Attention
variants stop early; the no-attention baseline trains until its own learning curve is flat or
the cap (in ``small`` it reaches the cap). The report's learning curves show where each
stopped. The learning rate, 0.003, is one at which the baseline's three seeds all leave their
plateau (at 0.01 one of them stayed on it for 6,000 steps, and dot / general oscillated).

Axis ``variant``: ``none`` (``model.decoder=none``: RNNencdec), ``bahdanau`` (the paper's
RNNsearch: Bahdanau decoder, additive score), and each score function of ``SCORES`` in a Luong
decoder (every registered score but ``concat`` and ``additive_normalized``, forms of additive
that the alignment sweep compares); axis ``train_len``. Seeds run side by side in each trial
(``num_seeds``, vmapped). Profiles: ``small`` (the 2-core CPU: train_len 30), ``full`` (GPU /
TPU: a wider model, train_len 30 and 50, tested up to 80), ``tiny`` (seconds, for tests);
options ``seeds=N``, ``steps=N`` (N steps, no early stopping). Results: docs/long_sentence.md.
"""

import os

from attnlab.defaults import apply_seeds_and_steps, load_config_file, parse_arg

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The score functions compared, written out (configs are data): every one of
# attnlab.attention.score_names() but concat and additive_normalized, two forms of additive
# that configs/sweeps/alignment.py compares (tests/experiments/test_sweep.py checks this).
SCORES = ("dot", "scaled_dot", "general", "additive", "location", "cosine")
PROFILES = ("tiny", "small", "full")
DEFAULTS = dict(profile="small", seeds=0, steps=0)
# Evaluations without a lower validation loss (by more than MIN_DELTA nats per token, the mean
# over seeds) before a trial stops; the best checkpoint is the one of lowest validation loss.
PATIENCE = 4
MIN_DELTA = 0.005


def _args(arg):
  args = parse_arg(arg, **DEFAULTS)
  if args["profile"] not in PROFILES:
    raise ValueError(f"unknown profile {args['profile']!r}; valid: {', '.join(PROFILES)}")
  return args


def train_lengths(arg=None) -> tuple[int, ...]:
  """The training regimes: the longest training (and validation) source, per profile
  (RNNsearch-30 and -50 in the paper)."""
  return {"tiny": (8,), "small": (30,), "full": (30, 50)}[_args(arg)["profile"]]


def get_config(arg=None):
  args = _args(arg)
  profile = args["profile"]
  config = toy_translation.get_config("quick" if profile == "tiny" else None)
  config.data.train_max_src_len = train_lengths(arg)[0]
  if profile == "tiny":  # 4 steps, no early stopping, greedy only: the launcher's tests
    config.eval.length_boundaries = (4, 6)
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
    config.batching.num_buckets = 1
  else:
    # Validation loss, not exact match: the no-attention model (and hard attention with
    # REINFORCE) spends its first thousands of steps at exact match 0 while its loss falls.
    config.train.best_metric, config.train.best_mode = "loss", "min"
    config.train.early_stopping_patience = PATIENCE
    config.train.early_stopping_min_delta = MIN_DELTA
    config.eval.test_beam_sizes = (5,)
    config.data.vocab_size = 30
    if profile == "small":
      config.data.max_len, config.data.max_clauses = 60, 8
      config.data.num_train, config.data.num_valid, config.data.num_test = 40000, 600, 1200
      config.eval.length_boundaries = (10, 20, 30, 40, 50)
      config.model.emb_dim, config.model.hidden_dim = 32, 64
      config.train.num_steps = 10000
      config.train.learning_rate = 3e-3
      config.train.eval_every = 200
    else:
      config.data.max_len, config.data.max_clauses = 80, 10
      config.data.num_train, config.data.num_valid, config.data.num_test = 200000, 1000, 5000
      config.eval.length_boundaries = (10, 20, 30, 40, 50, 60, 70)
      config.model.emb_dim, config.model.hidden_dim = 128, 256
      config.train.num_steps = 30000
      config.train.learning_rate = 3e-3
      config.train.eval_every = 500
    config.train.warmup_steps = 50
    config.train.schedule = "constant"
    # Two padded shapes: every training (and validation) source fits the first, so the seeds
    # vmapped in a trial take one call per step; the second holds the longer test sources.
    config.batching.bucket_boundaries = (config.data.train_max_src_len, config.data.max_len)
    config.batching.round_to = 5
    config.batching.eval_batch_size = 1200
    config.eval.num_heatmaps = 1
    config.train.log_every = config.train.checkpoint_every = config.train.eval_every
  config = apply_seeds_and_steps(config, args)
  if args["steps"]:
    config.train.early_stopping_patience = 0
  return config


def _regime(arg, train_len: int) -> dict:
  """A training regime's overrides: its longest training source and, but in the tiny profile
  (one quantile bucket), its padded source lengths (the training length, the longest test one)."""
  overrides = {"data.train_max_src_len": train_len}
  if _args(arg)["profile"] != "tiny":
    overrides["batching.bucket_boundaries"] = (train_len, get_config(arg).data.max_len)
  return overrides


def get_sweep(arg=None):
  """{axis: {label: overrides}}: variant x train_len (experiments/sweep.py)."""
  variants = {"none": {"model.decoder": "none"}}
  if _args(arg)["profile"] == "tiny":
    variants["additive"] = {"model.attention": "additive"}
  else:
    variants["bahdanau"] = {"model.decoder": "bahdanau", "model.attention": "additive"}
    variants.update({name: {"model.attention": name} for name in SCORES})
  return {
      "variant": variants,
      "train_len": {str(n): _regime(arg, n) for n in train_lengths(arg)},
  }


def get_report(arg=None):
  """experiments.report defaults: exact match / BLEU / AER against source length."""
  del arg
  return {"line": "variant", "x": "length"}
