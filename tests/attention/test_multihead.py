"""Scaled dot-product, causal self-attention and multi-head attention."""

import functools
import math

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import (MultiHeadAttention, SelfAttention, causal_mask,
                               dot_product_attention, length_mask)

BATCH, LEN, K_LEN, D_MODEL, D_KV = 2, 5, 4, 8, 6
HEADS, QKV = 2, 8
FEW = settings(max_examples=15, deadline=None)


def _normal(rng, *shape, scale=1.0):
  return (scale * rng.normal(size=shape)).astype(np.float32)


def _np(x):
  return np.asarray(x, np.float64)


def _softmax(x, mask=None):
  """Softmax over the last axis restricted to ``mask``; a fully masked row is all zeros."""
  mask = np.ones(x.shape, bool) if mask is None else np.broadcast_to(mask, x.shape)
  x = np.where(mask, x, -np.inf)
  e = np.where(mask, np.exp(x - np.max(x, -1, keepdims=True, initial=-1e300)), 0.0)
  return e / np.maximum(e.sum(-1, keepdims=True), 1e-300)


@jax.jit
def _both_paths(query, key, value, mask):
  """(fused output, (manual output, weights)); jitted: hypothesis varies the shapes."""
  return (dot_product_attention(query, key, value, mask),
          dot_product_attention(query, key, value, mask, return_weights=True))


# ---------------------------------------------------------------------------
# dot_product_attention.

@FEW
@given(q_len=st.integers(1, 4), k_len=st.integers(1, 5), heads=st.integers(1, 2),
       seed=st.integers(0, 2**16))
def test_fused_path_equals_weights_path(q_len, k_len, heads, seed):
  """return_weights=False (jax.nn.dot_product_attention) == the manual path, masks included."""
  rng = np.random.default_rng(seed)
  query = _normal(rng, BATCH, q_len, heads, 4)
  key = _normal(rng, BATCH, k_len, heads, 4)
  value = _normal(rng, BATCH, k_len, heads, 4)
  mask = rng.random((BATCH, heads, q_len, k_len)) < 0.6
  mask[0, 0, 0] = False  # at least one fully masked row

  out, (out_manual, weights) = _both_paths(query, key, value, mask)
  chex.assert_shape(out, (BATCH, q_len, heads, 4))
  chex.assert_shape(weights, (BATCH, heads, q_len, k_len))
  chex.assert_tree_all_finite((out, out_manual, weights))
  np.testing.assert_allclose(out, out_manual, rtol=1e-5, atol=1e-5)

  # Weights: non-negative, 0 where masked, summing to 1 (0 on fully masked rows).
  weights = np.asarray(weights)
  assert np.all(weights >= 0)
  np.testing.assert_array_equal(weights[~mask], 0.0)
  np.testing.assert_allclose(weights.sum(-1), mask.any(-1).astype(np.float32), atol=1e-5)
  # A fully masked row gives a zero output on both paths.
  dead = ~mask.any(-1)  # [batch, heads, q_len]
  dead_out = np.swapaxes(dead, 1, 2)  # [batch, q_len, heads]
  np.testing.assert_array_equal(np.asarray(out)[dead_out], 0.0)
  np.testing.assert_array_equal(np.asarray(out_manual)[dead_out], 0.0)

  # Both equal softmax(q k^T / sqrt(d)) v computed by hand on the allowed keys.
  scores = np.einsum("bqhd,bkhd->bhqk", _np(query), _np(key)) / 2.0
  expected = _softmax(scores, mask)
  np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out, np.einsum("bhqk,bkhd->bqhd", expected, _np(value)),
                             rtol=1e-5, atol=1e-5)


