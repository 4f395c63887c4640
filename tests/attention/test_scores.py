"""Score functions: each one against a NumPy transcription of its formula.

The parameters come from the module's own ``init`` and are read back from the
params tree. They are then perturbed (random noise on every leaf) before use:
Dense biases initialise to zero, so with the raw init a score that forgot its
bias ``b`` would still pass.

``dot``, ``scaled_dot`` and ``general`` are checked twice: with ``attention_dim`` (query and
keys projected to it first, Britz et al. 2017) and without (no projection, Luong et al. 2015).
"""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.attention import (SCORES, Attention, Score, get_score, make_score,
                               register_score, score_names)
from attnlab.attention.scores import additive_energy

BATCH, Q_LEN, K_LEN = 2, 3, 4
D_Q, D_K = 3, 5  # different on purpose: scores that allow it must handle it
D = 5            # d_q == d_k for the scores that need it
ATTENTION_DIM, MAX_LEN = 6, 8
SAME_DIM_SCORES = ("dot", "scaled_dot", "cosine")  # without attention_dim
MULTIPLICATIVE = ("dot", "scaled_dot", "general")    # projected when attention_dim is set
# (score, attention_dim): every score at ATTENTION_DIM, the multiplicative ones also at 0.
CASES = ([(name, ATTENTION_DIM) for name in score_names()]
         + [(name, 0) for name in MULTIPLICATIVE])


def _inputs(d_q, d_k, seed=0, q_len=Q_LEN, k_len=K_LEN):
  rng = np.random.default_rng(seed)
  query = rng.normal(size=(BATCH, q_len, d_q)).astype(np.float32)
  keys = rng.normal(size=(BATCH, k_len, d_k)).astype(np.float32)
  return query, keys


def _dims(name, attention_dim=ATTENTION_DIM):
  if name in MULTIPLICATIVE and attention_dim:
    return D_Q, D_K  # projected to one width: d_q may differ from d_k
  return (D, D) if name in SAME_DIM_SCORES else (D_Q, D_K)


def _perturb(params, seed):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), max(len(leaves), 1))
  return jax.tree.unflatten(treedef, [
      x + 0.5 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)])


def _init(name, query, keys, attention_dim=ATTENTION_DIM, **kwargs):
  module = make_score(name, attention_dim=attention_dim, max_src_len=MAX_LEN, **kwargs)
  params = module.init(jax.random.key(1), query, keys)
  return module, _perturb(params, seed=2)


# ---------------------------------------------------------------------------
# NumPy transcriptions, float64. p: the module's params dict (``params['params']``).

def _np(x):
  return np.asarray(x, np.float64)


def _project(p, q, k):
  """Britz et al.'s multiplicative projection, W_q q and W_k k, when the params have one."""
  if "W_q" not in p:
    return q, k
  assert "bias" not in p["W_q"] and "bias" not in p["W_k"]
  return q @ _np(p["W_q"]["kernel"]), k @ _np(p["W_k"]["kernel"])


def _ref_dot(p, q, k):
  q, k = _project(p, q, k)
  return np.einsum("bqd,bkd->bqk", q, k)


def _ref_scaled_dot(p, q, k):
  q, k = _project(p, q, k)  # k.shape[-1]: d_k, or attention_dim when projected
  return np.einsum("bqd,bkd->bqk", q, k) / math.sqrt(k.shape[-1])


def _ref_general(p, q, k):
  q, k = _project(p, q, k)
  w = _np(p["W_a"]["kernel"])  # [d_q, d_k], or [attention_dim, attention_dim]
  return np.einsum("bqi,ij,bkj->bqk", q, w, k)


def _additive(q, k, w, u, b, v):
  # v^T tanh(W q + U k + b), written per (query, key) pair.
  out = np.zeros((q.shape[0], q.shape[1], k.shape[1]))
  for bi in range(q.shape[0]):
    for i in range(q.shape[1]):
      for j in range(k.shape[1]):
        out[bi, i, j] = v @ np.tanh(q[bi, i] @ w + k[bi, j] @ u + b)
  return out


