"""Monotonic attention (Raffel et al. 2017): read the source left to right, never back.

At output step i the decoder scans the source from where it stopped at step i - 1;
at each position j it stops with probability p_ij = sigmoid(e_ij), where the
energy e_ij = score(s_i, h_j) + r (any registered score, plus a learned scalar
bias r initialised to ``monotonic_bias``).

* Training (``deterministic=False``) uses the expected alignment (Raffel eq. 9):
  q_ij = (1 - p_{i,j-1}) q_{i,j-1} + alpha_{i-1,j},  alpha_ij = p_ij q_ij,
  computed for all j at once in its cumulative-product form
  q_i = cumprod(1 - p_i) * cumsum(alpha_{i-1} / cumprod(1 - p_i)) (exclusive
  cumprod), evaluated in log space (``expected_alignment``) so that no product
  underflows and nothing is divided by ~0. The context is sum_j alpha_ij h_j;
  alpha_i sums to at most 1 (the rest of the mass ran off the end of the
  source). Gaussian noise of std ``monotonic_noise`` is added to e_ij
  (Sec. 2.4, rng stream ``'sample'``) so that training pushes p towards 0 or 1.
* Evaluation (``deterministic=True``) decodes hard (Sec. 2.3): from the
  previous position, move right until the first position with p_ij >= 0.5
  (e_ij >= 0) and attend to it alone (context = h_j); if none is left, the
  context is zero, and so for every later step. Each source position is scored
  at most once per output step it is reached in, and positions never move
  backwards, so decoding a whole output reads each position O(1) times: linear
  time (a ``while_loop`` that scores one key per iteration).

The state carried across decoder steps is the previous alignment alpha_{i-1}
[batch, k_len], one-hot at position 0 before the first step (Raffel's
alpha_{0,j} = delta_j); in evaluation it is the one-hot of the attended
position (all zeros once the end was passed).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from attnlab.attention.mechanisms import Mechanism, register_mechanism, score_at, weighted_sum
from attnlab.options import Real

Array = jax.Array

# Finite stand-ins for log(0) and an energy of -infinity (p = 0): exp() of them is 0,
# and they stay finite under the sums below, so no NaN reaches a gradient.
_LOG_ZERO = -1.0e30
_NEVER = -1.0e9


def expected_alignment(energies: Array, previous: Array, mask: Array | None = None) -> Array:
  """One step of the training-time expected monotonic alignment (Raffel eq. 9), in parallel.

  Args:
    energies: [batch, k_len] pre-sigmoid energies e_ij (p_ij = sigmoid(e_ij)).
    previous: [batch, k_len] alpha_{i-1} (non-negative, summing to at most 1).
    mask: [batch, k_len] bool, True = may attend (p = 0 elsewhere: the mass
      passes over). ``None``: all positions.

  Returns:
    alpha_i [batch, k_len], non-negative, summing to at most sum(previous).
  """
  if mask is not None:
    energies = jnp.where(mask, energies, _NEVER)
  log_p = jax.nn.log_sigmoid(energies)           # log p_ij
  log_not_p = jax.nn.log_sigmoid(-energies)      # log (1 - p_ij), no cancellation
  # Exclusive cumulative sum: log prod_{k<j} (1 - p_ik).
  log_cumprod = jnp.cumsum(log_not_p, axis=-1)
  log_cumprod = jnp.concatenate([jnp.zeros_like(log_cumprod[:, :1]), log_cumprod[:, :-1]], -1)
  positive = previous > 0
  log_previous = jnp.where(positive, jnp.log(jnp.where(positive, previous, 1.0)), _LOG_ZERO)
  # log q_ij = log cumprod_j + log sum_{k<=j} alpha_{i-1,k} / cumprod_k. A parallel prefix
  # scan: O(k_len log k_len) work, where lax.cumlogsumexp's CPU lowering (reduce_window)
  # is O(k_len^2), ten times slower at k_len = 200.
  log_q = log_cumprod + jax.lax.associative_scan(
      jnp.logaddexp, log_previous - log_cumprod, axis=previous.ndim - 1)
  alpha = jnp.exp(log_p + log_q)
  return alpha if mask is None else alpha * mask


def _last_allowed_plus_one(mask: Array) -> Array:
  """mask [batch, k_len] -> [batch] int32: one past the last allowed position (0 if none)."""
  k_len = mask.shape[-1]
  last_from_end = jnp.argmax(mask[:, ::-1], axis=-1)
  return jnp.where(jnp.any(mask, axis=-1), k_len - last_from_end, 0).astype(jnp.int32)


@register_mechanism("monotonic")
class Monotonic(Mechanism):
  """Monotonic attention (see the module docstring). Parameter: the energy bias ``r`` []."""

  stateful = True
  option_checks = {"monotonic_noise": Real("[0, inf)"), "monotonic_bias": Real("(-inf, inf)")}

  def initial_state(self, mask: Array) -> Array:
    """mask [batch, k_len] -> alpha_0 [batch, k_len]: one-hot at position 0."""
    first = jax.nn.one_hot(jnp.zeros(mask.shape[:1], jnp.int32), mask.shape[-1])
    return first * jnp.any(mask, axis=-1, keepdims=True)

  @nn.compact
  def __call__(self, score_fn, query, memory, *, t, state, deterministic):
    r = self.param("r", nn.initializers.constant(self.options.monotonic_bias), ())
    contexts, alignments = [], []
    for i in range(query.shape[1]):  # query i is the output step after query i - 1
      query_i = query[:, i:i + 1]  # [batch, 1, d_q]
      if deterministic:
        state = self._hard_step(score_fn, query_i, memory, state, r)
      else:
        energies = score_fn.score(query_i, memory.keys)[:, 0] + r  # [batch, k_len]
        if self.options.monotonic_noise > 0:
          if not self.has_rng("sample"):
            raise ValueError("monotonic attention in training mode adds noise to its energies: "
                             "pass rngs={'sample': key} to apply (or monotonic_noise=0)")
          noise = jax.random.normal(self.make_rng("sample"), energies.shape, energies.dtype)
          energies = energies + self.options.monotonic_noise * noise
        state = expected_alignment(energies, state, memory.mask)
      alignments.append(state)
      contexts.append(weighted_sum(state[:, None, :], memory.values))
    return jnp.concatenate(contexts, 1), jnp.stack(alignments, 1), state

  def _hard_step(self, score_fn, query: Array, memory, previous: Array, r: Array) -> Array:
    """Hard monotonic decoding of one output step (Raffel Sec. 2.3).

    query [batch, 1, d_q], previous: one-hot [batch, k_len] of the last attended
    position (zeros: the end was passed) -> the new one-hot alignment.
    """
    k_len = memory.mask.shape[-1]
    end = _last_allowed_plus_one(memory.mask)  # [batch]
    if score_fn.position_dependent:  # e.g. location: one vector of scores per query
      energies = score_fn.score(query, memory.keys)[:, 0] + r  # [batch, k_len]
      energy_at = lambda j: jnp.take_along_axis(energies, j[:, None], axis=1)[:, 0]  # noqa: E731
    else:
      energy_at = lambda j: score_at(  # noqa: E731
          score_fn, query, memory.keys, j[:, None, None])[:, 0, 0] + r

    def finished(j):  # [batch] -> past the end, or may attend at j and p_ij >= 0.5
      reading = jnp.minimum(j, k_len - 1)
      allowed = jnp.take_along_axis(memory.mask, reading[:, None], axis=1)[:, 0]
      return (j >= end) | (allowed & (energy_at(reading) >= 0))

    started = jnp.any(previous > 0, axis=-1)
    j = jnp.where(started, jnp.argmax(previous, axis=-1), k_len).astype(jnp.int32)
    j = jnp.minimum(j, end)  # [batch]; j == end: nothing left to read
    # The first read happens outside the loop (it also creates the score's
    # parameters at init); each iteration then moves the unfinished rows right by one.
    done = finished(j)

    def cond(module, carry):
      return jnp.any(~carry[1])

    def body(module, carry):
      j, done = carry
      j = jnp.where(done, j, j + 1)
      return j, done | finished(j)

    j, _ = nn.while_loop(cond, body, self, (j, done))
    attended = (j < end)[:, None]
    return jax.nn.one_hot(jnp.minimum(j, k_len - 1), k_len, dtype=previous.dtype) * attended
