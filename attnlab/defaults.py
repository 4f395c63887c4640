"""What config files build on, and nothing heavier: configs are data.

``configs/*.py`` and ``configs/sweeps/*.py`` import ``ml_collections`` and this module only
(never JAX, Flax, models or launchers), so reading a config costs milliseconds and a sweep
file can be expanded on a machine without an accelerator stack. It holds

* ``base_config(task)``: every field of an experiment, with its default and a comment each
  (``attnlab.config`` validates them and builds the model they describe);
* ``shrink_for_smoke_test``: the generic part of a ``:quick`` variant;
* ``parse_arg``: the one way a config takes a variant (``configs/date.py:quick``,
  ``configs/sweeps/long_sentence.py:small,task=mar_eng``), as big_vision's ``bvcc.parse_arg``;
* ``load_config_file``: another config file by path (sweeps build on the experiment configs
  beside them), without putting ``configs/`` on ``sys.path``.

The arguments every sweep file shares (``seeds=N``, ``steps=N``): ``attnlab.sweeps``.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import ml_collections

from attnlab import options
from attnlab.data.base import default_data_config


def parse_arg(arg: str | None, **defaults) -> dict:
  """A config argument ``"small,task=mar_eng"`` -> {"profile": "small", "task": ...}.

  The first bare word is the profile (``defaults`` must name a ``profile``; ``profiles``, if
  given, lists the valid ones); ``key=value`` pairs override ``defaults`` (values are parsed
  as the default's type). Unknown keys or profiles fail with the valid ones.
  """
  profiles = defaults.pop("profiles", None)
  result = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, eq, value = part.partition("=")
    if not eq:
      key, value = "profile", part
    if key not in defaults:
      raise ValueError(f"unknown argument {key!r} in {arg!r}; valid: {', '.join(defaults)}")
    kind = type(defaults[key])
    result[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
  if profiles is not None and result.get("profile") not in profiles:
    raise ValueError(f"unknown config argument {result.get('profile')!r}; valid: "
                     f"{', '.join(p for p in profiles if p)}")
  return result


def load_config_file(path: str | os.PathLike):
  """Imports a config file by path, as ml_collections' config_flags does (putting
  ``configs/`` on sys.path would let ``configs/copy.py`` shadow the standard ``copy``)."""
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such file: {path}")
  spec = importlib.util.spec_from_file_location(
      "attnlab_config_" + pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def base_config(task: str = "date") -> ml_collections.ConfigDict:
  """Every field of an experiment, with defaults and a comment each: the run's own fields and
  one section each (``data``, ``batching``, ``model``, ``train``, ``parallel``, ``eval``)."""
  c = ml_collections.ConfigDict()
  # Seed of parameter initialisation, dropout and the training data order.
  c.seed = 0
  # Independent seeds trained side by side in one program (attnlab.training.multiseed: jax.vmap
  # over parameters, optimizer state and RNG keys); seed s runs exactly as a separate run with
  # seed = seed + s would. 1 = one ordinary run.
  c.num_seeds = 1
  # Modules imported before the config is validated and its run built, by name, so that what
  # they register (a score function, mechanism or task defined outside attnlab) can be named
  # here without this file importing them (or JAX): e.g. ('my_lab.scores',).
  c.imports = ()
  # Task and its data (fields depend on the task: attnlab.data.tasks.default_data_config).
  c.data = default_data_config(task)
  c.batching = batching_config()
  c.model = model_config()
  c.train = train_config()
  c.parallel = parallel_config()
  c.eval = eval_config()
  return c


def model_config() -> ml_collections.ConfigDict:
  """The model section: one key per ``attnlab.options.ModelOptions`` field, with its default
  (the field's comment says what it means). A key added to it that names no field reaches the
  score and mechanism as an extra option (``options.get(name, default)``)."""
  return ml_collections.ConfigDict(options.defaults())


def batching_config() -> ml_collections.ConfigDict:
  """How examples become batches (attnlab.data.batching)."""
  c = ml_collections.ConfigDict()
  # Examples per training batch.
  c.batch_size = 64
  # Examples per evaluation / decoding batch.
  c.eval_batch_size = 256
  # At most this many padded (src_len, tgt_len) shapes: jit compiles once per bucket.
  c.num_buckets = 4
  # Round padded lengths up to a multiple of this.
  c.round_to = 1
  # Explicit source-length upper bounds of the padded shapes instead of num_buckets quantiles
  # (empty = quantiles); the largest must cover the longest source of every split. A
  # multi-seed run whose training sources all fit one bound takes one call per step.
  c.bucket_boundaries = ()
  # Each bucket's padded target length holds this quantile of its examples' target lengths
  # (1 = all); longer targets go to a later bucket with room (attnlab.data.make_buckets). Below
  # 1 it saves the padding a few long-target pairs would force on every batch of their bucket.
  c.tgt_quantile = 1.0
  # Token-based training batches (fairseq's --max-tokens); 0 = off (batch_size rows). Each
  # length bucket's batches get as many rows as keep its padded source and target arrays within
  # this many tokens (rows * max(src_len, tgt_len) <= max_tokens; batch_size is then unused),
  # so a step holds about as many tokens on long sentences as on short ones. Evaluation keeps
  # eval_batch_size.
  c.max_tokens = 0
  return c


def train_config() -> ml_collections.ConfigDict:
  """The optimizer, its schedule, the loss's terms and the training loop's rhythm."""
  c = ml_collections.ConfigDict()
  # Training steps (batches) in the whole run. With grad_accum_steps = k, a step is one
  # micro-batch and the optimizer updates every k-th step (num_steps / k updates); every step
  # count (warmup_steps, the schedule, *_every, test_at_steps) counts micro-batches too.
  c.num_steps = 2000
  # Gradient accumulation (optax.MultiSteps): average the gradients of this many consecutive
  # batches into one update, emulating a k-times larger batch; 1 = off. num_steps must be a
  # multiple of it. To emulate N updates of batch k * b: batch_size b, num_steps k * N (and
  # warmup_steps k times the warmup in updates).
  c.grad_accum_steps = 1
  # Peak learning rate of Adam.
  c.learning_rate = 3e-3
  # Linear warmup steps, then the decay schedule.
  c.warmup_steps = 100
  # After warmup: cosine (to 10% of the peak at num_steps), constant, inverse_sqrt
  # (peak * sqrt(warmup_steps / step), Vaswani et al. 2017) or reduce_on_plateau (constant,
  # times a scale that plateau_factor lowers when the training loss stops improving).
  c.schedule = "cosine"
  # reduce_on_plateau (optax.contrib): the training loss is averaged over windows of this many
  # steps; after plateau_patience windows without a better mean (by a relative 1e-4), the
  # learning rate is multiplied by plateau_factor.
  c.plateau_window = 100
  c.plateau_patience = 5
  c.plateau_factor = 0.5
  # Clip gradients to this global norm (0 = no clipping).
  c.grad_clip = 1.0
  # Decoupled weight decay (AdamW); 0 = plain Adam.
  c.weight_decay = 0.0
  # A non-finite loss or gradient: 'skip' the update (counted in metrics) or 'stop' with an
  # error naming the step; either way no non-finite update reaches the parameters.
  c.on_nonfinite = "skip"
  # Label smoothing of the training loss.
  c.label_smoothing = 0.0
  # Weight of See et al.'s (2017) coverage loss sum_t sum_i min(a_ti, c_ti) (per target token,
  # like the NLL; reported as train/coverage_loss); 0 = off. Works with or without
  # model.coverage (See et al. use both), needs an attention decoder.
  c.coverage_loss_weight = 0.0
  # Weight of the guided-alignment loss: cross-entropy from the task's true alignment
  # (rows normalised) to the attention weights, per target step with a link (Chen et al. 2016,
  # Garg et al. 2019; reported as train/guided_alignment_loss); 0 = off. Needs a task that
  # knows its alignment (date, copy, reverse, toy_translation) and an attention decoder.
  c.guided_alignment_weight = 0.0
  # Optimizer steps per dispatch to the device: consecutive steps whose batches share a shape
  # run as one compiled lax.scan (the updates of one step at a time, to float rounding; less
  # Python and dispatch overhead per step). Log/eval/checkpoint steps end a group, and
  # so does a change of length bucket (a short group runs step by step, a second compiled
  # program): it pays with batching.num_buckets=1 or tasks of one length, as the date task.
  c.steps_per_dispatch = 1
  # Print a `step | loss | input | target | prediction` line every this many steps.
  c.log_every = 500
  # Evaluate on the validation split every this many steps (and at the end).
  c.eval_every = 1000
  # Save a checkpoint every this many steps (and at the end).
  c.checkpoint_every = 1000
  # Keep this many most recent checkpoints (the best one is kept as well).
  c.keep_checkpoints = 2
  # Early stopping (attnlab.training.early_stopping): end training after this many evaluations
  # in a row without a better validation best_metric; 0 = off (train num_steps steps).
  c.early_stopping_patience = 0
  # An evaluation counts as better only when it beats the best so far by more than this.
  c.early_stopping_min_delta = 0.0
  # ... and by more than this fraction of the best so far (0.05: 5%), a criterion that means
  # "stopped improving" whatever the metric's scale (a loss falling from 0.007 to 0.0002
  # improves; one creeping from 0.1500 to 0.1499 does not). 0 = off.
  c.early_stopping_min_relative_delta = 0.0
  # Validation metric that picks the best checkpoint, and whether higher is better.
  c.best_metric = "exact_match"
  c.best_mode = "max"
  # Record the train step's device memory in summary.json's "cost" (attnlab.training.cost):
  # XLA's memory analysis of the compiled step on the largest batch shape, for one more
  # compilation when training starts. Train steps per second are recorded either way.
  c.measure_memory = False
  return c


def parallel_config() -> ml_collections.ConfigDict:
  """Devices and hosts (attnlab.parallel)."""
  c = ml_collections.ConfigDict()
  # Data parallelism (attnlab.parallel): devices of the mesh's `data` axis, 0 = every device
  # (all TPU cores / GPUs). Batches are split by rows, so batching.batch_size must divide by
  # the device count; parameters are replicated. Results do not depend on the device count.
  c.num_devices = 0
  # Multi-host (TPU pod slices, several GPU hosts): call jax.distributed.initialize() first.
  # Cloud TPU, SLURM and Open MPI are detected automatically; otherwise set the three below.
  c.distributed = False
  # host:port of process 0 ('' = automatic).
  c.coordinator_address = ""
  # Number of processes (0 = automatic) and this process's index (-1 = automatic).
  c.num_processes = 0
  c.process_id = -1
  return c


def eval_config() -> ml_collections.ConfigDict:
  """Evaluation and decoding."""
  c = ml_collections.ConfigDict()
  # Longest output when decoding; 0 = the longest target in the data + 1.
  c.max_decode_len = 0
  # Beam size for evaluation decoding (1 = greedy).
  c.beam_size = 1
  # GNMT length-penalty exponent for beam search.
  c.length_penalty = 0.6
  # GNMT coverage-penalty weight beta for beam search: hypotheses are ranked by
  # log P / lp + beta * sum_i log(min(sum_t a_ti, 1)) over real source positions (Wu et al.
  # 2016, eq. 14); 0 = off. Beam search only (beam_size > 1); re-ranks the final beam.
  c.coverage_penalty = 0.0
  # Extra beam sizes for the final test evaluation, beside eval.beam_size's: e.g. (5,) also
  # scores the trained model on the test split with beam 5 (summary.json "test_beam": {"5":
  # metrics as "test"}; test_outcomes_beam5.jsonl), so one run gives greedy and beam per
  # length bucket (experiments.report's `decoding` axis). 1 = greedy. () = none.
  c.test_beam_sizes = ()
  # Training steps at which the test split is evaluated too (eval.beam_size's decoding), beside
  # the final test of the best checkpoint: metrics.jsonl records of split "test_at_step" and
  # test_outcomes_step<k>.jsonl, so variants compare at matched amounts of training. () = none.
  c.test_at_steps = ()
  # Source-length bucket boundaries for per-length metrics (empty = automatic).
  c.length_boundaries = ()
  # Number of test examples whose attention heatmaps are written to the workdir.
  c.num_heatmaps = 3
  # Evaluate on at most this many examples of a split (0 = all).
  c.max_examples = 0
  # Decode mode, an input longer than the model's longest source: 'error' or 'truncate' (warn).
  c.on_long_input = "error"
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
