"""The experiment config: defaults, validation, and the model it describes.

Experiment files in ``configs/`` start from ``base_config(task)`` and change a
few fields; ``validate`` checks a config before anything is built, and
``build_model`` turns it into a ``Seq2Seq`` (models never read configs): ``model_options``
makes ``config.model`` one ``attnlab.options.ModelOptions`` value, here and nowhere else.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import ml_collections

from attnlab.attention import HARD_ESTIMATORS, mechanism_names, score_names
from attnlab.attention.mechanisms import NORMALIZERS
from attnlab.data.tasks import TASKS, default_data_config
from attnlab.models import BRIDGES, DECODER_STYLES, Seq2Seq, cell_names
from attnlab.options import ModelOptions


# model.dtype names -> computation dtypes.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ConfigError(ValueError):
  """A config value that cannot work; names the key and the valid choices."""

  def __init__(self, key: str, message: str):
    super().__init__(f"config.{key}: {message}")
    self.key = key


def base_config(task: str = "date") -> ml_collections.ConfigDict:
  """Every field of an experiment, with defaults and a comment each."""
  c = ml_collections.ConfigDict()
  # Seed of parameter initialisation, dropout and the training data order.
  c.seed = 0
  # Independent seeds trained side by side in one program (attnlab.multiseed: jax.vmap over
  # parameters, optimizer state and RNG keys); seed s runs exactly as a separate run with
  # seed = seed + s would. 1 = one ordinary run.
  c.num_seeds = 1

  # Task and its data (fields depend on the task: attnlab.data.tasks.default_data_config).
  c.data = default_data_config(task)

  c.batching = ml_collections.ConfigDict()
  # Examples per training batch.
  c.batching.batch_size = 64
  # Examples per evaluation / decoding batch.
  c.batching.eval_batch_size = 256
  # At most this many padded (src_len, tgt_len) shapes: jit compiles once per bucket.
  c.batching.num_buckets = 4
  # Round padded lengths up to a multiple of this.
  c.batching.round_to = 1

  # Each model.* key sets the attnlab.options.ModelOptions field of its name; a key that
  # names no field reaches the score and mechanism as an extra option (options.get(name)).
  c.model = ml_collections.ConfigDict()
  # Recurrent cell: rnn, gru or lstm.
  c.model.cell = "gru"
  # Embedding width (source and target).
  c.model.emb_dim = 32
  # Recurrent width (encoder per direction, and decoder).
  c.model.hidden_dim = 64
  # Stacked recurrent layers.
  c.model.encoder_layers = 1
  c.model.decoder_layers = 1
  # Bidirectional encoder (outputs 2 * hidden_dim wide).
  c.model.bidirectional = True
  # Decoder style: bahdanau, luong or none (no attention: RNNencdec).
  c.model.decoder = "luong"
  # Score function (attnlab.attention.SCORES): dot, scaled_dot, general, concat,
  # additive, additive_normalized, location, cosine.
  c.model.attention = "general"
  # Attention mechanism (attnlab.attention.MECHANISMS): global (soft, everywhere), local_m /
  # local_p (Luong 2015 windows), hard (Xu 2015, one sampled position), monotonic (Raffel 2017).
  c.model.mechanism = "global"
  # local_m / local_p: window half-width D, the window is [p_t - D, p_t + D]; local_p's
  # Gaussian has sigma = D / 2 (Luong et al. 2015 use D = 10).
  c.model.local_window = 10
  # hard: training estimator, reinforce (score function + moving-average baseline +
  # entropy bonus) or gumbel (straight-through Gumbel-softmax); evaluation takes the argmax.
  c.model.hard_estimator = "reinforce"
  # hard + gumbel: temperature of the relaxed sample behind the straight-through gradient.
  c.model.hard_temperature = 1.0
  # hard + reinforce: weight of the attention-entropy bonus (Xu et al. 2015's lambda_e).
  c.model.hard_entropy_weight = 0.01
  # hard + reinforce: decay of the moving-average reward baseline, in [0, 1).
  c.model.hard_baseline_decay = 0.9
  # monotonic: std of the Gaussian noise added to the pre-sigmoid energies in training
  # (Raffel et al. 2017, Sec. 2.4: pushes the stopping probabilities towards 0 or 1).
  c.model.monotonic_noise = 1.0
  # monotonic: initial value of the learned energy bias r (Raffel et al. 2017: -4 for long
  # sources; negative = low stopping probabilities at first, alignments move on).
  c.model.monotonic_bias = -1.0
  # Attention normalizer (attnlab.attention.NORMALIZERS): softmax, sparsemax, entmax15, hardmax.
  c.model.normalizer = "softmax"
  # Hidden width of additive / concat scores; 0 = hidden_dim.
  c.model.attention_dim = 0
  # Longest source the location score covers; 0 = the longest source in the data.
  c.model.max_src_len = 0
  # Location score only: add a bias, W_a h_t + b (Luong et al. 2015: softmax(W_a h_t), none).
  c.model.location_bias = False
  # Cosine score only: tau * cos(q, k), tau the (initial) inverse temperature, > 0; learned
  # (as log tau) unless cosine_learn_temperature=False.
  c.model.cosine_temperature = 10.0
  c.model.cosine_learn_temperature = True
  # Luong input feeding (h~_{t-1} joined to the next decoder input).
  c.model.input_feeding = True
  # Initial decoder state: dense (projection of the encoder's final state) or zeros.
  c.model.bridge = "dense"
  # Multi-head self-attention layers over the encoder outputs.
  c.model.encoder_self_attention_layers = 0
  # Causal self-attention over the decoder's previous outputs.
  c.model.decoder_self_attention = False
  # Heads of both self-attentions.
  c.model.num_heads = 1
  # Coverage (Tu et al. 2016; See et al. 2017): the decoder carries c_t, the sum of its past
  # attention weights, and feeds it into the scores as a per-key feature (additive scores:
  # v^T tanh(W q + U k_i + w_c c_ti + b)). Needs an attention decoder.
  c.model.coverage = False
  # Copy attention (pointer-generator, See et al. 2017): p_gen = sigmoid(w . [context; state;
  # input] + b) mixes the vocabulary distribution with the attention weights over the source,
  # P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i, over the target vocabulary
  # extended by each example's source words outside it, so names and numbers the target
  # vocabulary lacks can be copied. Needs an attention decoder and label_smoothing = 0.
  c.model.copy = False
  # Dropout rate (embeddings, between layers, before the output layer).
  c.model.dropout_rate = 0.0
  # Computation dtype of activations and matmuls: float32 or bfloat16 (mixed precision:
  # parameters, optimizer state, the softmax over the vocabulary and the loss stay float32).
  c.model.dtype = "float32"
  # Rematerialize the scanned encoder and decoder steps (jax.checkpoint on each scan body):
  # training keeps only the per-step carries and recomputes the rest in the backward pass,
  # so memory stays bounded for sources of hundreds of tokens, for ~30% more compute.
  c.model.remat = False

  c.train = ml_collections.ConfigDict()
  # Optimizer steps in the whole run.
  c.train.num_steps = 2000
  # Peak learning rate of Adam.
  c.train.learning_rate = 3e-3
  # Linear warmup steps, then the decay schedule.
  c.train.warmup_steps = 100
  # After warmup: cosine (to 10% of the peak at num_steps) or constant.
  c.train.schedule = "cosine"
  # Clip gradients to this global norm (0 = no clipping).
  c.train.grad_clip = 1.0
  # Decoupled weight decay (AdamW); 0 = plain Adam.
  c.train.weight_decay = 0.0
  # A non-finite loss or gradient: 'skip' the update (counted in metrics) or 'stop' with an
  # error naming the step; either way no non-finite update reaches the parameters.
  c.train.on_nonfinite = "skip"
  # Label smoothing of the training loss.
  c.train.label_smoothing = 0.0
  # Weight of See et al.'s (2017) coverage loss sum_t sum_i min(a_ti, c_ti) (per target token,
  # like the NLL; reported as train/coverage_loss); 0 = off. Works with or without
  # model.coverage (See et al. use both), needs an attention decoder.
  c.train.coverage_loss_weight = 0.0
  # Weight of the guided-alignment loss: cross-entropy from the task's true alignment
  # (rows normalised) to the attention weights, per target step with a link (Chen et al. 2016,
  # Garg et al. 2019; reported as train/guided_alignment_loss); 0 = off. Needs a task that
  # knows its alignment (date, copy, reverse, toy_translation) and an attention decoder.
  c.train.guided_alignment_weight = 0.0
  # Optimizer steps per dispatch to the device: consecutive steps whose batches share a shape
  # run as one compiled lax.scan (the updates of one step at a time, to float rounding; less
  # Python and dispatch overhead per step). Log/eval/checkpoint steps end a group, and
  # so does a change of length bucket (a short group runs step by step, a second compiled
  # program): it pays with batching.num_buckets=1 or tasks of one length, as the date task.
  c.train.steps_per_dispatch = 1
  # Print a `step | loss | input | target | prediction` line every this many steps.
  c.train.log_every = 500
  # Evaluate on the validation split every this many steps (and at the end).
  c.train.eval_every = 1000
  # Save a checkpoint every this many steps (and at the end).
  c.train.checkpoint_every = 1000
  # Keep this many most recent checkpoints (the best one is kept as well).
  c.train.keep_checkpoints = 2
  # Validation metric that picks the best checkpoint, and whether higher is better.
  c.train.best_metric = "exact_match"
  c.train.best_mode = "max"

  c.parallel = ml_collections.ConfigDict()
  # Data parallelism (attnlab.parallel): devices of the mesh's `data` axis, 0 = every device
  # (all TPU cores / GPUs). Batches are split by rows, so batching.batch_size must divide by
  # the device count; parameters are replicated. Results do not depend on the device count.
  c.parallel.num_devices = 0
  # Multi-host (TPU pod slices, several GPU hosts): call jax.distributed.initialize() first.
  # Cloud TPU, SLURM and Open MPI are detected automatically; otherwise set the three below.
  c.parallel.distributed = False
  # host:port of process 0 ('' = automatic).
  c.parallel.coordinator_address = ""
  # Number of processes (0 = automatic) and this process's index (-1 = automatic).
  c.parallel.num_processes = 0
  c.parallel.process_id = -1

  c.eval = ml_collections.ConfigDict()
  # Longest output when decoding; 0 = the longest target in the data + 1.
  c.eval.max_decode_len = 0
  # Beam size for evaluation decoding (1 = greedy).
  c.eval.beam_size = 1
  # GNMT length-penalty exponent for beam search.
  c.eval.length_penalty = 0.6
  # GNMT coverage-penalty weight beta for beam search: hypotheses are ranked by
  # log P / lp + beta * sum_i log(min(sum_t a_ti, 1)) over real source positions (Wu et al.
  # 2016, eq. 14); 0 = off. Beam search only (beam_size > 1); re-ranks the final beam.
  c.eval.coverage_penalty = 0.0
  # Source-length bucket boundaries for per-length metrics (empty = automatic).
  c.eval.length_boundaries = ()
  # Number of test examples whose attention heatmaps are written to the workdir.
  c.eval.num_heatmaps = 3
  # Evaluate on at most this many examples of a split (0 = all).
  c.eval.max_examples = 0
  # Decode mode, an input longer than the model's longest source: 'error' or 'truncate' (warn).
  c.eval.on_long_input = "error"
  return c


def shrink_for_smoke_test(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The ``:quick`` variant of an experiment (big_vision's ``runlocal``): tiny
  model, batches and splits, 6 steps, so a run takes seconds on a laptop CPU.

  Task-specific shrinking (e.g. shorter sentences) stays in the config file.
  """
  if "num_train" in config.data:
    config.data.num_train = min(config.data.num_train, 300)
  config.data.num_valid = min(config.data.num_valid, 30)
  config.data.num_test = min(config.data.num_test, 30)
  config.batching.batch_size = 16
  config.batching.eval_batch_size = 32
  config.batching.num_buckets = 1
  config.model.emb_dim, config.model.hidden_dim = 8, 16
  config.train.num_steps = 6
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 3
  config.eval.num_heatmaps = 1
  return config