def _ref_concat(p, q, k):
  assert "bias" not in p["U"]  # Luong's concat has no bias
  return _additive(q, k, _np(p["W"]["kernel"]), _np(p["U"]["kernel"]), 0.0,
                   _np(p["v"])[:, 0])


def _ref_additive(p, q, k):
  return _additive(q, k, _np(p["W"]["kernel"]), _np(p["U"]["kernel"]),
                   _np(p["U"]["bias"]), _np(p["v"])[:, 0])


def _ref_additive_normalized(p, q, k):
  v = _np(p["v"])[:, 0]
  v = _np(p["g"]) * v / np.linalg.norm(v)
  return _additive(q, k, _np(p["W"]["kernel"]), _np(p["U"]["kernel"]),
                   _np(p["U"]["bias"]), v)


def _ref_location(p, q, k):
  # Luong et al. (2015): W_a q, no bias; + b only with location_bias=True.
  bias = _np(p["W_a"]["bias"]) if "bias" in p["W_a"] else 0.0
  scores = q @ _np(p["W_a"]["kernel"]) + bias  # [b, q_len, max_len]
  return scores[:, :, :k.shape[1]]


def _cos(q, k):
  qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
  kn = k / np.linalg.norm(k, axis=-1, keepdims=True)
  return np.einsum("bqd,bkd->bqk", qn, kn)


def _ref_cosine(p, q, k):
  return np.exp(_np(p["log_tau"])) * _cos(q, k)


REFERENCES = {
    "dot": _ref_dot,
    "scaled_dot": _ref_scaled_dot,
    "general": _ref_general,
    "concat": _ref_concat,
    "additive": _ref_additive,
    "additive_normalized": _ref_additive_normalized,
    "location": _ref_location,
    "cosine": _ref_cosine,
}


def test_every_registered_score_has_a_reference():
  assert set(score_names()) == set(REFERENCES)


def _case_id(case):
  name, attention_dim = case
  return name if attention_dim else f"{name}-unprojected"


@pytest.mark.parametrize("name,attention_dim", CASES, ids=[_case_id(c) for c in CASES])
def test_score_matches_numpy_formula(name, attention_dim):
  query, keys = _inputs(*_dims(name, attention_dim))
  module, params = _init(name, query, keys, attention_dim)
  scores = module.apply(params, query, keys)
  chex.assert_shape(scores, (BATCH, Q_LEN, K_LEN))
  chex.assert_tree_all_finite(scores)
  expected = REFERENCES[name](params.get("params", {}), _np(query), _np(keys))
  np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


def test_cosine_fixed_temperature():
  query, keys = _inputs(D, D)
  module = make_score("cosine", cosine_learn_temperature=False, cosine_temperature=3.0)
  params = module.init(jax.random.key(0), query, keys)
  assert not jax.tree.leaves(params)  # nothing to learn
  scores = module.apply(params, query, keys)
  np.testing.assert_allclose(scores, 3.0 * _cos(_np(query), _np(keys)), rtol=1e-5, atol=1e-5)


def test_cosine_learned_temperature_starts_at_temperature():
  query, keys = _inputs(D, D)
  params = make_score("cosine", cosine_temperature=3.0).init(jax.random.key(0), query, keys)
  np.testing.assert_allclose(jnp.exp(params["params"]["log_tau"]), 3.0, rtol=1e-6)


def test_cosine_zero_key_scores_zero_with_finite_grad():
  query, keys = _inputs(D, D)
  keys[:, -1] = 0.0  # an all-zero (padding) key
  module, params = _init("cosine", query, keys)
  scores = module.apply(params, query, keys)
  np.testing.assert_array_equal(scores[:, :, -1], 0.0)
  grads = jax.grad(lambda p, k: module.apply(p, query, k).sum(), argnums=(0, 1))(params, keys)
  chex.assert_tree_all_finite(grads)


def test_additive_normalized_initial_g():
  query, keys = _inputs(D_Q, D_K)
  params = make_score("additive_normalized", attention_dim=ATTENTION_DIM).init(
      jax.random.key(0), query, keys)
  np.testing.assert_allclose(params["params"]["g"], math.sqrt(1.0 / ATTENTION_DIM), rtol=1e-6)


