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

from attnlab.attention.mechanisms import masked_softmax, register_normalizer

Array = jax.Array


def _fill_masked(scores: Array, mask: Array | None) -> tuple[Array, Array | None]:
  """Replaces masked scores by (largest allowed score - 2).

  Sparse normalizers give zero weight to every score below max - 1 (a weight
  is at most 1), so such a key is outside the support, and the value stays
  finite (no -inf arithmetic, no NaN in gradients).
  """
  if mask is None:
    return scores, None
  mask = jnp.broadcast_to(mask, scores.shape)
  top = jnp.max(jnp.where(mask, scores, jnp.finfo(scores.dtype).min), axis=-1, keepdims=True)
  top = jnp.where(jnp.any(mask, axis=-1, keepdims=True), top, 0.0)
  return jnp.where(mask, scores, jax.lax.stop_gradient(top) - 2.0), mask


def _apply_mask(weights: Array, mask: Array | None) -> Array:
  return weights if mask is None else jnp.where(mask, weights, 0.0)


@register_normalizer("sparsemax")
def sparsemax(scores: Array, mask: Array | None = None) -> Array:
  """Sparsemax (Martins & Astudillo 2016): the Euclidean projection of the
  scores onto the probability simplex, p = max(z - tau, 0).

  tau comes from the sort-based algorithm (their Algorithm 1): with z sorted
  descending, k(z) = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)} and
  tau = (sum_{j<=k(z)} z_(j) - 1) / k(z). Exact zeros outside the support;
  differentiable almost everywhere (autodiff of the closed form).

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  """
  z, mask = _fill_masked(scores, mask)
  z_sorted = -jnp.sort(-z, axis=-1)
  k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
  cumsum = jnp.cumsum(z_sorted, axis=-1)
  support = 1.0 + k * z_sorted > cumsum
  k_z = jnp.sum(support, axis=-1, keepdims=True)  # >= 1: the largest score is always in
  tau = (jnp.take_along_axis(cumsum, k_z.astype(jnp.int32) - 1, axis=-1) - 1.0) / k_z
  return _apply_mask(jnp.maximum(z - tau, 0.0), mask)


@register_normalizer("entmax15")
def entmax15(scores: Array, mask: Array | None = None) -> Array:
  """1.5-entmax (Peters, Niculae & Martins 2019): p = max(z/2 - tau, 0)^2,
  between softmax (alpha=1) and sparsemax (alpha=2); sparse but smoother.

  tau from the exact sort-based algorithm (their Algorithm 2): with
  u = z/2 sorted descending, for each k the candidate
  tau_k = mean_k - sqrt(max((1 - k (meansq_k - mean_k^2)) / k, 0)); the support
  is the largest k with tau_k <= u_(k).

  scores: [..., k_len]; mask: broadcastable, True = may attend.
  """
  z, mask = _fill_masked(scores, mask)
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
  return _apply_mask(jnp.square(jnp.maximum(u - tau, 0.0)), mask)


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
