"""Monotonic attention: the parallel expected alignment against the sequential recurrence,
stability, and hard monotonic decoding (forward only, Raffel's stopping rule)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import Attention, length_mask
from attnlab.attention.monotonic import expected_alignment

FEW = settings(max_examples=15, deadline=None)


def sequential_alignments(energies, mask):
  """Raffel et al. (2017) eq. 9 one position at a time, in float64.

  energies: [steps, batch, k_len]; mask: [batch, k_len]. alpha_0 = one-hot at 0;
  q_ij = (1 - p_{i,j-1}) q_{i,j-1} + alpha_{i-1,j}; alpha_ij = p_ij q_ij; p = 0 where masked.
  Returns alpha_1..alpha_steps: [steps, batch, k_len].
  """
  energies = np.asarray(energies, np.float64)
  steps, batch, k_len = energies.shape
  p = np.where(mask, 1.0 / (1.0 + np.exp(-energies)), 0.0)
  previous = np.zeros((batch, k_len))
  previous[:, 0] = mask.any(-1)
  out = []
  for i in range(steps):
    alpha = np.zeros((batch, k_len))
    for b in range(batch):
      q = 0.0
      for j in range(k_len):
        q = (1.0 - p[i, b, j - 1]) * q + previous[b, j] if j else previous[b, 0]
        alpha[b, j] = p[i, b, j] * q
    out.append(alpha)
    previous = alpha
  return np.stack(out)


@jax.jit
def parallel_alignments(energies, mask):
  """The library's expected_alignment applied step after step: [steps, batch, k_len]."""
  initial = jnp.zeros(mask.shape).at[:, 0].set(jnp.any(mask, -1))

  def step(previous, energies_i):
    alpha = expected_alignment(energies_i, previous, mask)
    return alpha, alpha

  return jax.lax.scan(step, initial, energies)[1]


@FEW
@given(lengths=st.lists(st.integers(0, 12), min_size=3, max_size=3),
       seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 4.0, 15.0]))
def test_expected_alignment_matches_the_sequential_recurrence(lengths, seed, scale):
  # One padded shape (one compilation); the lengths vary, an empty source included.
  steps, k_len = 5, 12
  rng = np.random.default_rng(seed)
  energies = (scale * rng.normal(size=(steps, 3, k_len))).astype(np.float32)
  mask = np.asarray(length_mask(jnp.asarray(lengths), k_len))
  alphas = np.asarray(parallel_alignments(energies, mask))
  np.testing.assert_allclose(alphas, sequential_alignments(energies, mask), rtol=0, atol=1e-5)
  assert np.all(alphas >= 0)
  assert np.all(alphas.sum(-1) <= 1.0 + 1e-5)  # mass may run off the end, never appear
  np.testing.assert_array_equal(alphas[:, ~mask], 0.0)


def test_expected_alignment_is_stable_on_long_sources_and_extreme_energies():
  # An energy of 40 makes 1 - p ~ 4e-18: after a few such positions the product of the
  # 1 - p underflows float32, and the textbook form alpha / cumprod(1 - p) divides by 0.
  # Log space stays exact. Row 1: p ~ 0.05 everywhere, the mass trickles to the end.
  k_len = 160
  rng = np.random.default_rng(0)
  energies = rng.choice([-40.0, -3.0, 0.0, 3.0, 40.0], size=(2, 2, k_len)).astype(np.float32)
  energies[:, 1, :] = -3.0
  mask = np.ones((2, k_len), bool)
  alphas = np.asarray(parallel_alignments(energies, mask))
  assert np.all(np.isfinite(alphas))
  np.testing.assert_allclose(alphas, sequential_alignments(energies, mask), rtol=0, atol=1e-5)

  def loss(e):
    return jnp.sum(parallel_alignments(e, mask) * jnp.arange(k_len))

  grads = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(energies)))
  assert np.all(np.isfinite(grads)) and np.abs(grads).sum() > 0


# --------------------------------------------------------------------------- the mechanism

BATCH, K_LEN, D = 3, 9, 6
LENGTHS = (9, 5, 1)


