"""The experiment config: validation, and the model it describes (the defaults: ``defaults``).

Experiment files in ``configs/`` start from ``base_config(task)`` and change a
few fields; ``validate`` checks a config before anything is built, and
``build_model`` turns it into a ``Seq2Seq`` (models never read configs): ``model_options``
makes ``config.model`` one ``attnlab.options.ModelOptions`` value, here and nowhere else.

This is the one boundary where options are checked. The generic ones are listed below
(``INTEGER_MINIMUMS``, ``REAL_RANGES``, ``validate``); each variant contributes the checks of
its own options through its registry entry (``Score.option_checks``,
``Mechanism.option_checks``, ``DECODER_STYLES[style]``: ``variant_checks``), so the modules
that read them trust them. ``config.imports`` is imported first (``import_modules``), so a
variant registered outside attnlab is checked like the others.
"""

from __future__ import annotations

import importlib
import os

import ml_collections

from attnlab.attention import MECHANISMS, NORMALIZERS, SCORES
from attnlab.data.tasks import TASKS
from attnlab.data.text import SPM_MODEL_TYPES
from attnlab.defaults import base_config, shrink_for_smoke_test  # noqa: F401  (re-exported)
from attnlab.models import BRIDGES, DECODER_STYLES, Seq2Seq, cell_names
from attnlab.options import DTYPES, Flag, Integer, ModelOptions, OneOf, Real
from attnlab.options import in_interval  # noqa: F401  (re-exported)


# train.schedule names (attnlab.training.steps.make_schedule / make_optimizer).
SCHEDULES = ("cosine", "constant", "inverse_sqrt", "reduce_on_plateau")

class ConfigError(ValueError):
  """A config value that cannot work; names the key and the valid choices."""

  def __init__(self, key: str, message: str):
    super().__init__(f"config.{key}: {message}")
    self.key = key


ABSENT = object()  # _value of a key a config lacks


def _value(config, key: str):
  """The value at the dotted ``key``, or ``ABSENT``."""
  value = config
  for part in key.split("."):
    if part not in value:
      return ABSENT
    value = value[part]
  return value


def _one_of(config, key: str, valid) -> None:
  _check(config, key, OneOf(tuple(valid)))


def _check(config, key: str, check, absent_ok: bool = False) -> None:
  """ConfigError naming ``key`` when ``check`` finds its value wrong, or when the config lacks
  it (unless ``absent_ok``: a plug-in's option, which a config need not set). A config starts
  from ``attnlab.defaults.base_config``, and a run's config.json is read back with today's
  keys (``attnlab.run_config.upgrade_config``), so only a config built otherwise lacks one."""
  value = _value(config, key)
  if value is ABSENT:
    if absent_ok:
      return
    raise ConfigError(key, "is missing: start a config from attnlab.defaults.base_config, and "
                      "read a run's config.json with attnlab.run_config.from_json")
  problem = check.problem(value)
  if problem:
    raise ConfigError(key, problem)


# The integer options (counts, sizes, intervals, seeds) and the least value each takes.
INTEGER_MINIMUMS = {
    **dict.fromkeys(("num_seeds", "model.emb_dim", "model.hidden_dim", "model.encoder_layers",
                     "model.decoder_layers", "model.num_heads",
                     "batching.batch_size", "batching.eval_batch_size", "batching.num_buckets",
                     "batching.round_to", "train.num_steps", "train.log_every",
                     "train.eval_every", "train.checkpoint_every", "train.keep_checkpoints",
                     "eval.beam_size", "train.steps_per_dispatch", "train.grad_accum_steps",
                     "train.plateau_window", "train.plateau_patience"), 1),
    **dict.fromkeys(("seed", "data.train_max_src_len", "model.attention_dim",
                     "model.encoder_self_attention_layers",
                     "train.warmup_steps", "eval.max_decode_len", "eval.num_heatmaps",
                     "eval.max_examples", "parallel.num_devices", "parallel.num_processes",
                     "train.early_stopping_patience", "batching.max_tokens"), 0),
    "parallel.process_id": -1,  # -1: automatic
}