def _one_of(config, key: str, valid) -> None:
  value = config
  for part in key.split("."):
    value = value[part]
  if value not in valid:
    raise ConfigError(key, f"unknown value {value!r}; valid choices: {', '.join(sorted(valid))}")


def _positive(config, key: str, allow_zero: bool = False) -> None:
  value = config
  for part in key.split("."):
    value = value[part]
  if not isinstance(value, int) or value < (0 if allow_zero else 1):
    raise ConfigError(key, f"must be an integer >= {0 if allow_zero else 1}, got {value!r}")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key (and its valid choices)."""
  _one_of(config, "data.task", TASKS)
  _one_of(config, "model.cell", cell_names())
  _one_of(config, "model.decoder", DECODER_STYLES)
  _one_of(config, "model.attention", score_names())
  _one_of(config, "model.mechanism", mechanism_names())
  _one_of(config, "model.hard_estimator", HARD_ESTIMATORS)
  _one_of(config, "model.normalizer", NORMALIZERS)
  _one_of(config, "model.bridge", BRIDGES)
  _one_of(config, "train.schedule", ("cosine", "constant"))
  _one_of(config, "train.best_mode", ("max", "min"))
  _one_of(config, "train.on_nonfinite", ("skip", "stop"))
  _one_of(config, "eval.on_long_input", ("error", "truncate"))
  _one_of(config, "model.dtype", DTYPES)
  for key in ("num_seeds", "model.emb_dim", "model.hidden_dim", "model.encoder_layers",
              "model.decoder_layers", "model.num_heads", "model.local_window",
              "batching.batch_size", "batching.eval_batch_size", "batching.num_buckets",
              "batching.round_to", "train.num_steps", "train.log_every", "train.eval_every",
              "train.checkpoint_every", "train.keep_checkpoints", "eval.beam_size",
              "train.steps_per_dispatch"):
    _positive(config, key)
  for key in ("data.train_max_src_len", "model.attention_dim", "model.max_src_len",
              "model.encoder_self_attention_layers", "train.warmup_steps", "eval.max_decode_len",
              "eval.num_heatmaps", "eval.max_examples", "parallel.num_devices"):
    _positive(config, key, allow_zero=True)
  if not 0.0 <= config.model.dropout_rate < 1.0:
    raise ConfigError("model.dropout_rate", f"must be in [0, 1), got {config.model.dropout_rate}")
  if not config.model.hard_temperature > 0:
    raise ConfigError("model.hard_temperature", f"must be > 0, got {config.model.hard_temperature}")
  if not config.model.hard_entropy_weight >= 0:
    raise ConfigError("model.hard_entropy_weight",
                      f"must be >= 0, got {config.model.hard_entropy_weight}")
  if not 0.0 <= config.model.hard_baseline_decay < 1.0:
    raise ConfigError("model.hard_baseline_decay",
                      f"must be in [0, 1), got {config.model.hard_baseline_decay}")
  if not config.model.monotonic_noise >= 0:
    raise ConfigError("model.monotonic_noise", f"must be >= 0, got {config.model.monotonic_noise}")
  if not isinstance(config.model.location_bias, bool):
    raise ConfigError("model.location_bias",
                      f"must be True or False, got {config.model.location_bias!r}")
  # .get: a workdir's config.json from before these keys existed lacks them.
  if not isinstance(config.model.get("cosine_learn_temperature", True), bool):
    raise ConfigError("model.cosine_learn_temperature", "must be True or False, got "
                      f"{config.model.cosine_learn_temperature!r}")
  tau = config.model.get("cosine_temperature", 10.0)
  if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < float("inf"):
    raise ConfigError("model.cosine_temperature", f"must be a finite number > 0, got {tau!r}")
  lr = config.train.learning_rate
  if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
    raise ConfigError("train.learning_rate", f"must be a finite number > 0, got {lr!r}")
  _validate_best_metric(config)
  _validate_length_boundaries(config)
  if config.num_seeds > 1 and config.train.steps_per_dispatch > 1:
    raise ConfigError("train.steps_per_dispatch", "multi-seed runs (num_seeds > 1) take one "
                      "step per dispatch: set it to 1, or run the seeds separately")
  if config.num_seeds > 1 and config.parallel.num_devices > 1:
    raise ConfigError("parallel.num_devices", "multi-seed runs (num_seeds > 1) run on one "
                      "device: set it to 0 or 1, or run the seeds separately")
  if config.model.decoder == "none" and config.model.bridge == "zeros":
    raise ConfigError("model.bridge", "the no-attention decoder needs bridge='dense' "
                      "(the source reaches it only through its initial state)")
  _validate_coverage_and_alignment(config)
  _validate_copy(config)
  enc_width = config.model.hidden_dim * (2 if config.model.bidirectional else 1)
  if config.model.encoder_self_attention_layers and enc_width % config.model.num_heads:
    raise ConfigError("model.num_heads", f"must divide the encoder output width {enc_width}")
  if config.model.decoder_self_attention and config.model.hidden_dim % config.model.num_heads:
    raise ConfigError("model.num_heads",
                      f"must divide hidden_dim={config.model.hidden_dim} for decoder self-attention")
  if config.data.task == "corpus":
    path = config.data.get("path", "")
    if not path:
      raise ConfigError("data.path", "the corpus task needs a tab-separated file or a folder of "
                        "line-aligned files: --config.data.path=FILE_OR_DIR")
    if not os.path.exists(path):
      raise ConfigError("data.path", f"no such file or folder: {path!r}")


def _non_negative_number(config, key: str) -> float:
  section, name = key.split(".")
  value = config[section][name]
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
    raise ConfigError(key, f"must be a number >= 0, got {value!r}")
  return value


# Metrics ``train.best_metric`` can rank checkpoints by (what evaluation reports), each with
# the direction in which it improves; bleu, alignment_error_rate and attention_entropy exist
# only for text tasks, tasks with a true alignment and attention models (validate_task).
BEST_METRICS = {"exact_match": "max", "token_accuracy": "max", "bleu": "max", "loss": "min",
                "perplexity": "min", "alignment_error_rate": "min", "attention_entropy": None}


def _validate_best_metric(config: ml_collections.ConfigDict) -> None:
  _one_of(config, "train.best_metric", BEST_METRICS)
  direction = BEST_METRICS[config.train.best_metric]
  if direction is not None and config.train.best_mode != direction:
    raise ConfigError("train.best_mode", f"{config.train.best_metric!r} is better when "
                      f"higher/lower: use best_mode={direction!r}, got {config.train.best_mode!r}")


def _validate_length_boundaries(config: ml_collections.ConfigDict) -> None:
  """Boundaries of the per-length buckets: positive integers, increasing."""
  value = config.eval.length_boundaries
  if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
      isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in value) or list(
          value) != sorted(set(value)):
    raise ConfigError("eval.length_boundaries", "must be increasing positive integers, e.g. "
                      f"--config.eval.length_boundaries='(5, 10, 20)', got {value!r}")


def _validate_coverage_and_alignment(config: ml_collections.ConfigDict) -> None:
  """Coverage, the coverage loss and penalty, and guided alignment need attention weights."""
  if not isinstance(config.model.coverage, bool):
    raise ConfigError("model.coverage", f"must be True or False, got {config.model.coverage!r}")
  no_attention = config.model.decoder == "none"
  if config.model.coverage and no_attention:
    raise ConfigError("model.coverage", "coverage sums attention weights, and decoder='none' "
                      "has none: use decoder='bahdanau' or 'luong'")
  for key in ("train.coverage_loss_weight", "train.guided_alignment_weight",
              "eval.coverage_penalty"):
    if _non_negative_number(config, key) > 0 and no_attention:
      raise ConfigError(key, "needs attention weights, and decoder='none' has none: set it "
                        "to 0 or use decoder='bahdanau' or 'luong'")
  if config.eval.coverage_penalty > 0 and config.eval.beam_size == 1:
    raise ConfigError("eval.coverage_penalty", "re-ranks beam-search hypotheses, and greedy "
                      "decoding (eval.beam_size=1) has none: set eval.beam_size > 1 or the "
                      "penalty to 0")


def _validate_copy(config: ml_collections.ConfigDict) -> None:
  """Copy attention copies through the attention weights, over an extended vocabulary."""
  copy = config.model.get("copy", False)
  if not isinstance(copy, bool):
    raise ConfigError("model.copy", f"must be True or False, got {copy!r}")
  if not copy:
    return
  if config.model.decoder == "none":
    raise ConfigError("model.copy", "copying needs attention weights over the source, and "
                      "decoder='none' has none: use decoder='bahdanau' or 'luong'")
  if config.train.label_smoothing > 0:
    # Smoothing would spread target mass over the extended vocabulary's unused OOV slots,
    # whose probability is exactly zero.
    raise ConfigError("train.label_smoothing", "must be 0 with model.copy=True (the extended "
                      "vocabulary has slots of probability zero)")


def validate_task(config: ml_collections.ConfigDict, has_alignment: bool,
                  is_text: bool = True) -> None:
  """The checks that need the built task: guided alignment needs its true alignment, and
  ``train.best_metric`` must be a metric the task reports."""
  metric = config.train.best_metric
  if ((metric == "bleu" and not is_text) or
      (metric == "alignment_error_rate" and not has_alignment) or
      (metric in ("alignment_error_rate", "attention_entropy")
       and config.model.decoder == "none")):
    raise ConfigError("train.best_metric", f"the {config.data.task!r} task with decoder="
                      f"{config.model.decoder!r} does not report {metric!r}")
  if config.train.guided_alignment_weight > 0 and not has_alignment:
    raise ConfigError("train.guided_alignment_weight",
                      f"the {config.data.task!r} task has no true alignment to guide the "
                      "attention with; set it to 0 or use a task with alignments (date, copy, "
                      "reverse, toy_translation)")


def model_options(config: ml_collections.ConfigDict, max_src_len: int) -> ModelOptions:
  """``config.model`` as one ``ModelOptions``: each key sets the field of its name, every
  other key becomes an extra option (``ModelOptions.extra``) for the score or mechanism that
  reads it. Also the attention-loss weights ``config.train.coverage_loss_weight`` /
  ``guided_alignment_weight``, which ``Seq2Seq.attention_losses`` applies.

  max_src_len: the longest source in the data (used when config.model.max_src_len is 0).
  """
  values = config.model.to_dict()
  values.update(
      attention_dim=values["attention_dim"] or None,  # 0 = hidden_dim
      max_src_len=values["max_src_len"] or max_src_len, dtype=DTYPES[values["dtype"]],
      coverage_loss_weight=float(config.train.coverage_loss_weight),
      guided_alignment_weight=float(config.train.guided_alignment_weight))
  return ModelOptions.from_flat(values)


def build_model(config: ml_collections.ConfigDict, src_vocab_size: int, tgt_vocab_size: int,
                max_src_len: int) -> Seq2Seq:
  """The Seq2Seq that ``config.model`` describes: options ``model_options(config, max_src_len)``."""
  return Seq2Seq(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                 options=model_options(config, max_src_len))
