"""Local attention (local_m, local_p): windows, zero weight outside them, p_t within the
example's length, agreement with global attention restricted to the window."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import MECHANISMS, Attention, global_attention, length_mask
from attnlab.attention.local import local_window

FEW = settings(max_examples=25, deadline=None)
K_LEN = 10


@functools.lru_cache(maxsize=None)
def _jitted_window(half_width):
  return jax.jit(functools.partial(local_window, half_width=half_width))


@FEW
@given(center=st.floats(-3.0, K_LEN + 3.0, width=32), half_width=st.sampled_from([1, 2, 6]),
       length=st.integers(0, K_LEN))
def test_window_holds_exactly_the_allowed_integers_of_its_range(center, half_width, length):
  mask = np.arange(K_LEN)[None, :] < length
  positions, allowed = _jitted_window(half_width)(jnp.full((1, 1), center, jnp.float32),
                                                  mask=jnp.asarray(mask))
  positions, allowed = np.asarray(positions)[0, 0], np.asarray(allowed)[0, 0]
  assert len(positions) == min(2 * half_width + 1, K_LEN)
  assert len(set(positions.tolist())) == len(positions)  # distinct
  assert positions.min() >= 0 and positions.max() < K_LEN
  center32 = np.float32(center)
  wanted = {s for s in range(length)
            if center32 - half_width <= s <= center32 + half_width}
  assert set(positions[allowed].tolist()) == wanted


# --------------------------------------------------------------------------- the mechanisms

BATCH, Q_LEN, D, D_V, WINDOW = 3, 3, 6, 4, 2
LENGTHS = (9, 5, 1)
T = (0, 3, 7)  # decoder step of each example's first query; query i is step t + i
CASES = [(mechanism, score) for mechanism in ("local_m", "local_p")
         for score in ("general", "additive", "location")]


@functools.lru_cache(maxsize=None)
def _local_results():
  """For every CASES (mechanism, score): p_t, weights, context, and the reference weights
  from the full scores (global attention inside the window, times local_p's Gaussian).

  One jitted program for all cases (compilation is most of the cost).
  """
  rng = np.random.default_rng(0)
  query = rng.normal(size=(BATCH, Q_LEN, D)).astype(np.float32)
  keys = rng.normal(size=(BATCH, K_LEN, D)).astype(np.float32)
  values = rng.normal(size=(BATCH, K_LEN, D_V)).astype(np.float32)
  mask = length_mask(jnp.asarray(LENGTHS), K_LEN)
  t = jnp.asarray(T, jnp.int32)
  modules = {case: Attention.create(attention=case[1], mechanism=case[0], attention_dim=8,
                                    max_src_len=16, local_window=WINDOW) for case in CASES}

  def run(key):
    out = {}
    for case, module in modules.items():
      params = {"params": module.init(key, query, keys, values, mask, t=t,
                                      method="attend")["params"]}
      (context, weights), sown = module.apply(params, query, keys, values, mask, t=t,
                                              method="attend", mutable=["intermediates"])
      center = sown["intermediates"]["mechanism_fn"]["position"][0]  # [batch, q_len]
      memory = module.apply(params, keys, values, mask, method="prepare")
      scores = module.apply(params, query, memory.keys,
                            method=lambda m, q, k: m.score_fn.score(q, k))
      s = jnp.arange(K_LEN)[None, None, :]
      in_window = (jnp.abs(s - center[..., None]) <= WINDOW) & mask[:, None, :]
      _, reference = global_attention(scores, values, in_window)
      if case[0] == "local_p":
        sigma = WINDOW / 2
        reference = reference * jnp.exp(-(s - center[..., None]) ** 2 / (2 * sigma**2))
      out[case] = dict(center=center, weights=weights, context=context, reference=reference)
    return out

  return jax.tree.map(np.asarray, jax.jit(run)(jax.random.key(0))), values, np.asarray(mask)


@pytest.mark.parametrize("mechanism,score", CASES)
def test_local_weights_are_zero_outside_the_window_and_p_t_within_the_length(mechanism, score):
  results, values, mask = _local_results()
  r = results[mechanism, score]
  center, weights = r["center"], r["weights"]
  lengths = np.asarray(LENGTHS)[:, None]
  assert np.all(center >= 0) and np.all(center <= lengths - 1)  # p_t on a real position
  if mechanism == "local_m":
    steps = np.asarray(T)[:, None] + np.arange(Q_LEN)[None, :]
    np.testing.assert_array_equal(center, np.minimum(steps, lengths - 1))
  else:
    assert not np.allclose(center, center[:1, :1])  # predicted, not constant
  s = np.arange(K_LEN)[None, None, :]
  outside = (np.abs(s - center[..., None]) > WINDOW) | ~mask[:, None, :]
  np.testing.assert_array_equal(weights[outside], 0.0)  # exactly zero
  assert np.all(weights >= 0)
  sums = weights.sum(-1)
  if mechanism == "local_m":
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)
  else:  # the Gaussian takes mass away
    assert np.all(sums <= 1.0 + 1e-6) and np.all(sums > 0)
  # The windowed computation (only 2D + 1 keys scored) equals global attention
  # restricted to the window.
  np.testing.assert_allclose(weights, r["reference"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(r["context"], np.einsum("bqk,bkd->bqd", weights, values),
                             rtol=1e-5, atol=1e-6)


def test_local_m_with_a_window_wider_than_the_source_is_global_attention():
  rng = np.random.default_rng(1)
  query = rng.normal(size=(BATCH, 1, D)).astype(np.float32)
  keys = rng.normal(size=(BATCH, K_LEN, D)).astype(np.float32)
  mask = length_mask(jnp.asarray(LENGTHS), K_LEN)
  wide = Attention.create(attention="general", mechanism="local_m", local_window=K_LEN)

  @jax.jit
  def run(key):
    params = wide.init(key, query, keys, keys, mask, method="attend")
    return (wide.apply(params, query, keys, keys, mask, method="attend"),
            wide.clone(options=wide.options.replace(mechanism="global")).apply(
                params, query, keys, keys, mask, method="attend"))

  (context, weights), (global_context, global_weights) = run(jax.random.key(0))
  np.testing.assert_allclose(weights, global_weights, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(context, global_context, rtol=1e-5, atol=1e-6)


def test_bad_window_is_an_error():
  # The local mechanisms' registry entries carry the check (run by attnlab.config).
  for name in ("local_m", "local_p"):
    check = MECHANISMS[name].option_checks["local_window"]
    assert check.problem(0) == "must be an integer >= 1, got 0" and check.problem(1) is None