def test_dot_product_attention_without_mask():
  rng = np.random.default_rng(0)
  query, key, value = (_normal(rng, BATCH, 3, HEADS, 4) for _ in range(3))
  out = dot_product_attention(query, key, value)
  out_manual, weights = dot_product_attention(query, key, value, return_weights=True)
  np.testing.assert_allclose(out, out_manual, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("return_weights", [False, True])
def test_dot_product_attention_fully_masked_gradients_finite(return_weights):
  rng = np.random.default_rng(1)
  query, key, value = (jnp.asarray(_normal(rng, BATCH, 3, HEADS, 4)) for _ in range(3))
  mask = jnp.asarray(rng.random((BATCH, HEADS, 3, 3)) < 0.5).at[:, :, 0].set(False)

  def loss(query, key, value):
    out = dot_product_attention(query, key, value, mask, return_weights=return_weights)
    out = out[0] if return_weights else out
    return jnp.sum(out ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(query, key, value)
  chex.assert_tree_all_finite(grads)
  np.testing.assert_array_equal(grads[0][:, 0], 0.0)  # query 0 attends to nothing


def test_dot_product_attention_dropout_needs_rng():
  rng = np.random.default_rng(2)
  query, key, value = (_normal(rng, BATCH, 3, HEADS, 4) for _ in range(3))
  with pytest.raises(ValueError, match="dropout_rng"):
    dot_product_attention(query, key, value, dropout_rate=0.5, deterministic=False)
  # deterministic=True ignores dropout entirely.
  np.testing.assert_allclose(
      dot_product_attention(query, key, value, dropout_rate=0.5, deterministic=True),
      dot_product_attention(query, key, value), rtol=1e-6)


# ---------------------------------------------------------------------------
# MultiHeadAttention.

def _mha_case(seed=0, q_len=LEN, k_len=K_LEN):
  rng = np.random.default_rng(seed)
  return _normal(rng, BATCH, q_len, D_MODEL), _normal(rng, BATCH, k_len, D_KV)


def test_one_head_equals_hand_written_scaled_dot_product():
  inputs_q, inputs_kv = _mha_case()
  mask = np.asarray(length_mask(jnp.asarray([K_LEN, 2]), K_LEN))
  module = MultiHeadAttention(num_heads=1, qkv_features=QKV, out_features=7)
  params = module.init(jax.random.key(0), inputs_q, inputs_kv, mask)
  out, weights = module.apply(params, inputs_q, inputs_kv, mask, return_weights=True)
  chex.assert_shape(out, (BATCH, LEN, 7))
  chex.assert_shape(weights, (BATCH, 1, LEN, K_LEN))

  p = jax.tree.map(_np, params["params"])
  # Same projection matrices, flattened over the single head.
  q = _np(inputs_q) @ p["query"]["kernel"][:, 0] + p["query"]["bias"][0]    # [b, q, QKV]
  k = _np(inputs_kv) @ p["key"]["kernel"][:, 0] + p["key"]["bias"][0]       # [b, k, QKV]
  v = _np(inputs_kv) @ p["value"]["kernel"][:, 0] + p["value"]["bias"][0]   # [b, k, QKV]
  scores = np.einsum("bqd,bkd->bqk", q, k) / math.sqrt(QKV)
  expected_weights = _softmax(scores, mask[:, None])
  expected = expected_weights @ v @ p["out"]["kernel"][0] + p["out"]["bias"]
  np.testing.assert_allclose(weights[:, 0], expected_weights, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("cross", [False, True])
def test_matches_flax_multi_head_dot_product_attention(use_mask, cross):
  inputs_q, inputs_kv = _mha_case(seed=1)
  if not cross:
    inputs_kv = inputs_q
  k_len = inputs_kv.shape[1]
  mask = None
  if use_mask:
    rng = np.random.default_rng(2)
    mask = rng.random((BATCH, LEN, k_len)) < 0.5
    mask[:, :, 0] = True  # flax averages fully masked rows where we give zeros
  kwargs = dict(num_heads=HEADS, qkv_features=QKV, out_features=7)
  reference = nn.MultiHeadDotProductAttention(**kwargs)
  flax_mask = None if mask is None else mask[:, None]
  flax_params = reference.init(jax.random.key(3), inputs_q, inputs_kv, mask=flax_mask)
  ours = MultiHeadAttention(**kwargs)
  our_params = ours.init(jax.random.key(4), inputs_q, inputs_kv, mask)
  # Interchangeable parameters: same names, same shapes.
  assert (jax.tree.map(jnp.shape, flax_params) == jax.tree.map(jnp.shape, our_params))

  expected = reference.apply(flax_params, inputs_q, inputs_kv, mask=flax_mask)
  out = ours.apply(flax_params, inputs_q, inputs_kv, mask)
  chex.assert_shape(out, (BATCH, LEN, 7))
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  # The weights path agrees too, including the weights flax can sow.
  out_w, weights = ours.apply(flax_params, inputs_q, inputs_kv, mask, return_weights=True)
  _, state = reference.apply(flax_params, inputs_q, inputs_kv, mask=flax_mask,
                             sow_weights=True, mutable=["intermediates"])
  (flax_weights,) = state["intermediates"]["attention_weights"]
  chex.assert_shape(weights, (BATCH, HEADS, LEN, k_len))
  np.testing.assert_allclose(out_w, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(weights, flax_weights, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mask_rank", [2, 3, 4])
def test_mask_ranks_agree(mask_rank):
  inputs_q, inputs_kv = _mha_case(seed=5)
  key_mask = np.asarray(length_mask(jnp.asarray([3, 0]), K_LEN))  # element 1 fully masked
  full = np.broadcast_to(key_mask[:, None, None, :], (BATCH, HEADS, LEN, K_LEN))
  mask = {2: key_mask, 3: full[:, 0], 4: full}[mask_rank]
  module = MultiHeadAttention(num_heads=HEADS)
  params = module.init(jax.random.key(0), inputs_q, inputs_kv)
  out, weights = module.apply(params, inputs_q, inputs_kv, mask, return_weights=True)
  fused = module.apply(params, inputs_q, inputs_kv, mask)
  reference = module.apply(params, inputs_q, inputs_kv, full)
  chex.assert_shape(weights, (BATCH, HEADS, LEN, K_LEN))
  chex.assert_tree_all_finite((out, weights, fused))
  np.testing.assert_allclose(out, reference, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(fused, out, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(weights.sum(-1)[0], 1.0, rtol=1e-5)
  np.testing.assert_array_equal(weights[0, :, :, 3:], 0.0)
  np.testing.assert_array_equal(weights[1], 0.0)
  # A fully masked row gives a zero attention output, so only the output bias is left.
  bias = np.broadcast_to(params["params"]["out"]["bias"], (LEN, D_MODEL))
  np.testing.assert_allclose(out[1], bias, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(fused[1], bias, rtol=1e-6, atol=1e-7)


def test_fully_masked_rows_finite_gradients_through_params():
  inputs_q, inputs_kv = _mha_case(seed=6)
  mask = np.asarray(length_mask(jnp.asarray([0, 2]), K_LEN))
  module = MultiHeadAttention(num_heads=HEADS)
  params = module.init(jax.random.key(0), inputs_q, inputs_kv)

  def loss(params, inputs_q, inputs_kv):
    return jnp.sum(module.apply(params, inputs_q, inputs_kv, mask) ** 2)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, inputs_q, inputs_kv)
  chex.assert_tree_all_finite(grads)
  np.testing.assert_array_equal(grads[2][0], 0.0)  # element 0 reads no key


@functools.lru_cache(maxsize=None)
def _mha_params():
  """Params of MultiHeadAttention(num_heads=HEADS) (they do not depend on k_len)."""
  inputs_q, inputs_kv = _mha_case()
  return MultiHeadAttention(num_heads=HEADS).init(jax.random.key(7), inputs_q, inputs_kv)


_mha_apply = jax.jit(MultiHeadAttention(num_heads=HEADS).apply)
_mha_apply_with_weights = jax.jit(
    functools.partial(MultiHeadAttention(num_heads=HEADS).apply, return_weights=True))


@FEW
@given(k_len=st.integers(1, 4), pad=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_padding_keys_does_not_change_output(k_len, pad, seed):
  rng = np.random.default_rng(seed)
  inputs_q, inputs_kv = _normal(rng, BATCH, 3, D_MODEL), _normal(rng, BATCH, k_len, D_KV)
  lengths = rng.integers(1, k_len + 1, size=BATCH)
  mask = np.asarray(length_mask(jnp.asarray(lengths), k_len))
  padded_kv = np.concatenate([inputs_kv, _normal(rng, BATCH, pad, D_KV, scale=100.0)], 1)
  padded_mask = np.concatenate([mask, np.zeros((BATCH, pad), bool)], 1)
  params = _mha_params()
  out = _mha_apply(params, inputs_q, inputs_kv, mask)
  padded_out, padded_weights = _mha_apply_with_weights(params, inputs_q, padded_kv, padded_mask)
  np.testing.assert_allclose(padded_out, out, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(padded_weights[..., k_len:], 0.0)
  np.testing.assert_allclose(padded_weights.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("num_heads,qkv_features", [(3, None), (3, 8), (5, 12)])
def test_qkv_features_not_divisible_by_heads(num_heads, qkv_features):
  inputs_q, _ = _mha_case()
  with pytest.raises(ValueError, match="not divisible by num_heads"):
    MultiHeadAttention(num_heads=num_heads, qkv_features=qkv_features).init(
        jax.random.key(0), inputs_q)


def test_dropout():
  inputs_q, inputs_kv = _mha_case(seed=8)
  module = MultiHeadAttention(num_heads=HEADS, dropout_rate=0.5)
  params = module.init(jax.random.key(0), inputs_q, inputs_kv)
  no_dropout = MultiHeadAttention(num_heads=HEADS).apply(params, inputs_q, inputs_kv)

  with pytest.raises(flax.errors.InvalidRngError, match="dropout"):
    module.apply(params, inputs_q, inputs_kv, deterministic=False)

  # deterministic=True: dropout off, with or without a 'dropout' rng.
  for rngs in (None, {"dropout": jax.random.key(1)}):
    out = module.apply(params, inputs_q, inputs_kv, deterministic=True, rngs=rngs)
    np.testing.assert_allclose(out, no_dropout, rtol=1e-5, atol=1e-6)

  dropped = module.apply(params, inputs_q, inputs_kv, deterministic=False,
                         rngs={"dropout": jax.random.key(1)})
  again = module.apply(params, inputs_q, inputs_kv, deterministic=False,
                       rngs={"dropout": jax.random.key(1)})
  other = module.apply(params, inputs_q, inputs_kv, deterministic=False,
                       rngs={"dropout": jax.random.key(2)})
  chex.assert_tree_all_finite(dropped)
  assert not np.allclose(dropped, no_dropout, atol=1e-3)
  assert not np.allclose(dropped, other, atol=1e-3)
  np.testing.assert_array_equal(dropped, again)

  # The returned weights are the attention distribution itself (before dropout).
  _, weights = module.apply(params, inputs_q, inputs_kv, deterministic=False,
                            rngs={"dropout": jax.random.key(1)}, return_weights=True)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------
# SelfAttention.

def _self_attention(causal, seed=9):
  x = _normal(np.random.default_rng(seed), BATCH, LEN, D_MODEL)
  module = SelfAttention(num_heads=HEADS, causal=causal)
  return module, module.init(jax.random.key(0), x), x


def test_causal_output_ignores_the_future():
  module, params, x = _self_attention(causal=True)
  apply = jax.jit(module.apply)
  out, weights = module.apply(params, x, return_weights=True)
  chex.assert_shape(out, (BATCH, LEN, D_MODEL))
  np.testing.assert_array_equal(weights * ~np.asarray(causal_mask(LEN)), 0.0)
  rng = np.random.default_rng(10)
  for t in range(LEN - 1):
    changed = x.copy()
    changed[:, t + 1:] = _normal(rng, BATCH, LEN - t - 1, D_MODEL, scale=10.0)
    new = apply(params, changed)
    np.testing.assert_allclose(new[:, :t + 1], out[:, :t + 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(new[:, t + 1:], out[:, t + 1:], atol=1e-3)


def test_non_causal_output_sees_the_future():
  module, params, x = _self_attention(causal=False)
  changed = x.copy()
  changed[:, -1] += 10.0
  out, new = module.apply(params, x), module.apply(params, changed)
  assert not np.allclose(new[:, 0], out[:, 0], atol=1e-3)


def test_causal_combines_with_padding_mask():
  module, params, x = _self_attention(causal=True)
  lengths = jnp.asarray([LEN, 3])
  padding = length_mask(lengths, LEN)
  out, weights = module.apply(params, x, padding, return_weights=True)
  allowed = np.asarray(causal_mask(LEN))[None, None] & np.asarray(padding)[:, None, None, :]
  np.testing.assert_array_equal(np.asarray(weights)[~np.broadcast_to(allowed, weights.shape)], 0)
  np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(module.apply(params, x, padding), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_mask", [False, True])
def test_self_attention_is_permutation_equivariant(use_mask):
  module, params, x = _self_attention(causal=False)
  perm = np.random.default_rng(11).permutation(LEN)
  mask = np.asarray(length_mask(jnp.asarray([LEN, 3]), LEN)) if use_mask else None
  out = module.apply(params, x, mask)
  permuted = module.apply(params, x[:, perm], None if mask is None else mask[:, perm])
  np.testing.assert_allclose(permuted, out[:, perm], rtol=1e-5, atol=1e-5)
  assert not np.allclose(out[:, perm], out, atol=1e-3)  # the permutation does move things


def test_self_attention_with_one_head_equals_multi_head_on_itself():
  x = _normal(np.random.default_rng(12), BATCH, LEN, D_MODEL)
  module = SelfAttention(num_heads=1)
  params = module.init(jax.random.key(0), x)
  np.testing.assert_allclose(module.apply(params, x),
                             MultiHeadAttention(num_heads=1).apply(params, x, x),
                             rtol=1e-6, atol=1e-6)
