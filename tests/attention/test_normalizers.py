"""Sparsemax, entmax15 and hardmax: simplex, exact zeros, references, gradients, masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.test_util import check_grads

from attnlab.attention import get_normalizer
from attnlab.attention import normalizers  # noqa: F401  (registers them)

SPARSE = ["sparsemax", "entmax15"]


def bisect_tau(z, power):
  """tau with sum(max(z - tau, 0) ** power) == 1, by bisection (independent of sorting)."""
  lo, hi = z.max() - 1.0, z.max()
  for _ in range(200):
    mid = (lo + hi) / 2
    if (np.maximum(z - mid, 0.0) ** power).sum() > 1.0:
      lo = mid
    else:
      hi = mid
  return (lo + hi) / 2


def reference(name, z):
  z = np.asarray(z, np.float64)
  if name == "sparsemax":  # Euclidean projection onto the simplex
    return np.maximum(z - bisect_tau(z, 1), 0.0)
  return np.maximum(z / 2 - bisect_tau(z / 2, 2), 0.0) ** 2


@pytest.mark.parametrize("name", SPARSE)
@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=9))
def test_matches_numpy_reference_and_lies_on_the_simplex(name, values):
  z = np.array(values, np.float32)
  p = np.asarray(jax.jit(get_normalizer(name))(jnp.asarray(z), None))
  np.testing.assert_allclose(p, reference(name, z), atol=1e-5)
  assert (p >= 0).all() and abs(p.sum() - 1) < 1e-5


def large_rows(scale, offset, seed=0, shape=(4, 16, 12)):
  """float32 rows [*shape]: normal * scale + offset, half the keys of each row moved
  within 2.5 of its maximum so that supports hold several keys at any scale."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=shape) * scale
  near = rng.uniform(size=shape) < 0.5
  z = np.where(near, z.max(-1, keepdims=True) - rng.uniform(0, 2.5, shape), z)
  return (z + offset).astype(np.float32)


def check_against_reference(name, z, p, mask=None):
  """p (float32) vs the float64 bisection reference, row by row: values within 1e-5,
  the same support (keys within 1e-4 of the threshold tau are left out), rows sum to 1."""
  z64, p = np.asarray(z, np.float64), np.asarray(p, np.float64)
  mask = np.ones(z64.shape, bool) if mask is None else np.broadcast_to(mask, z64.shape)
  for row, weights, allowed in zip(z64.reshape(-1, z64.shape[-1]), p.reshape(-1, p.shape[-1]),
                                   mask.reshape(-1, mask.shape[-1])):
    if not allowed.any():
      continue
    expected = np.zeros_like(row)
    expected[allowed] = reference(name, row[allowed])
    np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-5)
    u = row[allowed] if name == "sparsemax" else row[allowed] / 2
    tau = bisect_tau(u, 1 if name == "sparsemax" else 2)
    clear = np.abs(u - tau) > 1e-4
    np.testing.assert_array_equal((weights[allowed] > 0)[clear], (u > tau)[clear])
    assert (weights[~allowed] == 0).all()
    assert abs(weights.sum() - 1) < 1e-5


@pytest.mark.parametrize("name", SPARSE)
@pytest.mark.parametrize("scale,offset", [(1e2, 0.0), (1e3, 0.0), (1e4, 0.0), (1.0, 1e4),
                                          (1.0, -1e4), (1e3, 1e4), (3.0, 1e5)])
def test_matches_float64_reference_at_large_magnitudes_and_offsets(name, scale, offset):
  # Unscaled dot scores reach these magnitudes; both normalizers are shift-invariant.
  z = large_rows(scale, offset)
  p = jax.jit(get_normalizer(name))(jnp.asarray(z), None)
  assert p.dtype == jnp.float32 and p.shape == z.shape
  check_against_reference(name, z, p)


@pytest.mark.parametrize("name", SPARSE)
def test_masked_rows_at_large_magnitudes_match_the_reference_on_allowed_keys(name):
  z = large_rows(1e3, -1e4, seed=1)
  mask = np.random.default_rng(2).uniform(size=z.shape) < 0.7
  mask[..., 0, :] = False  # fully masked rows
  z[..., 3] = 1e4  # the largest scores, masked in some rows
  p = get_normalizer(name)(jnp.asarray(z), jnp.asarray(mask))
  check_against_reference(name, z, p, mask)
  np.testing.assert_array_equal(np.asarray(p)[..., 0, :], 0.0)


@pytest.mark.parametrize("name", SPARSE)
def test_weights_and_gradients_are_shift_invariant(name):
  # Multiples of 1/64, so that z + offset is exact in float32.
  z = jnp.array([[0.90625, 0.5, 0.453125, -0.3125, 0.09375], [2.0, 1.8125, -1.0, 0.0, 1.90625]])
  w = jnp.array([1.0, -2.0, 0.5, 3.0, 0.7])
  normalize = get_normalizer(name)
  loss = lambda s: jnp.sum(normalize(s, None) * w)
  for offset in [1e3, -1e4, 1e4]:
    assert (np.asarray(z + offset) - offset == np.asarray(z)).all()
    np.testing.assert_allclose(normalize(z + offset, None), normalize(z, None), atol=1e-6)
    np.testing.assert_allclose(jax.grad(loss)(z + offset), jax.grad(loss)(z), atol=1e-5)