# The real-valued options and the interval each must lie in (a finite number, never True or
# False): '[' / ']' include the bound, '(' / ')' leave it out. (A variant's own options: its
# registry entry, variant_checks.)
REAL_RANGES = {
    "train.learning_rate": "(0, inf)",
    "train.grad_clip": "[0, inf)",  # 0: no clipping
    "train.weight_decay": "[0, inf)",
    "train.label_smoothing": "[0, 1)",  # 1 would leave no mass on the reference token
    "train.coverage_loss_weight": "[0, inf)",
    "train.guided_alignment_weight": "[0, inf)",
    "train.early_stopping_min_delta": "[0, inf)",
    "train.early_stopping_min_relative_delta": "[0, 1)",
    "train.plateau_factor": "(0, 1)",  # 1 would never lower the learning rate
    "batching.tgt_quantile": "(0, 1]",
    "model.dropout_rate": "[0, 1)",
    "eval.length_penalty": "[0, inf)",
    "eval.coverage_penalty": "[0, inf)",
}


def variant_checks() -> list[tuple[str, object]]:
  """(``model.<option>``, check) of every registered score function's and mechanism's own
  options (``option_checks`` of each registry entry): an option's valid values do not depend
  on whether this run's variant reads it, so all are checked (a sweep shares them)."""
  return [(f"model.{name}", check)
          for registry in (SCORES, MECHANISMS) for entry in registry.values()
          for name, check in entry.option_checks.items()]


