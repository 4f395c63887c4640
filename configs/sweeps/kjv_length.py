"""Bahdanau et al. (2015)'s Fig. 2 on real text: RNNencdec and RNNsearch trained on sources of at
most 30 and at most 50 words, tested on every test pair of the KJV -> Reina-Valera 1909 corpus
(configs/kjv_rv1909.py), corpus BLEU per source-length bucket.

    python -m experiments.sweep --sweep configs/sweeps/kjv_length.py:small \
        --root /tmp/sweeps/kjv_length --max_parallel 2 [--config.data.path=DIR]
    python -m experiments.report --root /tmp/sweeps/kjv_length --out docs/kjv_length

Axis ``model``, named as the paper's legend: ``RNNencdec-30`` / ``-50`` (``model.decoder=none``:
the source reaches the decoder only through the bridge from the encoder's final state),
``RNNsearch-30`` / ``-50`` (Bahdanau decoder, additive score), and Luong decoders (input
feeding) with the ``general`` and ``scaled_dot`` scores trained to 50 (``general-50``,
``scaled_dot-50``). ``-N``: training pairs of at most N words on both sides, as in the paper
(``data.train_max_src_len``, which cuts validation the same way, and ``data.max_tgt_len``).
The report draws one line a model against source length, as the paper's figure. Axis ``seed``:
each seed is its own trial (``seeds=N``; at least 2), pooled by the report into a mean with a
Student t interval over seeds (each seed's bootstrap over sentences is in its summary.json).
Seeds are separate processes rather than vmapped in one (``num_seeds``): a vmapped step runs
once per distinct length bucket among its seeds' batches, every seed computing each time
(attnlab.training.multiseed), so with this config's many buckets two vmapped seeds would
compute about twice the padded batches of two processes (estimated from the bucket shapes).

Lengths are words: the source's Moses tokens, punctuation marks included, as Bahdanau et al.
counted their tokenized sentences; word-level vocabularies keep one token a word
(configs/kjv_rv1909.py's docstring has the measurement). Test buckets 1-10, 11-20, ..., 51-60,
>60 (3,011 test pairs; 1,281 sources over 30 words, 217 over 50, 56 over 60). Every test pair
is decoded greedily and with beam 5 (``eval.test_beam_sizes``: the report's ``decoding`` axis).

A fair budget, as configs/sweeps/long_sentence.py: each trial trains until its validation loss
has not fallen by more than ``MIN_DELTA`` for ``PATIENCE`` evaluations, capped at
``train.num_steps``, and is tested with its checkpoint of lowest validation loss; the learning
curves (metrics.jsonl, the report's learning_curves.png) show where each stopped.

Profiles:
  small  the four models of the paper x 2 seeds = 8 trials on the idle 2-core CPU within about
         3 hours, two trials at a time, early-stopped, capped at 1,600 steps (sized below);
  full   Bahdanau et al.'s sizes for an accelerator: embeddings 620, GRU 1000 (bidirectional
         encoder), every training word type in the vocabularies up to 30,000 (all of the
         English 11,872; the Spanish 26,343), batch 80, 3 seeds;
  tiny   seconds a trial, for tests: RNNencdec and RNNsearch on <= 30 words, one seed, a tiny
         model, 30 test pairs.
Options: ``seeds=N`` (trials per model), ``steps=N`` (N steps, no early stopping),
``luong=true`` / ``luong=false`` (with or without the two Luong models; default: with them in
``full`` only).

How ``small`` was sized (CPU time of real trials, steps 100-200 of 200-step runs; CPU time
rather than wall time because other work shared the machine): the model is
configs/kjv_rv1909.py's (embeddings 128, bidirectional GRU 128, 8,000-word vocabularies, batch
64; the output softmax is most of a step). A step costs 1.0 (RNNencdec-30, estimated), 1.13
(RNNsearch-30), 1.52 (RNNencdec-50) and 1.7 (RNNsearch-50) CPU-seconds; RNNsearch-50 alone on
the idle machine runs 1.3 steps/s on its two cores. A trial's other costs: start-up and
tokenizing (20 CPU-s), compiling (about 40, shared between seeds by the XLA cache), 8
validations (15 each) and the test decoded greedily (40 s) and with beam 5 (150 s): about 460
CPU-s. Two trials at a time (``--max_parallel 2``) keep both cores busy: 3 hours are 21,600
CPU-seconds, and 8 trials of 1,600 steps need 2 x 1,600 x (1.0 + 1.13 + 1.52 + 1.7) + 8 x 460 =
20,800, i.e. 2.9 hours (an estimate: those runs shared the machine; the published wall time
should be measured). 1,600 steps of 64 pairs are 4.2 epochs of the 24,581 pairs of at most 50
words and 6.7 of the 15,238 of at most 30. The Luong pair (``luong=true``) adds 4 trials at 50
words, about 1.7 hours more. Wider models do not fit: hidden 256 with 14,017 Spanish words costs
2.4 times as much a step.
"""

import os