@pytest.mark.parametrize("name", SPARSE)
def test_bfloat16_scores_give_bfloat16_weights_and_finite_gradients(name):
  z = jnp.asarray(large_rows(1e2, 0.0, shape=(3, 7)), jnp.bfloat16)
  mask = jnp.array([[True] * 7, [True, True, True, False, False, False, False], [False] * 7])
  p = get_normalizer(name)(z, mask)
  assert p.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(p, np.float32).sum(-1), [1.0, 1.0, 0.0], atol=2e-2)
  grads = jax.grad(lambda s: jnp.sum(get_normalizer(name)(s, mask).astype(jnp.float32)))(z)
  assert grads.dtype == jnp.bfloat16 and np.isfinite(np.asarray(grads, np.float32)).all()


def test_exact_zeros_where_expected():
  z = jnp.array([2.0, 1.8, -1.0, 0.0])
  p = get_normalizer("sparsemax")(z, None)
  np.testing.assert_allclose(p, [0.6, 0.4, 0.0, 0.0], atol=1e-6)
  assert float(p[2]) == 0.0 and float(p[3]) == 0.0
  q = get_normalizer("entmax15")(jnp.array([3.0, 0.0, -3.0]), None)
  assert float(q[1]) == 0.0 and float(q[2]) == 0.0 and float(q[0]) == pytest.approx(1.0)
  # softmax would give every key weight; entmax15 with close scores keeps both.
  r = get_normalizer("entmax15")(jnp.array([0.1, 0.0]), None)
  assert (np.asarray(r) > 0).all()


@pytest.mark.parametrize("name", SPARSE)
def test_gradient_matches_finite_differences(name):
  z = jnp.array([0.9, 0.5, 0.45, -0.3, 0.1])  # away from support changes
  w = jnp.array([1.0, -2.0, 0.5, 3.0, 0.7])
  check_grads(lambda s: jnp.sum(get_normalizer(name)(s, None) * w), (z,), order=1,
              modes=["rev"], eps=1e-3, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("name", SPARSE + ["hardmax"])
def test_masking_rules_match_softmax(name):
  normalize = get_normalizer(name)
  scores = jnp.array([[5.0, 0.2, 0.1, 9.0], [1.0, 2.0, 3.0, 4.0]])
  mask = jnp.array([[True, True, True, False], [False, False, False, False]])
  p = normalize(scores, mask)
  assert float(p[0, 3]) == 0.0  # masked, although it has the highest score
  np.testing.assert_allclose(p[0].sum(), 1.0, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(p[1]), 0.0)  # fully masked row: zeros
  grads = jax.grad(lambda s: jnp.sum(normalize(s, mask) * jnp.arange(4.0)))(scores)
  assert np.isfinite(np.asarray(grads)).all()


def test_hardmax_is_one_hot_with_a_straight_through_gradient():
  scores = jnp.array([[0.3, 2.0, 1.0]])
  p = get_normalizer("hardmax")(scores, None)
  np.testing.assert_allclose(p, [[0.0, 1.0, 0.0]], atol=1e-6)
  g = jax.grad(lambda s: jnp.sum(get_normalizer("hardmax")(s, None) * jnp.arange(3.0)))(scores)
  g_soft = jax.grad(lambda s: jnp.sum(jax.nn.softmax(s) * jnp.arange(3.0)))(scores)
  np.testing.assert_allclose(g, g_soft, atol=1e-6)


@pytest.mark.parametrize("name", SPARSE + ["hardmax"])
def test_selectable_by_name_in_attention_and_models(name):
  from attnlab.attention import Attention
  from attnlab.models import Seq2Seq
  q = jax.random.normal(jax.random.key(0), (2, 3, 4)) * 3
  k = jax.random.normal(jax.random.key(1), (2, 5, 4)) * 3
  mask = jnp.array([[True] * 5, [True, True, False, False, False]])
  attn = Attention.create(attention="dot", normalizer=name)
  (_, weights) = attn.apply({}, q, k, None, mask, method=attn.attend)
  np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, atol=1e-5)
  assert (np.asarray(weights)[1, :, 2:] == 0).all()
  model = Seq2Seq.create(src_vocab_size=9, tgt_vocab_size=9, emb_dim=4, hidden_dim=8,
                         normalizer=name, attention="general")
  src, lengths, tgt = jnp.array([[4, 5, 0]]), jnp.array([2]), jnp.array([[1, 4]])
  variables = model.init(jax.random.key(0), src, lengths, tgt)
  logits, attention = model.apply(variables, src, lengths, tgt)
  assert np.isfinite(np.asarray(logits)).all() and float(attention[0, 0, 2]) == 0.0
