"""Long-sentence degradation (Bahdanau et al. 2015, Fig. 2): attention against a no-attention
encoder-decoder, each trained on sources of at most 30 and of at most 50 words (RNNsearch-30 /
-50, RNNencdec-30 / -50) and tested on every length up to 70, on toy translation (its gold
alignment gives AER too).

    python -m experiments.sweep --sweep configs/sweeps/long_sentence.py:small \
        --root /tmp/sweeps/long --max_parallel 2
    python -m experiments.report --root /tmp/sweeps/long --out docs/long_sentence \
        --line variant,train_len [--compare A --compare B ...: docs/long_sentence.md]

Bahdanau et al. trained RNNencdec and RNNsearch on sentences of at most 30 or 50 words and
plotted test BLEU against length (their Fig. 2: RNNencdec falls as sentences grow, RNNsearch-50
holds, even past 50 words). Axis ``train_len`` is the longest training source
(``data.train_max_src_len``; validation, which stops training and ranks checkpoints, is cut the
same way); the test split runs to ``data.max_len`` words, and buckets past the training length
are extrapolation, labelled so in the report. The test split is evaluated greedily and with
beam 5 (``eval.test_beam_sizes``), so the report has a ``decoding`` axis. Batches are padded to
the training length or the longest test length (``batching.bucket_boundaries``), so the vmapped
seeds take one call per training step.

Controlled comparisons (what a reviewer of the earlier version found confounded):
- Parameters: ``none_matched`` is RNNencdec widened (``hidden_dim`` ``MATCHED_HIDDEN``) to
  RNNsearch's parameter count within 5% (tests/experiments/test_sweep.py counts them), beside
  the same-width ``none``.
- Training length: every trial is also tested at the matched steps ``TEST_AT_STEPS``
  (``eval.test_at_steps``), besides its own best checkpoint, so the amount of training and the
  variant are separable; early stopping never ends a trial before the last of them.
- Convergence: early stopping on validation loss (the mean over the seeds, every ``eval_every``
  steps) after ``PATIENCE`` evaluations that did not lower it by more than
  ``MIN_RELATIVE_DELTA`` of its best (``train.early_stopping_min_relative_delta``: a criterion
  that means "stopped improving" at a converged loss of 0.003 as at 0.3), capped at
  ``train.num_steps``; every trial is tested with its checkpoint of lowest validation loss,
  stopped early or not. The report's learning curves show where each stopped.
- Output length: a model trained on sources of at most 30 words never decoded past its longest
  training target, so its failures on long sentences mix attention with the decoder's length
  extrapolation. Every evaluation also reports teacher-forced token accuracy by target position
  and the position of the first error of greedy decoding (``attnlab.position_metrics``).

Axis ``variant``: ``none`` (``model.decoder=none``: RNNencdec), ``none_matched``, ``bahdanau``
(the paper's RNNsearch: Bahdanau decoder, additive score) and, with ``luong=true``, Luong
decoders with the scores of ``SCORES`` (``small``: ``general`` and ``scaled_dot``, the two the
earlier study ranked apart; ``full``: every registered score but ``concat`` and
``additive_normalized``, forms of additive that the alignment sweep compares). Seeds run side
by side in each trial (``num_seeds``, vmapped; 10 by default, the seed being the unit of
replication). Profiles: ``small`` (the 2-core CPU: the paper's four models and the matched
baseline, 6 trials; ``luong=true`` adds 4), ``full`` (GPU / TPU: a wider model, tested up to
80, the Luong scores included), ``tiny`` (a smoke test); options ``seeds=N``, ``steps=N`` (N
steps, no early stopping), ``luong=true`` / ``luong=false``. Results: docs/long_sentence.md.

Why the Luong scores are optional in ``small``: with 10 seeds a trial of the no-attention
baseline trains for thousands of steps (it is the slowest to learn), and the four models of the
paper plus the matched baseline already take the small profile past the 45 minutes a study
should cost on two cores; the scores' ranking is the score-scaling and alignment sweeps'
question, not this figure's.
"""

import os

from attnlab.defaults import load_config_file, parse_arg
from attnlab.sweeps import PROFILES, apply_seeds_and_steps

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
toy_translation = load_config_file(os.path.join(CONFIGS, "toy_translation.py"))