@pytest.mark.parametrize("name,attention_dim", CASES, ids=[_case_id(c) for c in CASES])
def test_project_keys_then_score_equals_call(name, attention_dim):
  query, keys = _inputs(*_dims(name, attention_dim))
  module, params = _init(name, query, keys, attention_dim)
  projected = module.apply(params, keys, method=module.project_keys)
  assert projected.shape[:2] == (BATCH, K_LEN)
  split = module.apply(params, query, projected, method=module.score)
  np.testing.assert_allclose(split, module.apply(params, query, keys), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# Multiplicative scores with attention_dim (Britz et al. 2017): (W_q q) . (W_k k).

def _shapes(params):
  return jax.tree.map(jnp.shape, params.get("params", {}))


@pytest.mark.parametrize("name", MULTIPLICATIVE)
def test_projected_parameter_shapes(name):
  query, keys = _inputs(D_Q, D_K)
  params = make_score(name, attention_dim=ATTENTION_DIM).init(jax.random.key(0), query, keys)
  expected = {"W_q": {"kernel": (D_Q, ATTENTION_DIM)}, "W_k": {"kernel": (D_K, ATTENTION_DIM)}}
  if name == "general":  # its bilinear W_a at the projected width
    expected["W_a"] = {"kernel": (ATTENTION_DIM, ATTENTION_DIM)}
  assert _shapes(params) == expected


@pytest.mark.parametrize("name", MULTIPLICATIVE)
def test_unprojected_parameters_unchanged(name):
  # attention_dim 0 (no width of its own): the parameters of Luong et al.'s scores, exactly.
  d_q, d_k = (D_Q, D_K) if name == "general" else (D, D)
  query, keys = _inputs(d_q, d_k)
  module = make_score(name)
  assert module.options.attention_dim == 0
  params = module.init(jax.random.key(0), query, keys)
  assert _shapes(params) == ({"W_a": {"kernel": (D_Q, D_K)}} if name == "general" else {})
  if name == "general":  # the same draw as Luong's general written alone
    expected = _LuongGeneral().init(jax.random.key(0), query, keys)
    np.testing.assert_array_equal(params["params"]["W_a"]["kernel"],
                                  expected["params"]["W_a"]["kernel"])


class _LuongGeneral(nn.Module):
  """q^T W_a k with nothing else: the parameters ``general`` must keep without attention_dim."""

  @nn.compact
  def __call__(self, query, keys):
    w_query = nn.Dense(keys.shape[-1], use_bias=False, name="W_a")(query)
    return jnp.einsum("bqd,bkd->bqk", w_query, keys)


def test_projected_scaled_dot_is_dot_over_sqrt_attention_dim():
  query, keys = _inputs(D_Q, D_K)
  dot, params = _init("dot", query, keys)
  scaled = make_score("scaled_dot", attention_dim=ATTENTION_DIM)
  np.testing.assert_allclose(scaled.apply(params, query, keys),
                             dot.apply(params, query, keys) / math.sqrt(ATTENTION_DIM),
                             rtol=1e-6, atol=1e-6)


def test_projected_dot_numpy_reference():
  # Written out without the shared helpers: sum_j (q W_q)_j (k W_k)_j.
  query, keys = _inputs(D_Q, D_K)
  module, params = _init("dot", query, keys)
  w_q, w_k = (_np(params["params"][n]["kernel"]) for n in ("W_q", "W_k"))
  expected = np.zeros((BATCH, Q_LEN, K_LEN))
  for b in range(BATCH):
    for i in range(Q_LEN):
      for j in range(K_LEN):
        expected[b, i, j] = sum((_np(query)[b, i] @ w_q[:, c]) * (_np(keys)[b, j] @ w_k[:, c])
                                for c in range(ATTENTION_DIM))
  np.testing.assert_allclose(module.apply(params, query, keys), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MULTIPLICATIVE)
def test_projected_jit_and_vmap_match_eager(name):
  query, keys = _inputs(D_Q, D_K)
  module, params = _init(name, query, keys)
  eager = module.apply(params, query, keys)
  np.testing.assert_allclose(jax.jit(module.apply)(params, query, keys), eager,
                             rtol=1e-6, atol=1e-6)
  # One example at a time ([1, q_len, d] each), vmapped over the batch.
  one = lambda q, k: module.apply(params, q[None], k[None])[0]  # noqa: E731
  np.testing.assert_allclose(jax.vmap(one)(query, keys), eager, rtol=1e-6, atol=1e-6)


def test_needs_equal_dims_follows_attention_dim():
  projected = make_score("dot", attention_dim=4).options
  unprojected = make_score("dot").options
  for name in ("dot", "scaled_dot"):
    assert get_score(name).needs_equal_dims(unprojected)
    assert not get_score(name).needs_equal_dims(projected)
  assert get_score("cosine").needs_equal_dims(projected)  # cosine has no projection
  for name in ("general", "additive", "location"):
    assert not get_score(name).needs_equal_dims(unprojected)


def test_projected_scores_grow_with_attention_dim_unless_scaled():
  # Why the sweep: at init, unscaled dot scores have std ~ sqrt(attention_dim) (Vaswani
  # et al. 2017, footnote 4); scaled_dot's stay O(1).
  query, keys = _inputs(D_Q, D_K, q_len=16, k_len=32)
  stds = {}
  for name in ("dot", "scaled_dot"):
    for a in (16, 1024):
      module = make_score(name, attention_dim=a)
      params = module.init(jax.random.key(0), query, keys)
      stds[name, a] = float(jnp.std(module.apply(params, query, keys)))
  assert stds["dot", 1024] > 4 * stds["dot", 16]
  assert stds["scaled_dot", 1024] < 2 * stds["scaled_dot", 16]


# ---------------------------------------------------------------------------
# Errors.

def _assert_lists_valid_names(excinfo):
  message = str(excinfo.value)
  assert "no_such_score" in message
  for name in score_names():
    assert name in message


def test_get_score_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as excinfo:
    get_score("no_such_score")
  _assert_lists_valid_names(excinfo)


def test_make_score_unknown_name_lists_valid_names():
  with pytest.raises(ValueError) as excinfo:
    make_score("no_such_score", attention_dim=4)
  _assert_lists_valid_names(excinfo)


def test_attention_unknown_score_lists_valid_names():
  query, keys = _inputs(D, D)
  with pytest.raises(ValueError) as excinfo:
    Attention.create(attention="no_such_score").init(jax.random.key(0), query, keys,
                                                     method="attend")
  _assert_lists_valid_names(excinfo)


@pytest.mark.parametrize("name", SAME_DIM_SCORES)
def test_same_dim_scores_reject_different_sizes(name):
  query, keys = _inputs(D_Q, D_K)
  with pytest.raises(ValueError, match=r"d_q == d_k.*d_q=3.*d_k=5"):
    make_score(name).init(jax.random.key(0), query, keys)


@pytest.mark.parametrize("name", sorted(set(score_names()) - set(SAME_DIM_SCORES)))
def test_other_scores_accept_different_sizes(name):
  query, keys = _inputs(D_Q, D_K)
  module, params = _init(name, query, keys)
  chex.assert_shape(module.apply(params, query, keys), (BATCH, Q_LEN, K_LEN))


@pytest.mark.parametrize("location_bias", [False, True])
def test_location_has_a_bias_only_when_asked(location_bias):
  query, keys = _inputs(D_Q, D_K)
  module, params = _init("location", query, keys, location_bias=location_bias)
  shapes = jax.tree.map(jnp.shape, params["params"])
  expected = {"kernel": (D_Q, MAX_LEN)} | ({"bias": (MAX_LEN,)} if location_bias else {})
  assert shapes == {"W_a": expected}
  np.testing.assert_allclose(module.apply(params, query, keys),
                             _ref_location(params["params"], _np(query), _np(keys)),
                             rtol=1e-5, atol=1e-5)


def test_location_is_bias_free_by_default():
  assert make_score("location").options.location_bias is False


def test_location_rejects_keys_longer_than_max_len():
  query, keys = _inputs(D_Q, D_K, k_len=MAX_LEN)
  module = make_score("location", max_src_len=MAX_LEN)
  params = module.init(jax.random.key(0), query, keys)  # k_len == max_len is fine
  _, long_keys = _inputs(D_Q, D_K, k_len=MAX_LEN + 1)
  with pytest.raises(ValueError, match="max_src_len=8"):
    module.apply(params, query, long_keys)


@pytest.mark.parametrize("name", score_names())
def test_scores_reject_unbatched_inputs(name):
  query, keys = _inputs(*_dims(name, attention_dim=0))
  with pytest.raises(ValueError, match="batch"):
    make_score(name, max_src_len=MAX_LEN).init(jax.random.key(0), query[0], keys[0])


def test_registering_a_name_twice_fails():
  with pytest.raises(ValueError, match="already registered"):
    register_score("dot")(type("AnotherDot", (Score,), {}))
  assert get_score("dot").__name__ == "Dot"


# ---------------------------------------------------------------------------
# Extending the registry: one subclass plus one line.

@pytest.fixture
def neg_sq_distance_score():
  name = "test_neg_sq_distance"
  assert name not in SCORES

  @register_score(name)
  class NegSqDistance(Score):
    """score(q, k) = -||q - k||^2 / s, with a learned scale s."""

    @nn.compact
    def score(self, query, projected_keys):
      scale = self.param("scale", nn.initializers.constant(2.0), ())
      diff = query[:, :, None, :] - projected_keys[:, None, :, :]
      return -jnp.sum(diff * diff, axis=-1) / scale

  try:
    yield name
  finally:
    del SCORES[name]


def test_registered_score_usable_by_attention(neg_sq_distance_score):
  name = neg_sq_distance_score
  assert name in score_names()
  query, keys = _inputs(D, D)
  values = np.random.default_rng(3).normal(size=(BATCH, K_LEN, 2)).astype(np.float32)
  module = Attention.create(attention=name)
  params = module.init(jax.random.key(0), query, keys, values, method="attend")
  np.testing.assert_allclose(params["params"]["score_fn"]["scale"], 2.0)
  context, weights = module.apply(params, query, keys, values, method="attend")
  scores = -np.sum((_np(query)[:, :, None] - _np(keys)[:, None]) ** 2, axis=-1) / 2.0
  expected = np.exp(scores - scores.max(-1, keepdims=True))
  expected /= expected.sum(-1, keepdims=True)
  np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(context, expected @ _np(values), rtol=1e-5, atol=1e-5)


def test_registry_cleaned_up_after_extension_test():
  assert "test_neg_sq_distance" not in SCORES


def test_additive_energy_recomputed_in_the_backward_pass_gives_the_same_gradients():
  """``additive_energy`` keeps no tanh layer for the backward pass (``jax.checkpoint``): its
  values and gradients equal the formula written out with numpy-style jnp, kept."""
  w_query, keys, v = (jax.random.normal(k, s) for k, s in zip(
      jax.random.split(jax.random.key(0), 3), [(2, 3, 5), (2, 4, 5), (5,)]))

  def kept(w_query, keys, v):
    return jnp.einsum("bqkd,d->bqk", jnp.tanh(w_query[:, :, None] + keys[:, None]), v)

  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  np.testing.assert_allclose(additive_energy(w_query, keys, v), kept(w_query, keys, v),
                             rtol=1e-6)
  for got, want in zip(jax.grad(loss(additive_energy), argnums=(0, 1, 2))(w_query, keys, v),
                       jax.grad(loss(kept), argnums=(0, 1, 2))(w_query, keys, v)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # What the backward pass keeps: the inputs, not the [batch, q_len, k_len, d] tanh layer.
  _, residuals = jax.vjp(additive_energy, w_query, keys, v)
  assert max(x.size for x in jax.tree.leaves(residuals)) == keys.size < 2 * 3 * 4 * 5