def import_modules(config: ml_collections.ConfigDict) -> None:
  """Imports ``config.imports`` (module names), so what they register can be named; a module
  that does not import is a ConfigError naming it."""
  names = config.imports
  if isinstance(names, str) or not all(isinstance(name, str) for name in names):
    raise ConfigError("imports", f"must be a list of module names, got {names!r}")
  for name in names:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise ConfigError("imports", f"cannot import {name!r}: {e}") from None


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first bad key (and its valid choices), after importing
  ``config.imports``."""
  import_modules(config)
  _one_of(config, "data.task", TASKS)
  _one_of(config, "model.cell", cell_names())
  _one_of(config, "model.decoder", DECODER_STYLES)
  _one_of(config, "model.attention", SCORES)
  _one_of(config, "model.mechanism", MECHANISMS)
  _one_of(config, "model.normalizer", NORMALIZERS)
  _one_of(config, "model.bridge", BRIDGES)
  _one_of(config, "train.schedule", SCHEDULES)
  _one_of(config, "train.best_mode", ("max", "min"))
  _one_of(config, "train.on_nonfinite", ("skip", "stop"))
  _one_of(config, "eval.on_long_input", ("error", "truncate"))
  _one_of(config, "model.dtype", DTYPES)
  for key, low in INTEGER_MINIMUMS.items():
    _check(config, key, Integer(low))
  for key, interval in REAL_RANGES.items():
    _check(config, key, Real(interval))
  for key in ("train.measure_memory", "model.coverage", "model.copy"):
    _check(config, key, Flag())
  for key, check in variant_checks():
    _check(config, key, check, absent_ok=True)
  model = config.model.to_dict()
  for requirement in DECODER_STYLES[config.model.decoder]:
    problem = requirement.problem(model)
    if problem:
      raise ConfigError(f"model.{requirement.name}", problem)
  _validate_best_metric(config)
  _validate_length_boundaries(config)
  _validate_bucket_boundaries(config)
  _validate_test_beam_sizes(config)
  _validate_test_at_steps(config)
  _validate_grad_accum(config)
  if config.num_seeds > 1 and config.train.steps_per_dispatch > 1:
    raise ConfigError("train.steps_per_dispatch", "multi-seed runs (num_seeds > 1) take one "
                      "step per dispatch: set it to 1, or run the seeds separately")
  if config.num_seeds > 1 and config.parallel.num_devices > 1:
    raise ConfigError("parallel.num_devices", "multi-seed runs (num_seeds > 1) run on one "
                      "device: set it to 0 or 1, or run the seeds separately")
  _validate_coverage_and_alignment(config)
  _validate_copy(config)
  enc_width = config.model.hidden_dim * (2 if config.model.bidirectional else 1)
  if config.model.encoder_self_attention_layers and enc_width % config.model.num_heads:
    raise ConfigError("model.num_heads", f"must divide the encoder output width {enc_width}")
  if config.model.decoder_self_attention and config.model.hidden_dim % config.model.num_heads:
    raise ConfigError("model.num_heads", f"must divide hidden_dim={config.model.hidden_dim} "
                      "for decoder self-attention")
  if config.data.task == "corpus":
    path = config.data.path
    if not path:
      raise ConfigError("data.path", "the corpus task needs a tab-separated file or a folder of "
                        "line-aligned files: --config.data.path=FILE_OR_DIR")
    if not os.path.exists(path):
      raise ConfigError("data.path", f"no such file or folder: {path!r}")
    _validate_sentencepiece(config.data)


def _validate_sentencepiece(data) -> None:
  """The corpus task's SentencePiece options agree with each other and with data.tokenizer.

  Whether a named .model file exists is checked when the task is built (training and eval),
  not here: decode rebuilds the tokenizer from the workdir's vocab.json, without the file.
  """
  model_type, joint = data.spm_model_type, data.spm_joint
  paths = {key: data[key] for key in ("spm_model", "src_spm_model", "tgt_spm_model")}
  if model_type not in SPM_MODEL_TYPES:
    raise ConfigError("data.spm_model_type", f"must be one of {', '.join(SPM_MODEL_TYPES)}, "
                      f"got {model_type!r}")
  if not isinstance(joint, bool):
    raise ConfigError("data.spm_joint", f"must be True or False, got {joint!r}")
  for key, path in paths.items():
    if not isinstance(path, str):
      raise ConfigError(f"data.{key}", f"must be a path to a SentencePiece .model file or '', "
                        f"got {path!r}")
  if paths["spm_model"] and (paths["src_spm_model"] or paths["tgt_spm_model"]):
    raise ConfigError("data.spm_model", "names one model for both sides: leave "
                      "data.src_spm_model and data.tgt_spm_model empty, or set only those")
  if bool(paths["src_spm_model"]) != bool(paths["tgt_spm_model"]):
    raise ConfigError("data.src_spm_model", "needs data.tgt_spm_model too (one .model file a "
                      "side), or name one file for both with data.spm_model")
  used = [key for key, value in (("spm_model_type", model_type != "unigram"),
                                 ("spm_joint", joint), *paths.items()) if value]
  if used and data.tokenizer != "sentencepiece":
    raise ConfigError(f"data.{used[0]}", "applies to SentencePiece subwords: set "
                      "--config.data.tokenizer=sentencepiece")
  if any(paths.values()) and (joint or model_type != "unigram"):
    raise ConfigError("data.spm_joint" if joint else "data.spm_model_type", "chooses how a "
                      "model is trained, but a .model file is named (data.*spm_model)")


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
  if not _increasing_positive_ints(value):
    raise ConfigError("eval.length_boundaries", "must be increasing positive integers, e.g. "
                      f"--config.eval.length_boundaries='(5, 10, 20)', got {value!r}")


def _increasing_positive_ints(value) -> bool:
  return not isinstance(value, str) and isinstance(value, (tuple, list)) and all(
      isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in value) and list(
          value) == sorted(set(value))


def _validate_bucket_boundaries(config: ml_collections.ConfigDict) -> None:
  """Explicit padded source lengths: increasing positive integers (empty: quantiles). Whether
  the largest covers the data is checked when the task is built (``preparation.prepare``)."""
  value = config.batching.bucket_boundaries
  if not _increasing_positive_ints(value):
    raise ConfigError("batching.bucket_boundaries", "must be increasing positive integers, "
                      f"e.g. --config.batching.bucket_boundaries='(30, 60)', got {value!r}")


def _distinct_positive_ints(config: ml_collections.ConfigDict, key: str, example: str) -> tuple:
  """``config``'s eval ``key``, which must be distinct positive integers; ConfigError naming
  ``example`` otherwise."""
  value = config.eval[key]
  if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
      isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value) or len(
          set(value)) != len(value):
    raise ConfigError(f"eval.{key}", "must be distinct positive integers, e.g. "
                      f"--config.eval.{key}='{example}', got {value!r}")
  return tuple(value)


def _validate_test_beam_sizes(config: ml_collections.ConfigDict) -> None:
  """Extra beam sizes of the final test evaluation: distinct positive integers (one equal to
  eval.beam_size is skipped: the summary's "test" holds its results). Beam search works with
  every decoder (``decoding.beam_search``), as eval.beam_size does; only a coverage penalty
  needs a beam (> 1), since greedy decoding has no hypotheses to re-rank."""
  value = _distinct_positive_ints(config, "test_beam_sizes", "(5,)")
  if 1 in value and config.eval.coverage_penalty > 0:
    raise ConfigError("eval.test_beam_sizes", "1 (greedy) cannot apply eval.coverage_penalty "
                      "(it re-ranks beam hypotheses): list beam sizes > 1 or set the penalty to 0")


def _validate_test_at_steps(config: ml_collections.ConfigDict) -> None:
  """Steps of the matched-step test evaluations: distinct positive integers."""
  _distinct_positive_ints(config, "test_at_steps", "(1000, 2000)")


def _validate_grad_accum(config: ml_collections.ConfigDict) -> None:
  """train.num_steps counts micro-batches: a whole number of accumulated updates."""
  k = config.train.grad_accum_steps
  if k > 1 and config.train.num_steps % k:
    raise ConfigError("train.grad_accum_steps", f"must divide train.num_steps="
                      f"{config.train.num_steps} (which counts batches, one update every "
                      f"grad_accum_steps of them), got {k}")


def _validate_coverage_and_alignment(config: ml_collections.ConfigDict) -> None:
  """The coverage loss and penalty, and guided alignment need attention weights (coverage
  itself: the ``none`` style's requirements, ``DECODER_STYLES``)."""
  no_attention = config.model.decoder == "none"
  for key in ("train.coverage_loss_weight", "train.guided_alignment_weight",
              "eval.coverage_penalty"):
    if _value(config, key) > 0 and no_attention:  # a number >= 0 (REAL_RANGES)
      raise ConfigError(key, "needs attention weights, and decoder='none' has none: set it "
                        "to 0 or use decoder='bahdanau' or 'luong'")
  if config.eval.coverage_penalty > 0 and config.eval.beam_size == 1:
    raise ConfigError("eval.coverage_penalty", "re-ranks beam-search hypotheses, and greedy "
                      "decoding (eval.beam_size=1) has none: set eval.beam_size > 1 or the "
                      "penalty to 0")


def _validate_copy(config: ml_collections.ConfigDict) -> None:
  """Copy attention predicts over an extended vocabulary (that it needs attention weights:
  the ``none`` style's requirements, ``DECODER_STYLES``)."""
  if config.model.copy and config.train.label_smoothing > 0:
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
  reads it; a field the section lacks keeps its default (a run's config.json has every key:
  ``attnlab.run_config.upgrade_config``).

  max_src_len: the longest source in the data (used when config.model.max_src_len is 0).
  """
  values = config.model.to_dict()
  values["max_src_len"] = values.get("max_src_len") or max_src_len
  return ModelOptions.from_flat(values)


def build_model(config: ml_collections.ConfigDict, src_vocab_size: int, tgt_vocab_size: int,
                max_src_len: int) -> Seq2Seq:
  """The Seq2Seq that ``config.model`` describes: options ``model_options(config, max_src_len)``."""
  return Seq2Seq(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                 options=model_options(config, max_src_len))