# The score functions compared, written out (configs are data): every one of
# attnlab.attention.score_names() but concat and additive_normalized, two forms of additive
# that configs/sweeps/alignment.py compares (tests/experiments/test_sweep.py checks this).
SCORES = ("dot", "scaled_dot", "general", "additive", "location", "cosine")
SMALL_SCORES = ("general", "scaled_dot")
DEFAULTS = dict(profile="small", seeds=0, steps=0, luong="")
# Whether the Luong-decoder trials (SMALL_SCORES / SCORES) run when ``luong`` is not given.
LUONG = {"tiny": False, "small": False, "full": True}
# Evaluations without a lower validation loss (by more than MIN_RELATIVE_DELTA of the best, the
# mean over seeds) before a trial stops; the best checkpoint is the one of lowest validation loss.
PATIENCE = 4
MIN_RELATIVE_DELTA = 0.05
# Matched training steps at which every trial is also tested (small profile; full: x2.5).
TEST_AT_STEPS = (1000, 2000)
# RNNencdec's hidden size with RNNsearch's parameter count, within 5% (small: 118,028 against
# 120,292; full: 1,848,396 against 1,857,316); tests/experiments/test_sweep.py counts them.
MATCHED_HIDDEN = 84
MATCHED_HIDDEN_FULL = 340


def _args(arg) -> dict:
  """The sweep argument parsed, ``luong`` as a bool (its profile's default when not given)."""
  args = parse_arg(arg, profiles=PROFILES, **DEFAULTS)
  luong = args["luong"].lower()
  if luong not in ("", "true", "false"):
    raise ValueError(f"luong must be true or false, got {args['luong']!r}")
  args["luong"] = (luong == "true") if luong else LUONG[args["profile"]]
  return args


def train_lengths(arg=None) -> tuple[int, ...]:
  """The training regimes: the longest training (and validation) source, per profile
  (RNNsearch-30 and -50 in the paper)."""
  profile = _args(arg)["profile"]
  return {"tiny": (8,), "small": (30, 50), "full": (30, 50)}[profile]


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
    config.train.early_stopping_min_relative_delta = MIN_RELATIVE_DELTA
    config.eval.test_beam_sizes = (5,)
    config.data.vocab_size = 30
    if profile == "small":
      config.data.max_len, config.data.max_clauses = 70, 9
      config.data.num_train, config.data.num_valid, config.data.num_test = 40000, 600, 1400
      config.eval.length_boundaries = (10, 20, 30, 40, 50, 60)
      config.eval.test_at_steps = TEST_AT_STEPS
      config.model.emb_dim, config.model.hidden_dim = 32, 64
      config.train.num_steps = 10000
      config.train.learning_rate = 3e-3
      config.train.eval_every = 200
    else:
      config.data.max_len, config.data.max_clauses = 80, 10
      config.data.num_train, config.data.num_valid, config.data.num_test = 200000, 1000, 5000
      config.eval.length_boundaries = (10, 20, 30, 40, 50, 60, 70)
      config.eval.test_at_steps = tuple(int(2.5 * s) for s in TEST_AT_STEPS)
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
    config.eval.test_at_steps = ()
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
  args = _args(arg)
  profile = args["profile"]
  variants = {"none": {"model.decoder": "none"}}
  if profile == "tiny":
    variants["additive"] = {"model.attention": "additive"}
  else:
    variants["none_matched"] = {
        "model.decoder": "none",
        "model.hidden_dim": MATCHED_HIDDEN if profile == "small" else MATCHED_HIDDEN_FULL}
    variants["bahdanau"] = {"model.decoder": "bahdanau", "model.attention": "additive"}
    scores = (SMALL_SCORES if profile == "small" else SCORES) if args["luong"] else ()
    variants.update({name: {"model.attention": name} for name in scores})
  return {
      "variant": variants,
      "train_len": {str(n): _regime(arg, n) for n in train_lengths(arg)},
  }


def get_report(arg=None):
  """experiments.report defaults: exact match / BLEU / AER against source length, a line per
  model and training length (Bahdanau et al.'s Fig. 2)."""
  del arg
  return {"line": "variant,train_len", "x": "length"}