from attnlab.defaults import load_config_file, parse_arg, shrink_for_smoke_test

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
kjv = load_config_file(os.path.join(CONFIGS, "kjv_rv1909.py"))

PROFILES = ("tiny", "small", "full")
DEFAULTS = dict(profile="small", seeds=0, steps=0, luong="")
# Trials (seeds) per model when ``seeds`` is not given.
SEEDS = {"tiny": 1, "small": 2, "full": 3}
# Whether the Luong models (general-50, scaled_dot-50) run when ``luong`` is not given: not in
# ``small``, whose 3 hours they would cut to about 1,000 steps a model (module docstring).
LUONG = {"tiny": False, "small": False, "full": True}
# Evaluations without a lower validation loss (by more than MIN_DELTA nats per token) before a
# trial stops; the best checkpoint is the one of lowest validation loss.
PATIENCE = 3
MIN_DELTA = 0.005
# The decoders compared: RNNencdec (no attention), RNNsearch (Bahdanau et al.'s), Luong's.
DECODERS = {
    "RNNencdec": {"model.decoder": "none"},
    "RNNsearch": {"model.decoder": "bahdanau", "model.attention": "additive"},
    "general": {"model.decoder": "luong", "model.attention": "general"},
    "scaled_dot": {"model.decoder": "luong", "model.attention": "scaled_dot"},
}


def _args(arg):
  args = parse_arg(arg, profiles=PROFILES, **DEFAULTS)
  args["luong"] = args["luong"].lower()
  if args["luong"] not in ("", "true", "false"):
    raise ValueError(f"luong must be true or false, got {args['luong']!r}")
  args["luong"] = (args["luong"] == "true") if args["luong"] else LUONG[args["profile"]]
  return args


def models(arg=None) -> dict[str, tuple[str, int]]:
  """{label: (decoder, longest training sentence in words)}, in the report's order."""
  args = _args(arg)
  if args["profile"] == "tiny":
    return {"RNNencdec-30": ("RNNencdec", 30), "RNNsearch-30": ("RNNsearch", 30)}
  chosen = {f"{decoder}-{n}": (decoder, n) for decoder in ("RNNencdec", "RNNsearch")
            for n in (30, 50)}
  if args["luong"]:
    chosen.update({f"{score}-50": (score, 50) for score in ("general", "scaled_dot")})
  return chosen


def get_config(arg=None):
  args = _args(arg)
  profile = args["profile"]
  config = kjv.get_config()
  config.data.train_max_src_len = 50
  config.data.max_src_len = None
  config.data.max_tgt_len = 50
  if profile == "tiny":  # a few steps on short sentences, 30 test pairs: the launcher's tests
    shrink_for_smoke_test(config)
    config.batching.bucket_boundaries = ()  # one padded shape: one compilation
    config.train.num_steps = 4
    config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 4
    config.eval.max_examples = 30
    config.eval.test_beam_sizes = ()
  else:
    # Validation loss picks the checkpoint and stops training: RNNencdec's BLEU stays near 0
    # for its first thousand steps while its loss falls (configs/sweeps/long_sentence.py).
    config.train.best_metric, config.train.best_mode = "loss", "min"
    config.train.early_stopping_patience = PATIENCE
    config.train.early_stopping_min_delta = MIN_DELTA
    config.train.schedule = "constant"
    config.train.warmup_steps = 200
    config.eval.num_heatmaps = 1
    if profile == "small":  # configs/kjv_rv1909.py's model and vocabularies (module docstring)
      config.train.learning_rate = 2e-3
      config.train.num_steps = 1600
      config.train.eval_every = 200
    else:  # Bahdanau et al.'s sizes: embeddings 620, GRUs 1000, 30,000-word shortlists, batch 80
      config.data.min_freq = 1
      config.data.max_vocab_size = 30000
      config.model.emb_dim, config.model.hidden_dim = 620, 1000
      config.model.dropout_rate = 0.3
      config.batching.batch_size = 80
      config.train.learning_rate = 1e-3
      config.train.num_steps = 30000
      config.train.eval_every = 1000
    config.train.log_every = config.train.checkpoint_every = config.train.eval_every
  if args["steps"]:
    config.train.num_steps = args["steps"]
    config.train.log_every = config.train.eval_every = args["steps"]
    config.train.checkpoint_every = args["steps"]
    config.train.early_stopping_patience = 0
  return config


def get_sweep(arg=None):
  """{axis: {label: overrides}}: model x seed (experiments/sweep.py)."""
  args = _args(arg)
  model_axis = {}
  for label, (decoder, words) in models(arg).items():
    model_axis[label] = {**DECODERS[decoder], "data.train_max_src_len": words,
                         "data.max_tgt_len": words}
  seeds = args["seeds"] or SEEDS[args["profile"]]
  return {"model": model_axis, "seed": {str(s): {"seed": s} for s in range(seeds)}}


def get_report(arg=None):
  """experiments.report defaults: BLEU against source length, one line a model."""
  del arg
  return {"line": "model", "x": "length"}
