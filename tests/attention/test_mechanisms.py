"""Global soft attention: masking, padding invariance, jit/vmap, gradients, for every score."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab.attention import (MECHANISMS, NORMALIZERS, Attention, get_normalizer,
                               global_attention, length_mask, masked_softmax,
                               score_names)

BATCH, Q_LEN, K_LEN, D, D_V = 2, 3, 4, 5, 3
MAX_LEN = 16  # 'location' must cover the longest padded source below
FEW = settings(max_examples=15, deadline=None)


def _normal(rng, *shape, scale=1.0):
  return (scale * rng.normal(size=shape)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _module_and_params(name):
  """Attention with score ``name`` and its params (which do not depend on k_len)."""
  module = Attention.create(attention=name, attention_dim=6, max_src_len=MAX_LEN)
  rng = np.random.default_rng(0)
  query, keys = _normal(rng, BATCH, Q_LEN, D), _normal(rng, BATCH, K_LEN, D)
  params = module.init(jax.random.key(0), query, keys, method="attend")
  return module, params


@functools.lru_cache(maxsize=None)
def _jitted_attend(name):
  module, _ = _module_and_params(name)
  return jax.jit(functools.partial(module.apply, method="attend"))


def _attend(name, query, keys, values, mask):
  """Attention.attend with score ``name``, jitted (hypothesis varies the shapes: one
  compile per shape is cheaper than eager dispatch of every op at every new shape)."""
  _, params = _module_and_params(name)
  return _jitted_attend(name)(params, query, keys, values, mask)


def _case(seed, k_len=K_LEN, lengths=(K_LEN, 2)):
  rng = np.random.default_rng(seed)
  query = _normal(rng, BATCH, Q_LEN, D)
  keys = _normal(rng, BATCH, k_len, D)
  values = _normal(rng, BATCH, k_len, D_V)
  mask = np.asarray(length_mask(jnp.asarray(lengths), k_len))
  return query, keys, values, mask


def _assert_normalized(weights, mask):
  """Non-negative, exactly 0 where masked, rows sum to 1 (0 if nothing is allowed)."""
  weights, mask = np.asarray(weights), np.broadcast_to(np.asarray(mask, bool), weights.shape)
  assert np.all(weights >= 0)
  np.testing.assert_array_equal(weights[~mask], 0.0)
  expected_sums = np.where(mask.any(-1), 1.0, 0.0)
  np.testing.assert_allclose(weights.sum(-1), expected_sums, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------
# masked_softmax / global_attention on raw scores.

@FEW
@given(rows=st.integers(1, 4), k_len=st.integers(1, 6), seed=st.integers(0, 2**16),
       scale=st.sampled_from([1.0, 1e3, 1e30]))
def test_masked_softmax_sums_to_one_over_allowed_keys(rows, k_len, seed, scale):
  rng = np.random.default_rng(seed)
  scores = _normal(rng, rows, k_len, scale=scale)
  mask = rng.random((rows, k_len)) < 0.6
  mask[0] = False  # always one fully masked row
  weights = jax.jit(masked_softmax)(scores, mask)
  chex.assert_shape(weights, (rows, k_len))
  chex.assert_tree_all_finite(weights)
  _assert_normalized(weights, mask)
  np.testing.assert_array_equal(weights[0], 0.0)
  # On the allowed keys it is the ordinary softmax of those keys alone.
  for r in range(rows):
    if mask[r].any():
      allowed = scores[r][mask[r]].astype(np.float64)
      expected = np.exp(allowed - allowed.max())
      np.testing.assert_allclose(weights[r][mask[r]], expected / expected.sum(),
                                 rtol=1e-5, atol=1e-6)


def test_masked_softmax_without_mask_is_softmax():
  scores = _normal(np.random.default_rng(0), 2, 5)
  np.testing.assert_allclose(masked_softmax(scores, None), jax.nn.softmax(scores), rtol=1e-6)


def test_masked_softmax_fully_masked_row_has_finite_zero_gradient():
  scores = jnp.asarray(_normal(np.random.default_rng(0), 2, 4))
  mask = jnp.asarray([[False] * 4, [True, True, False, False]])
  target = jnp.arange(8.0).reshape(2, 4)
  grad = jax.grad(lambda s: jnp.sum(masked_softmax(s, mask) * target))(scores)
  chex.assert_tree_all_finite(grad)
  np.testing.assert_array_equal(grad[0], 0.0)
  np.testing.assert_array_equal(grad[1, 2:], 0.0)
  assert np.any(grad[1, :2] != 0.0)


@pytest.mark.parametrize("mask_rank", [2, 3])
def test_global_attention_context_is_weights_times_values(mask_rank):
  rng = np.random.default_rng(1)
  scores = _normal(rng, BATCH, Q_LEN, K_LEN)
  values = _normal(rng, BATCH, K_LEN, D_V)
  mask = rng.random((BATCH, Q_LEN, K_LEN)) < 0.6
  mask[:, :, 0] = True
  if mask_rank == 2:
    mask = mask[:, 0]
  context, weights = global_attention(jnp.asarray(scores), jnp.asarray(values), jnp.asarray(mask))
  chex.assert_shape(context, (BATCH, Q_LEN, D_V))
  chex.assert_shape(weights, (BATCH, Q_LEN, K_LEN))
  full_mask = mask[:, None] if mask_rank == 2 else mask
  _assert_normalized(weights, full_mask)
  np.testing.assert_allclose(context, np.einsum("bqk,bkd->bqd", weights, values),
                             rtol=1e-5, atol=1e-6)


def test_global_attention_rejects_bad_mask_rank():
  scores = jnp.zeros((BATCH, Q_LEN, K_LEN))
  with pytest.raises(ValueError, match="mask must be"):
    global_attention(scores, jnp.zeros((BATCH, K_LEN, D_V)), jnp.ones((K_LEN,), bool))


def test_unknown_normalizer_lists_valid_names():
  with pytest.raises(ValueError, match="no_such_normalizer.*softmax"):
    get_normalizer("no_such_normalizer")
  scores = jnp.zeros((BATCH, Q_LEN, K_LEN))
  with pytest.raises(ValueError, match="valid normalizers: " + ", ".join(sorted(NORMALIZERS))):
    global_attention(scores, jnp.zeros((BATCH, K_LEN, D_V)), None, normalizer="nope")
  query, keys, values, mask = _case(0)
  with pytest.raises(ValueError, match="valid normalizers: .*softmax"):
    Attention.create(normalizer="nope").init(jax.random.key(0), query, keys, values, mask,
                                             method="attend")


def test_unknown_mechanism_lists_valid_names():
  query, keys, values, mask = _case(0)
  with pytest.raises(ValueError, match="no_such_mechanism.*valid mechanisms: " +
                     ", ".join(sorted(MECHANISMS))):
    Attention.create(mechanism="no_such_mechanism").init(jax.random.key(0), query, keys,
                                                         values, mask, method="attend")


# ---------------------------------------------------------------------------
# Attention, for every registered score function.

@pytest.mark.parametrize("name", score_names())
def test_attention_weights_and_context(name):
  query, keys, values, mask = _case(0, lengths=(K_LEN, 2))
  context, weights = _attend(name, query, keys, values, mask)
  chex.assert_shape(context, (BATCH, Q_LEN, D_V))
  chex.assert_shape(weights, (BATCH, Q_LEN, K_LEN))
  chex.assert_tree_all_finite((context, weights))
  _assert_normalized(weights, mask[:, None])
  np.testing.assert_allclose(context, np.einsum("bqk,bkd->bqd", weights, values),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", score_names())
@FEW
@given(data=st.data())
def test_padding_does_not_change_attention(name, data):
  """Masked keys appended with arbitrary values change neither context nor weights."""
  # Few distinct shapes: each one is a compile.
  k_len = data.draw(st.integers(1, 4), label="k_len")
  pad = data.draw(st.integers(1, 2), label="pad")
  lengths = data.draw(st.lists(st.integers(0, k_len), min_size=BATCH, max_size=BATCH),
                      label="lengths")
  seed = data.draw(st.integers(0, 2**16), label="seed")
  query, keys, values, mask = _case(seed, k_len=k_len, lengths=lengths)
  rng = np.random.default_rng(seed + 1)
  padded_keys = np.concatenate([keys, _normal(rng, BATCH, pad, D, scale=100.0)], axis=1)
  padded_values = np.concatenate([values, _normal(rng, BATCH, pad, D_V, scale=100.0)], axis=1)
  padded_mask = np.concatenate([mask, np.zeros((BATCH, pad), bool)], axis=1)

  context, weights = _attend(name, query, keys, values, mask)
  padded_context, padded_weights = _attend(name, query, padded_keys, padded_values,
                                           padded_mask)
  chex.assert_shape(padded_weights, (BATCH, Q_LEN, k_len + pad))
  _assert_normalized(weights, mask[:, None])
  np.testing.assert_array_equal(padded_weights[:, :, k_len:], 0.0)
  np.testing.assert_allclose(padded_weights[:, :, :k_len], weights, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(padded_context, context, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", score_names())
def test_fully_masked_rows_zero_and_finite_gradients(name):
  module, params = _module_and_params(name)
  query, keys, values, mask = _case(0, lengths=(0, 3))  # batch element 0: nothing to attend

  def loss(params, query, keys, values):
    context, weights = module.apply(params, query, keys, values, mask, method="attend")
    return jnp.sum(context ** 2) + jnp.sum(weights * jnp.arange(K_LEN))

  context, weights = _attend(name, query, keys, values, mask)
  np.testing.assert_array_equal(weights[0], 0.0)
  np.testing.assert_array_equal(context[0], 0.0)
  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(params, query, keys, values)
  chex.assert_tree_all_finite(grads)
  # Nothing flows into a batch element that attends to nothing...
  np.testing.assert_array_equal(grads[1][0], 0.0)
  np.testing.assert_array_equal(grads[3][0], 0.0)
  # ...but the rest of the batch does get a gradient.
  assert np.any(grads[3][1] != 0.0)


@pytest.mark.parametrize("name", score_names())
def test_vmap_of_unbatched_equals_batched(name):
  module, params = _module_and_params(name)
  query, keys, values, mask = _case(2, lengths=(K_LEN, 1))

  def unbatched(query, keys, values, mask):
    # query [q_len, d], keys [k_len, d], values [k_len, d_v], mask [k_len]
    context, weights = module.apply(params, query[None], keys[None], values[None], mask[None],
                                    method="attend")
    return context[0], weights[0]

  vmapped = jax.vmap(unbatched)(query, keys, values, mask)
  batched = module.apply(params, query, keys, values, mask, method="attend")
  chex.assert_trees_all_close(vmapped, batched, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", score_names())
def test_prepare_once_then_step_equals_attend(name):
  """The decoder path: prepare the memory once, then one query step at a time."""
  module, params = _module_and_params(name)
  query, keys, values, mask = _case(3)
  memory = module.apply(params, keys, values, mask, method="prepare")
  context, weights = module.apply(params, query, keys, values, mask, method="attend")
  for t in range(Q_LEN):
    step_context, step_weights = module.apply(params, query[:, t:t + 1], memory)
    np.testing.assert_allclose(step_context[:, 0], context[:, t], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step_weights[:, 0], weights[:, t], rtol=1e-5, atol=1e-6)


def test_prepare_defaults_values_to_keys_and_mask_to_all():
  module, params = _module_and_params("dot")
  query, keys, _, _ = _case(4)
  context, weights = module.apply(params, query, keys, method="attend")
  _assert_normalized(weights, np.ones((BATCH, Q_LEN, K_LEN), bool))
  np.testing.assert_allclose(context, np.einsum("bqk,bkd->bqd", weights, keys),
                             rtol=1e-5, atol=1e-6)


class JitEagerTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*score_names())
  def test_jit_equals_eager(self, name):
    module, params = _module_and_params(name)
    query, keys, values, mask = _case(5, lengths=(3, 0))

    @self.variant
    def attend(params, query, keys, values, mask):
      return module.apply(params, query, keys, values, mask, method="attend")

    context, weights = attend(params, query, keys, values, mask)
    expected = module.apply(params, query, keys, values, mask, method="attend")
    chex.assert_trees_all_close((context, weights), expected, rtol=1e-5, atol=1e-6)
    _assert_normalized(weights, mask[:, None])
