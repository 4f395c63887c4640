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
  beside them), without putting ``configs/`` on ``sys.path``;
* ``apply_seeds_and_steps``: the ``seeds=N`` / ``steps=N`` arguments every sweep shares.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib

import ml_collections

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


def apply_seeds_and_steps(config: ml_collections.ConfigDict, args: dict):
  """The sweep-config arguments every sweep shares: ``seeds=N`` (vmapped seeds per trial;
  default 2 for the tiny profile, 10 for small and full: the seed is the unit of replication,
  and ``attnlab.intervals``' seed-level intervals need about that many to have power) and ``steps=N`` (train N steps,
  evaluating and checkpointing once, at the end)."""
  config.num_seeds = args["seeds"] or {"tiny": 2, "small": 10, "full": 10}[args["profile"]]
  if args["steps"]:
    config.train.num_steps = args["steps"]
    config.train.log_every = config.train.eval_every = args["steps"]
    config.train.checkpoint_every = args["steps"]
  return config


def base_config(task: str = "date") -> ml_collections.ConfigDict:
  """Every field of an experiment, with defaults and a comment each."""
  c = ml_collections.ConfigDict()
  # Seed of parameter initialisation, dropout and the training data order.
  c.seed = 0
  # Independent seeds trained side by side in one program (attnlab.training.multiseed: jax.vmap over
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
  # Explicit source-length upper bounds of the padded shapes instead of num_buckets quantiles
  # (empty = quantiles); the largest must cover the longest source of every split. A
  # multi-seed run whose training sources all fit one bound takes one call per step.
  c.batching.bucket_boundaries = ()
  # Each bucket's padded target length holds this quantile of its examples' target lengths
  # (1 = all); longer targets go to a later bucket with room (attnlab.data.make_buckets). Below
  # 1 it saves the padding a few long-target pairs would force on every batch of their bucket.
  c.batching.tgt_quantile = 1.0
  # Token-based training batches (fairseq's --max-tokens); 0 = off (batch_size rows). Each
  # length bucket's batches get as many rows as keep its padded source and target arrays within
  # this many tokens (rows * max(src_len, tgt_len) <= max_tokens; batch_size is then unused),
  # so a step holds about as many tokens on long sentences as on short ones. Evaluation keeps
  # eval_batch_size.
  c.batching.max_tokens = 0

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
  # Width of every score's projection: the hidden width of additive / concat scores and of
  # local_p's position network (0 = hidden_dim), and, when > 0, the width dot / scaled_dot /
  # general project query and keys to first, (W_q q) . (W_k k) (Britz et al. 2017; 0 = no
  # projection: Luong et al. 2015's q . k, keys projected to hidden_dim only if d_k differs).
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
  # Training steps (batches) in the whole run. With grad_accum_steps = k, a step is one
  # micro-batch and the optimizer updates every k-th step (num_steps / k updates); every step
  # count (warmup_steps, the schedule, *_every, test_at_steps) counts micro-batches too.
  c.train.num_steps = 2000
  # Gradient accumulation (optax.MultiSteps): average the gradients of this many consecutive
  # batches into one update, emulating a k-times larger batch; 1 = off. num_steps must be a
  # multiple of it. To emulate N updates of batch k * b: batch_size b, num_steps k * N (and
  # warmup_steps k times the warmup in updates).
  c.train.grad_accum_steps = 1
  # Peak learning rate of Adam.
  c.train.learning_rate = 3e-3
  # Linear warmup steps, then the decay schedule.
  c.train.warmup_steps = 100
  # After warmup: cosine (to 10% of the peak at num_steps), constant, inverse_sqrt
  # (peak * sqrt(warmup_steps / step), Vaswani et al. 2017) or reduce_on_plateau (constant,
  # times a scale that plateau_factor lowers when the training loss stops improving).
  c.train.schedule = "cosine"
  # reduce_on_plateau (optax.contrib): the training loss is averaged over windows of this many
  # steps; after plateau_patience windows without a better mean (by a relative 1e-4), the
  # learning rate is multiplied by plateau_factor.
  c.train.plateau_window = 100
  c.train.plateau_patience = 5
  c.train.plateau_factor = 0.5
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
  # Early stopping (attnlab.training.early_stopping): end training after this many evaluations
  # in a row without a better validation best_metric; 0 = off (train num_steps steps).
  c.train.early_stopping_patience = 0
  # An evaluation counts as better only when it beats the best so far by more than this.
  c.train.early_stopping_min_delta = 0.0
  # ... and by more than this fraction of the best so far (0.05: 5%), a criterion that means
  # "stopped improving" whatever the metric's scale (a loss falling from 0.007 to 0.0002
  # improves; one creeping from 0.1500 to 0.1499 does not). 0 = off.
  c.train.early_stopping_min_relative_delta = 0.0
  # Validation metric that picks the best checkpoint, and whether higher is better.
  c.train.best_metric = "exact_match"
  c.train.best_mode = "max"
  # Record the train step's device memory in summary.json's "cost" (attnlab.training.cost):
  # XLA's memory analysis of the compiled step on the largest batch shape, for one more
  # compilation when training starts. Train steps per second are recorded either way.
  c.train.measure_memory = False

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
  # Extra beam sizes for the final test evaluation, beside eval.beam_size's: e.g. (5,) also
  # scores the trained model on the test split with beam 5 (summary.json "test_beam": {"5":
  # metrics as "test"}; test_outcomes_beam5.jsonl), so one run gives greedy and beam per
  # length bucket (experiments.report's `decoding` axis). 1 = greedy. () = none.
  c.eval.test_beam_sizes = ()
  # Training steps at which the test split is evaluated too (eval.beam_size's decoding), beside
  # the final test of the best checkpoint: metrics.jsonl records of split "test_at_step" and
  # test_outcomes_step<k>.jsonl, so variants compare at matched amounts of training. () = none.
  c.eval.test_at_steps = ()
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