@functools.lru_cache(maxsize=None)
def _module(score):
  module = Attention.create(attention=score, mechanism="monotonic", attention_dim=8,
                            max_src_len=16, monotonic_bias=0.0)
  rng = np.random.default_rng(0)
  query = rng.normal(size=(BATCH, 1, D)).astype(np.float32)
  keys = rng.normal(size=(BATCH, K_LEN, D)).astype(np.float32)
  params = jax.jit(functools.partial(module.init, method="attend"))(jax.random.key(0), query, keys)
  return module, params


@functools.lru_cache(maxsize=None)
def _hard_decode(score, steps=6, seed=1):
  """Hard monotonic decoding of ``steps`` random queries, and the energies of every
  (step, position) from the soft path's scores: alignments [steps, batch, k_len], energies."""
  module, params = _module(score)
  rng = np.random.default_rng(seed)
  queries = rng.normal(size=(steps, BATCH, 1, D)).astype(np.float32)
  keys = rng.normal(size=(BATCH, K_LEN, D)).astype(np.float32)
  mask = np.asarray(length_mask(jnp.asarray(LENGTHS), K_LEN))

  def run(params):
    memory = module.apply(params, keys, keys, mask, method="prepare")
    state = module.apply(params, mask, method="initial_state")
    alignments, states, energies = [], [], []
    for query in queries:
      scores = module.apply(params, query, memory.keys,
                            method=lambda m, q, k: m.score_fn.score(q, k))[:, 0]
      energies.append(scores + params["params"]["mechanism_fn"]["r"])
      context, weights, state = module.apply(params, query, memory, state=state,
                                             deterministic=True, return_state=True)
      alignments.append(weights[:, 0])
      states.append(state)
    return jnp.stack(alignments), jnp.stack(states), jnp.stack(energies), context

  alignments, states, energies, context = jax.tree.map(np.asarray, jax.jit(run)(params))
  np.testing.assert_array_equal(states, alignments)  # the state is the last alignment
  return alignments, energies, mask, keys, context


def reference_hard_positions(energies, mask):
  """Raffel Sec. 2.3 in python: from the last position, stop at the first allowed j with
  p_ij >= 0.5; None once the end was passed. -> [steps][batch] positions."""
  steps, batch, k_len = energies.shape
  out, start = [], [0] * batch
  for i in range(steps):
    row = []
    for b in range(batch):
      chosen = None
      if start[b] is not None:
        for j in range(start[b], k_len):
          if mask[b, j] and energies[i, b, j] >= 0:
            chosen = j
            break
      row.append(chosen)
      start[b] = chosen
    out.append(row)
  return out


@pytest.mark.parametrize("score", ["general", "location"])  # location: scored in full
def test_hard_monotonic_decoding_follows_raffels_rule_and_never_moves_back(score):
  alignments, energies, mask, keys, context = _hard_decode(score)
  expected = reference_hard_positions(energies, mask)
  previous = np.zeros(BATCH, int)
  ended = np.zeros(BATCH, bool)
  for i, row in enumerate(expected):
    for b, position in enumerate(row):
      if position is None:
        np.testing.assert_array_equal(alignments[i, b], 0.0)
        ended[b] = True
        continue
      assert not ended[b], "attended again after passing the end"
      one_hot = np.zeros(K_LEN)
      one_hot[position] = 1.0
      np.testing.assert_array_equal(alignments[i, b], one_hot)
      assert position >= previous[b] and mask[b, position]
      previous[b] = position
  # Non-trivial: some rows move, some stay, the context is the attended value.
  positions = [p for row in expected for p in row if p is not None]
  assert len(set(positions)) > 2
  last = alignments[-1]
  np.testing.assert_allclose(context[:, 0], np.einsum("bk,bkd->bd", last, keys), atol=1e-6)


def test_soft_monotonic_needs_a_sample_rng_for_its_noise():
  module, params = _module("general")
  query = np.ones((BATCH, 1, D), np.float32)
  keys = np.ones((BATCH, K_LEN, D), np.float32)
  with pytest.raises(ValueError, match="'sample'"):
    jax.eval_shape(lambda: module.apply(params, query, keys, method="attend",
                                        deterministic=False))
  quiet = module.clone(options=module.options.replace(monotonic_noise=0.0))
  context, weights = jax.jit(lambda p: quiet.apply(p, query, keys, method="attend",
                                                   deterministic=False))(params)
  assert np.all(np.asarray(weights).sum(-1) <= 1.0 + 1e-6)
