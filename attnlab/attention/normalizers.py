"""Attention normalizers beyond softmax: sparsemax, entmax15 and hardmax.

Each maps scores [..., k_len] and a mask (True = may attend) to weights on the
simplex over the allowed keys, with the same rules as ``masked_softmax``: masked
keys get exactly 0 and a fully masked row is all zeros with finite gradients.
They register themselves in ``mechanisms.NORMALIZERS`` and are selected with
``--config.model.normalizer=NAME``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from attnlab.attention.mechanisms import masked_softmax, register_normalizer

Array = jax.Array


_FLOOR = -4.0  # below every support: see _shift


def _shift(scores: Array, mask: Array | None) -> tuple[Array, Array | None]:
  """Scores minus the row's largest allowed score, floored at -4; masked keys -4.

  Sparsemax and entmax15 are shift-invariant, so subtracting the maximum changes
  no weight, but it keeps their closed forms accurate at any magnitude: in
  float32, sums of scores around 1e4 (or with a common offset of 1e4) lose the
  1e-3 that decides the weights. A weight is at most 1, so tau >= max - 1 for
  sparsemax (tau >= max/2 - 1 on z/2 for entmax15) and a key at -4 lies at least
  1 below tau: flooring far keys and masked keys there leaves them outside the
  support with weight exactly 0 (their gradient is 0 anyway), and bounds every
  value in [-4, 0], so no sum in the sort algorithms cancels. Computed in at
  least float32; the max is a constant for autodiff (the weights do not depend
  on it).

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  Returns z: [..., k_len] float32 (or wider) in [-4, 0] with max 0 over allowed
  keys (all -4 in a fully masked row), and the mask broadcast to ``scores``
  (or None).
  """
  scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
  if mask is None:
    top = jnp.max(scores, axis=-1, keepdims=True)
  else:
    mask = jnp.broadcast_to(mask, scores.shape)
    top = jnp.max(jnp.where(mask, scores, jnp.finfo(scores.dtype).min), axis=-1, keepdims=True)
    top = jnp.where(jnp.any(mask, axis=-1, keepdims=True), top, 0.0)
  z = jnp.maximum(scores - jax.lax.stop_gradient(top), _FLOOR)
  return (z if mask is None else jnp.where(mask, z, _FLOOR)), mask


def _apply_mask(weights: Array, mask: Array | None) -> Array:
  return weights if mask is None else jnp.where(mask, weights, 0.0)


@register_normalizer("sparsemax")
def sparsemax(scores: Array, mask: Array | None = None) -> Array:
  """Sparsemax (Martins & Astudillo 2016): the Euclidean projection of the
  scores onto the probability simplex, p = max(z - tau, 0).

  The projection is optax's ``projections.projection_simplex`` (the sort-based
  algorithm, their Algorithm 1, with the closed-form Jacobian as its JVP), per
  row of the shifted scores (``_shift``). Exact zeros outside the support.

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  Returns weights: [..., k_len], dtype of ``scores``.
  """
  z, mask = _shift(scores, mask)  # float32 here also for bfloat16 scores: optax's JVP
  # rule fails on them (its primal promotes to float32, the tangent stays bfloat16).
  # projection_simplex projects a whole pytree onto one simplex: map it over rows.
  rows = jax.vmap(optax.projections.projection_simplex)(z.reshape(-1, z.shape[-1]))
  return _apply_mask(rows.reshape(z.shape), mask).astype(scores.dtype)


@register_normalizer("entmax15")
def entmax15(scores: Array, mask: Array | None = None) -> Array:
  """1.5-entmax (Peters, Niculae & Martins 2019): p = max(z/2 - tau, 0)^2,
  between softmax (alpha=1) and sparsemax (alpha=2); sparse but smoother.

  tau from the exact sort-based algorithm (their Algorithm 2) on the shifted
  scores (``_shift``): with u = z/2 sorted descending, for each k the candidate
  tau_k = mean_k - sqrt(max((1 - k (meansq_k - mean_k^2)) / k, 0)); the support
  is the largest k with tau_k <= u_(k).

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  Returns weights: [..., k_len], dtype of ``scores``.
  """
  z, mask = _shift(scores, mask)
  u = z / 2.0
  u_sorted = -jnp.sort(-u, axis=-1)
  k = jnp.arange(1, u.shape[-1] + 1, dtype=u.dtype)
  mean = jnp.cumsum(u_sorted, axis=-1) / k
  mean_sq = jnp.cumsum(u_sorted * u_sorted, axis=-1) / k
  delta = (1.0 - k * (mean_sq - mean * mean)) / k
  # Double where: sqrt's gradient at 0 is inf, and inf * 0 would put NaN in the
  # gradient of every row where some candidate k has delta <= 0.
  positive = delta > 0.0
  tau_k = mean - jnp.where(positive, jnp.sqrt(jnp.where(positive, delta, 1.0)), 0.0)
  support = jnp.sum(tau_k <= u_sorted, axis=-1, keepdims=True)
  tau = jnp.take_along_axis(tau_k, support.astype(jnp.int32) - 1, axis=-1)
  return _apply_mask(jnp.square(jnp.maximum(u - tau, 0.0)), mask).astype(scores.dtype)


@register_normalizer("hardmax")
def hardmax(scores: Array, mask: Array | None = None) -> Array:
  """One-hot on the highest allowed score, with a straight-through gradient.

  The forward value is the one-hot argmax (ties: the first); the gradient is
  the masked softmax's (Bengio et al. 2013 straight-through), so it trains,
  though biasedly; at evaluation it is a plain argmax.

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  """
  soft = masked_softmax(scores, mask)
  filled = scores if mask is None else jnp.where(
      jnp.broadcast_to(mask, scores.shape), scores, jnp.finfo(scores.dtype).min)
  hard = jax.nn.one_hot(jnp.argmax(filled, axis=-1), scores.shape[-1], dtype=scores.dtype)
  if mask is not None:
    hard = hard * jnp.any(jnp.broadcast_to(mask, scores.shape), axis=-1, keepdims=True)
  return soft + jax.lax.stop_gradient(hard - soft)
