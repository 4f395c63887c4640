"""The pure training pieces: ``TrainState``, the optimizer and its schedule, and the jitted
steps (``train_step``, ``train_steps`` for K steps in one dispatch, ``sharded_train_step``,
``eval_step``), plus ``new_state``. No I/O: the loop (``loop.py``) drives them.

A step is ``(state, batch, rng) -> (state, metrics)``: dropout draws from
``fold_in(rng, state.step)``, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from attnlab import losses, metrics as metrics_lib, parallel
from attnlab.attention import hard as hard_lib
from attnlab.data import PAD
from attnlab.options import ModelOptions

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Objective:
  """What the training loss adds to the target NLL (static: part of the compiled step).

  Attributes:
    coverage_loss_weight, guided_alignment_weight: ``train.*`` of those names, the weights of
      the auxiliary attention losses (``attention_losses``); 0 = off.
    reinforce_entropy_weight, reinforce_baseline_decay: hard attention's REINFORCE estimator
      (``attnlab.attention.hard.reinforce_loss``): its options ``model.hard_entropy_weight``
      and ``model.hard_baseline_decay``.
  """

  coverage_loss_weight: float = 0.0
  guided_alignment_weight: float = 0.0
  reinforce_entropy_weight: float = ModelOptions.hard_entropy_weight
  reinforce_baseline_decay: float = ModelOptions.hard_baseline_decay

  @classmethod
  def create(cls, train_config: ml_collections.ConfigDict, options: ModelOptions) -> "Objective":
    """The objective of ``config.train`` for a model of ``options``."""
    return cls(coverage_loss_weight=float(train_config.coverage_loss_weight),
               guided_alignment_weight=float(train_config.guided_alignment_weight),
               reinforce_entropy_weight=options.hard_entropy_weight,
               reinforce_baseline_decay=options.hard_baseline_decay)


class TrainState(train_state.TrainState):
  """Params, optimizer state and step (flax's TrainState), plus non-finite bookkeeping and
  the objective.

  Attributes:
    nonfinite_steps: how many updates were skipped for a non-finite loss or gradient.
    first_nonfinite_step: the first such step, -1 while there was none.
    reward_baseline: hard attention trained with REINFORCE only: the moving average of the
      per-example reward (minus the target NLL), the baseline of the score-function
      estimator (``attnlab.attention.hard``); stays 0 for every other model.
    objective: the loss's terms beside the NLL (``Objective``; static, as ``tx`` is: not
      checkpointed, the config gives it).
  """

  nonfinite_steps: Array = dataclasses.field(default_factory=lambda: jnp.zeros((), jnp.int32))
  first_nonfinite_step: Array = dataclasses.field(
      default_factory=lambda: jnp.full((), -1, jnp.int32))
  reward_baseline: Array = dataclasses.field(default_factory=lambda: jnp.zeros((), jnp.float32))
  objective: Objective = flax.struct.field(pytree_node=False, default=Objective())


# ---------------------------------------------------------------- optimizer

def inverse_sqrt_decay(peak: float, warmup_steps: int) -> optax.Schedule:
  """``peak * sqrt(warmup_steps / step)`` at ``step = warmup_steps + n`` (Vaswani et al. 2017,
  eq. 3, less its ``d_model**-0.5``, and fairseq's ``inverse_sqrt``): the decay after the
  warmup, given ``n``, the steps since it ended, as ``optax.join_schedules`` does. Without a
  warmup, ``peak / sqrt(max(step, 1))``. (optax has no inverse-square-root schedule.)"""
  base = max(warmup_steps, 1)
  return lambda n: peak * jnp.sqrt(base / jnp.maximum(n + warmup_steps, base))


def make_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning rate at each training step: a linear warmup from 0 to the peak
  (``train.learning_rate``) over ``train.warmup_steps``, then ``train.schedule``: cosine decay
  to 10% of the peak at ``train.num_steps``, constant, or inverse square root
  (``inverse_sqrt_decay``). ``reduce_on_plateau`` is warmup then constant here; the optimizer
  multiplies it by a scale that falls when the training loss stops improving
  (``make_optimizer``). Steps are training steps (batches; micro-batches under gradient
  accumulation), as ``train.num_steps`` and ``train.warmup_steps`` count them."""
  tc = train_config
  if tc.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tc.learning_rate, warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1), end_value=0.1 * tc.learning_rate)
  after = (inverse_sqrt_decay(tc.learning_rate, tc.warmup_steps)
           if tc.schedule == "inverse_sqrt" else optax.constant_schedule(tc.learning_rate))
  return optax.join_schedules(
      [optax.linear_schedule(0.0, tc.learning_rate, max(tc.warmup_steps, 1)), after],
      [tc.warmup_steps])


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam(W) with the schedule, after global-norm gradient clipping.

  With ``train.grad_accum_steps = k > 1``, ``optax.MultiSteps`` around it: the gradients of k
  consecutive training steps (micro-batches) are averaged and applied as one update on the
  k-th, the others leave the parameters unchanged. Training steps stay the unit of
  ``train.num_steps``, the schedule, logging and checkpoints (the accumulated gradients are
  in the optimizer state, so a checkpoint between two updates resumes exactly); the inner
  optimizer counts updates, so it reads the schedule at ``update * k``. The average weights
  each micro-batch's mean loss alike, so k micro-batches of b equal one batch of k * b
  exactly when they hold as many target tokens each.

  With ``train.schedule = 'reduce_on_plateau'``, ``optax.contrib.reduce_on_plateau`` after it,
  fed the training loss (the step's ``value``, see ``train_step_fn``): its mean over
  ``train.plateau_window`` steps is compared with the best such mean, and after
  ``train.plateau_patience`` windows without a better one the scale of every update is
  multiplied by ``train.plateau_factor``. The training loss, not the validation loss, so the
  step stays pure and the plateau state lives in the optimizer state, checkpointed and
  vmapped over seeds like the rest (the validation loss exists only on the host, every
  ``eval_every`` steps).
  """
  tc = train_config
  k = tc.grad_accum_steps
  schedule = make_schedule(tc)
  parts = []
  if tc.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(tc.grad_clip))
  learning_rate = schedule if k == 1 else (lambda update: schedule(update * k))
  parts.append(optax.adamw(learning_rate, weight_decay=tc.weight_decay))
  tx = optax.chain(*parts)
  if k > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation()
  if tc.schedule == "reduce_on_plateau":
    tx = optax.chain(tx, optax.contrib.reduce_on_plateau(
        factor=tc.plateau_factor, patience=tc.plateau_patience,
        accumulation_size=tc.plateau_window))
  return tx


def learning_rate_scale(opt_state) -> Array | None:
  """The factor ``reduce_on_plateau`` multiplies the schedule's learning rate by (1 until the
  first plateau), or None for an optimizer without it."""
  return optax.tree_utils.tree_get(opt_state, "scale", None)


# ---------------------------------------------------------------- steps

def target_mask(batch: dict) -> Array:
  """[batch, tgt_len] True at real target tokens (EOS included) of real examples."""
  return (batch["tgt_out"] != PAD) & batch["example_mask"][:, None]


def attention_losses(objective: Objective, attention: Array, target_mask: Array,
                     src_lengths: Array, alignment: Array | None = None) -> tuple[Array, dict]:
  """The weighted auxiliary attention losses of training (``attnlab.losses``).

  Each loss with a non-zero weight is also returned unweighted under its name, for the
  metrics: ``coverage_loss`` (per real target token, like the NLL) and
  ``guided_alignment_loss`` (per target step with at least one true link).

  Args:
    objective: the weights (``Objective.coverage_loss_weight``, ``guided_alignment_weight``).
    attention: [batch, tgt_len, src_len] weights of the teacher-forced pass.
    target_mask: [batch, tgt_len] bool, real target steps of real examples.
    src_lengths: [batch] true source lengths.
    alignment: [batch, tgt_len, src_len] true links (``batch['alignment']``); needed when
      ``guided_alignment_weight > 0``.

  Returns:
    total [] (0 when both weights are 0) and {name: unweighted mean loss []}.
  """
  total, parts = jnp.zeros((), jnp.float32), {}
  src_mask = jnp.arange(attention.shape[-1])[None, :] < src_lengths[:, None]
  if objective.coverage_loss_weight > 0:
    loss_sum, count = losses.coverage_loss(attention, target_mask, src_mask)
    parts["coverage_loss"] = loss_sum / jnp.maximum(count, 1)
    total = total + objective.coverage_loss_weight * parts["coverage_loss"]
  if objective.guided_alignment_weight > 0:
    if alignment is None:
      raise ValueError("guided_alignment_weight > 0 needs the batches' true alignment "
                       "(batch['alignment']); this task has none")
    loss_sum, count = losses.guided_alignment_loss(attention, alignment, target_mask)
    parts["guided_alignment_loss"] = loss_sum / jnp.maximum(count, 1)
    total = total + objective.guided_alignment_weight * parts["guided_alignment_loss"]
  return total, parts


def forward(state: TrainState, params, batch: dict, deterministic: bool, rng=None):
  rngs = None if deterministic else {"dropout": rng}
  return state.apply_fn({"params": params}, batch["src"], batch["src_lengths"],
                        batch["tgt_in"], deterministic, rngs=rngs,
                        src_ext=batch.get("src_ext"))


def train_step_fn(state: TrainState, batch: dict, rng: Array, label_smoothing: float = 0.0,
                on_nonfinite: str = "skip") -> tuple[TrainState, dict]:
  """One training step: (state, batch, rng) -> (state, metrics); ``train_step`` is its jit.
  (One optimizer update, or one micro-batch of ``train.grad_accum_steps``: ``make_optimizer``.)

  Dropout draws from ``fold_in(rng, state.step)``, hard and monotonic attention's
  samples and noise (rng stream ``'sample'``) from ``fold_in`` of that key by 1. Hard
  attention trained with REINFORCE adds the score-function surrogate
  (``attnlab.attention.hard.reinforce_loss``) to the loss and updates ``reward_baseline``;
  the coverage and guided-alignment losses (``attention_losses``, weights from
  ``state.objective``) are added too and reported unweighted as ``coverage_loss`` /
  ``guided_alignment_loss``. The
  reported ``loss`` stays the target NLL, comparable across models. A non-finite loss or
  gradient never reaches the parameters: the update is skipped (the step still
  advances, so the data order is unchanged) and counted. With
  ``on_nonfinite='stop'`` every update after the first non-finite one is
  skipped too, so the parameters stay the last good ones until the host sees
  ``first_nonfinite_step`` and stops (no per-step host sync). With ``reduce_on_plateau``
  the metrics add ``learning_rate_scale`` (``learning_rate_scale``).
  """
  step_rng = jax.random.fold_in(rng, state.step)
  rngs = {"dropout": step_rng, "sample": jax.random.fold_in(step_rng, 1)}
  mask = target_mask(batch)

  def loss_fn(params):
    (logits, attention), sown = state.apply_fn(
        {"params": params}, batch["src"], batch["src_lengths"], batch["tgt_in"], False,
        rngs=rngs, mutable=[hard_lib.SAMPLES], src_ext=batch.get("src_ext"))
    loss_sum, count = metrics_lib.sequence_cross_entropy(
        logits, batch["tgt_out"], mask, label_smoothing)
    loss = loss_sum / jnp.maximum(count, 1)
    extra = {}
    if sown:  # hard attention with REINFORCE sampled positions (static: depends on the model)
      token_nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["tgt_out"])
      rewards = -jnp.sum(jnp.where(mask, token_nll, 0.0), axis=1)  # [batch]
      surrogate, baseline = hard_lib.reinforce_loss(
          sown, rewards, state.reward_baseline, mask, batch["example_mask"], state.step > 0,
          state.objective.reinforce_entropy_weight, state.objective.reinforce_baseline_decay)
      extra = {"reinforce_loss": surrogate, "reward_baseline": baseline}
    # Coverage and guided-alignment losses (attnlab.losses), weighted by the objective's
    # coverage_loss_weight / guided_alignment_weight; nothing when both are 0.
    attention_loss, attention_metrics = attention_losses(
        state.objective, attention, mask, batch["src_lengths"], batch.get("alignment"))
    extra = {**extra, **attention_metrics}
    return (loss + extra.get("reinforce_loss", 0.0) + attention_loss,
            (loss, count, extra))

  (_, (loss, count, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  # flax's apply_gradients, with the loss that optax's reduce_on_plateau reads (make_optimizer)
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params, value=loss)
  updated = state.replace(step=state.step + 1, opt_state=opt_state,
                          params=optax.apply_updates(state.params, updates))
  # Finite loss and gradients can still give non-finite parameters (a NaN learning rate, an
  # overflowing optimizer moment): such an update is skipped like a non-finite gradient.
  params_finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                                     for x in jax.tree.leaves(updated.params)]))
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & params_finite
  apply = finite & (state.first_nonfinite_step < 0) if on_nonfinite == "stop" else finite
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(apply, n, o), new, old)  # noqa: E731
  new_state = updated.replace(
      params=keep(updated.params, state.params),
      opt_state=keep(updated.opt_state, state.opt_state),
      nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
      first_nonfinite_step=jnp.where((state.first_nonfinite_step < 0) & ~finite,
                                     state.step, state.first_nonfinite_step),
      reward_baseline=jnp.where(apply, extra.get("reward_baseline", state.reward_baseline),
                                state.reward_baseline))
  scale = learning_rate_scale(new_state.opt_state)
  if scale is not None:
    extra = {**extra, "learning_rate_scale": scale}
  return new_state, {"loss": loss, "tokens": count, "l2_grads": grad_norm,
                     "l2_params": optax.tree.norm(new_state.params),
                     "nonfinite_steps": new_state.nonfinite_steps, **extra}


train_step = jax.jit(train_step_fn, static_argnames=("label_smoothing", "on_nonfinite"),
                     donate_argnums=0)


def train_steps_fn(state: TrainState, batches: dict, rng: Array, label_smoothing: float = 0.0,
                 on_nonfinite: str = "skip") -> tuple[TrainState, dict]:
  """``len(batches)`` optimizer steps in one program: batches [steps, batch, ...] -> the
  state after the last step and that step's metrics (``train_step`` applied in turn, to float
  rounding: XLA may fuse the scanned program differently)."""
  def body(state, batch):
    state, metrics = train_step_fn(state, batch, rng, label_smoothing, on_nonfinite)
    return state, metrics

  state, metrics = jax.lax.scan(body, state, batches)
  return state, jax.tree.map(lambda x: x[-1], metrics)


train_steps = jax.jit(train_steps_fn, static_argnames=("label_smoothing", "on_nonfinite"),
                      donate_argnums=0)


@functools.lru_cache(maxsize=None)
def sharded_train_step(mesh: jax.sharding.Mesh, steps: int = 1, label_smoothing: float = 0.0,
                       on_nonfinite: str = "skip"):
  """``train_step`` (steps=1), or ``steps`` of them per dispatch, jitted with explicit shardings.

  Parameters, optimizer state, the key and the metrics are replicated over ``mesh``; batches
  are split by rows over its ``data`` axis ([batch, ...], or [steps, batch, ...] when
  ``steps > 1``). Returns ``step(state, batch, rng) -> (state, metrics)`` (state donated).
  """
  rep = parallel.replicated(mesh)
  fn = functools.partial(train_steps_fn if steps > 1 else train_step_fn,
                         label_smoothing=label_smoothing, on_nonfinite=on_nonfinite)
  return jax.jit(fn, in_shardings=(rep, parallel.batch_sharded(mesh, stacked=steps > 1), rep),
                 out_shardings=(rep, rep), donate_argnums=0)


@jax.jit
def eval_step(state: TrainState, batch: dict) -> dict:
  """Teacher-forced sums over one batch: loss, tokens, correct tokens, entropy; and per
  position, ``token_correct`` [batch, tgt_len] (argmax == target, False at padding) and
  ``attention`` [batch, tgt_len, src_len]."""
  logits, attention = forward(state, state.params, batch, True)
  mask = target_mask(batch)
  loss_sum, count = metrics_lib.sequence_cross_entropy(logits, batch["tgt_out"], mask)
  correct, _ = metrics_lib.token_correct(logits, batch["tgt_out"], mask)
  src_mask = jnp.arange(batch["src"].shape[1])[None, :] < batch["src_lengths"][:, None]
  entropy, rows = metrics_lib.attention_entropy(attention, mask, src_mask)
  token_correct = (jnp.argmax(logits, axis=-1) == batch["tgt_out"]) & mask  # [batch, tgt_len]
  return {"loss_sum": loss_sum, "tokens": count, "correct": correct, "entropy_sum": entropy,
          "entropy_rows": rows, "attention": attention, "token_correct": token_correct}


def new_state(model, train_config: ml_collections.ConfigDict, seed: int,
              src_len: int, tgt_len: int) -> TrainState:
  """Fresh parameters of ``model`` (from ``seed``) and optimizer state.

  src_len, tgt_len: the dummy batch's shape [1, src_len] / [1, tgt_len] (parameters do not
  depend on it; a shape the model will see anyway compiles once).
  """
  dummy_src = jnp.ones((1, src_len), jnp.int32)
  dummy_tgt = jnp.ones((1, tgt_len), jnp.int32)
  params = jax.jit(model.init)(
      jax.random.key(seed), dummy_src, jnp.ones((1,), jnp.int32), dummy_tgt,
      src_ext=dummy_src)["params"]  # src_ext: read by copy models only
  return TrainState.create(apply_fn=model.apply, params=params, tx=make_optimizer(train_config),
                           objective=Objective.create(train_config, model.options))
