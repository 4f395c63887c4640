"""Local attention (Luong et al. 2015, Sec. 3.2): look only inside a window around p_t.

For decoder step t with aligned position p_t, the query scores only the source
positions s with p_t - D <= s <= p_t + D (and s < S, the example's true source
length), and the weights are normalised within that window:

* ``local_m`` (monotonic): p_t = t, clipped to S - 1 so that a target longer
  than its source still has a non-empty window.
* ``local_p`` (predictive): p_t = (S - 1) * sigmoid(v_p^T tanh(W_p h_t)), then the
  window weights are multiplied by a Gaussian exp(-(s - p_t)^2 / (2 sigma^2)),
  sigma = D / 2 (Luong eq. 10), so they sum to at most 1. Luong writes S *
  sigmoid(.) for 1-based positions; with 0-based positions (S - 1) keeps p_t
  on a real source position, 0 <= p_t <= S - 1.

Only the 2D + 1 keys of the window are gathered and scored (``score_at``), so a
step costs O(D) score evaluations instead of O(src_len): the point of local
attention on long inputs. The dense weights [batch, q_len, k_len] are still
returned (zeros outside the window) for alignments and heatmaps. Under
differentiation the window is gathered again in the backward pass
(``Mechanism.recompute_in_backward``), so training keeps no [2D + 1, d] window per
step: less memory than global attention's weights once the source is long.

Each call sows p_t [batch, q_len] as ``('intermediates', 'position')`` for
inspection (``apply(..., mutable=['intermediates'])``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention.mechanisms import (Mechanism, gather_values, get_normalizer,
                                          register_mechanism, scatter_weights, score_at)
from attnlab.attention.scores import projection_width
from attnlab.options import Integer

Array = jax.Array


def source_lengths(mask: Array) -> Array:
  """mask [batch, k_len] bool -> true lengths S [batch] int32 (the number of allowed keys)."""
  return jnp.sum(mask, axis=-1).astype(jnp.int32)


def local_window(center: Array, half_width: int, mask: Array) -> tuple[Array, Array]:
  """The source positions of each window and which of them may be attended.

  Args:
    center: [batch, q_len] float, p_t.
    half_width: D (>= 1).
    mask: [batch, k_len] bool, True = may attend.

  Returns:
    positions [batch, q_len, n] int32, n = min(2D + 1, k_len), distinct within a
    row and covering every integer in [p_t - D, p_t + D] that lies in [0, k_len);
    allowed [batch, q_len, n] bool: inside [p_t - D, p_t + D] and in ``mask``.
  """
  k_len = mask.shape[-1]
  n = min(2 * half_width + 1, k_len)
  low, high = center - half_width, center + half_width  # [batch, q_len]
  # The window slides inside [0, k_len) at the edges; positions outside
  # [low, high] are masked, so it still covers exactly the integers of [low, high].
  start = jnp.clip(jnp.ceil(low), 0, k_len - n).astype(jnp.int32)
  positions = start[..., None] + jnp.arange(n, dtype=jnp.int32)  # [batch, q_len, n]
  inside = (positions >= low[..., None]) & (positions <= high[..., None])
  allowed = inside & jax.vmap(lambda m, p: m[p])(mask, positions)
  return positions, allowed


class _Local(Mechanism):
  """Shared body of ``local_m`` and ``local_p``: windowed attention around ``center``."""

  gaussian: ClassVar[bool] = False  # local_p: multiply by the Gaussian around p_t
  recompute_in_backward = True  # keep O(1) per step for the backward pass, not the window
  option_checks = {"local_window": Integer(1)}  # D: a window of at least 3 positions

  def center(self, query: Array, lengths: Array, t: Array) -> Array:
    """query [batch, q_len, d_q], lengths [batch], t [batch] -> p_t [batch, q_len] float."""
    raise NotImplementedError

  def __call__(self, score_fn, query, memory, *, t, state, deterministic):
    k_len = memory.mask.shape[-1]
    lengths = source_lengths(memory.mask)
    center = self.center(query, lengths, t)  # [batch, q_len]
    self.sow("intermediates", "position", center)
    positions, allowed = local_window(center, self.options.local_window, memory.mask)
    scores = score_at(score_fn, query, memory.keys, positions)  # [batch, q_len, n]
    weights = get_normalizer(self.options.normalizer)(scores, allowed)
    if self.gaussian:
      sigma = self.options.local_window / 2.0
      distance = positions.astype(weights.dtype) - center[..., None]
      weights = weights * jnp.exp(-jnp.square(distance) / (2.0 * sigma * sigma))
    values = gather_values(memory.values, positions)  # [batch, q_len, n, d_v]
    context = jnp.einsum("bqn,bqnd->bqd", weights, values.astype(weights.dtype))
    return context, scatter_weights(weights, positions, k_len), state


@register_mechanism("local_m")
class LocalM(_Local):
  """Luong's local-m: p_t = min(t, S - 1), window [p_t - D, p_t + D], softmax inside."""

  def center(self, query, lengths, t):
    steps = t[:, None] + jnp.arange(query.shape[1], dtype=jnp.int32)[None, :]
    return jnp.minimum(steps, jnp.maximum(lengths, 1)[:, None] - 1).astype(jnp.float32)


@register_mechanism("local_p")
class LocalP(_Local):
  """Luong's local-p: p_t = (S - 1) sigmoid(v_p^T tanh(W_p h_t)), Gaussian-weighted window.

  Parameters: ``W_p`` [d_q, attention_dim], ``v_p`` [attention_dim, 1].
  """

  gaussian = True

  @nn.compact
  def center(self, query, lengths, t):
    width = projection_width(self.options)
    hidden = jnp.tanh(nn.Dense(width, use_bias=False, dtype=self.dtype, name="W_p")(query))
    logit = nn.Dense(1, use_bias=False, dtype=self.dtype, name="v_p")(hidden)[..., 0]
    span = (jnp.maximum(lengths, 1) - 1).astype(jnp.float32)[:, None]
    return span * jax.nn.sigmoid(logit.astype(jnp.float32))

