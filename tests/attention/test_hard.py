"""Hard attention: argmax at evaluation, samples and their sown log-probabilities in
training, the REINFORCE estimator's unbiasedness, straight-through Gumbel-softmax."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.attention import Attention, global_attention, length_mask, masked_softmax
from attnlab.attention import hard

BATCH, Q_LEN, K_LEN, D, D_V = 3, 2, 6, 5, 4
LENGTHS = (6, 3, 0)  # the last row has no key at all


def _case(seed=0):
  rng = np.random.default_rng(seed)
  query = rng.normal(size=(BATCH, Q_LEN, D)).astype(np.float32)
  keys = rng.normal(size=(BATCH, K_LEN, D)).astype(np.float32)
  values = rng.normal(size=(BATCH, K_LEN, D_V)).astype(np.float32)
  mask = np.asarray(length_mask(jnp.asarray(LENGTHS), K_LEN))
  return query, keys, values, mask


@functools.lru_cache(maxsize=None)
def _hard_results(score):
  """Evaluation and training-mode (reinforce, gumbel) reads of hard attention with score
  ``score``, and the global soft weights from the same parameters; one jitted program."""
  query, keys, values, mask = _case()
  module = Attention.create(attention=score, mechanism="hard", attention_dim=8, max_src_len=8)

  def run(key):
    params = module.init(key, query, keys, values, mask, method="attend")
    attend = functools.partial(module.apply, params, query, keys, values, mask, method="attend")
    soft = module.clone(options=module.options.replace(mechanism="global")).apply(
        params, query, keys, values, mask, method="attend")
    evaluation = attend(deterministic=True)
    sampled, sown = attend(deterministic=False, rngs={"sample": jax.random.key(7)},
                           mutable=[hard.SAMPLES])
    gumbel = module.clone(options=module.options.replace(hard_estimator="gumbel")).apply(
        params, query, keys, values, mask, method="attend", deterministic=False,
        rngs={"sample": jax.random.key(7)})
    return soft, evaluation, sampled, hard.collect_samples(sown), gumbel

  return jax.tree.map(np.asarray, jax.jit(run)(jax.random.key(0))), values, mask


def _assert_one_hot_on_allowed_keys(weights, mask):
  mask = np.broadcast_to(mask[:, None, :], weights.shape)
  np.testing.assert_array_equal(weights[~mask], 0.0)
  has_key = mask.any(-1)
  np.testing.assert_array_equal(weights.sum(-1), has_key.astype(float))
  assert set(np.unique(weights)) <= {0.0, 1.0}


@pytest.mark.parametrize("score", ["general", "location"])
def test_evaluation_returns_the_value_at_the_argmax(score):
  (soft, evaluation, *_), values, mask = _hard_results(score)
  soft_weights = soft[1]
  context, weights = evaluation
  _assert_one_hot_on_allowed_keys(weights, mask)
  best = np.argmax(soft_weights, axis=-1)  # [batch, q_len]
  for b in range(BATCH):
    for q in range(Q_LEN):
      if LENGTHS[b] == 0:
        np.testing.assert_array_equal(context[b, q], 0.0)
      else:
        assert weights[b, q, best[b, q]] == 1.0
        np.testing.assert_array_equal(context[b, q], values[b, best[b, q]])


def test_training_samples_allowed_positions_and_sows_their_log_probabilities():
  (soft, _, sampled, (log_probs, entropies), _), values, mask = _hard_results("general")
  soft_weights = soft[1]
  context, weights = sampled
  _assert_one_hot_on_allowed_keys(weights, mask)
  np.testing.assert_allclose(context, np.einsum("bqk,bkd->bqd", weights, values), atol=1e-6)
  assert log_probs.shape == entropies.shape == (BATCH, Q_LEN)
  index = np.argmax(weights, -1)
  has_key = np.asarray(LENGTHS) > 0
  picked = np.take_along_axis(soft_weights, index[..., None], -1)[..., 0]
  np.testing.assert_allclose(log_probs[has_key], np.log(picked[has_key]), rtol=1e-5)
  np.testing.assert_array_equal(log_probs[~has_key], 0.0)
  p = np.where(soft_weights > 0, soft_weights, 1.0)
  np.testing.assert_allclose(entropies, -np.sum(soft_weights * np.log(p), -1), atol=1e-5)


def test_gumbel_forward_is_one_hot_and_its_gradient_is_the_relaxed_softmax_gradient():
  (*_, gumbel), _, mask = _hard_results("general")
  _assert_one_hot_on_allowed_keys(gumbel[1], mask)
  rng = np.random.default_rng(3)
  scores = jnp.asarray(rng.normal(size=(4, K_LEN)).astype(np.float32))
  row_mask = jnp.asarray(np.arange(K_LEN)[None, :] < np.array([[6], [3], [1], [5]]))
  cotangent = jnp.asarray(rng.normal(size=(4, K_LEN)).astype(np.float32))
  key, tau = jax.random.key(5), 0.5

  def straight_through(s):
    return jnp.sum(cotangent * hard.gumbel_straight_through(key, s, row_mask, tau))

  def relaxed(s):
    noisy = s + jax.random.gumbel(key, s.shape, s.dtype)
    return jnp.sum(cotangent * masked_softmax(noisy / tau, row_mask))

  grads = jax.jit(lambda s: (jax.grad(straight_through)(s), jax.grad(relaxed)(s)))(scores)
  np.testing.assert_allclose(*grads, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- REINFORCE


@functools.partial(jax.jit, static_argnums=4)
def _estimates(theta, rewards, mask, baseline, num_samples):
  """One REINFORCE gradient estimate of grad_theta E_{s ~ softmax(theta)}[rewards[s]] per
  sample: minus the gradient of ``reinforce_surrogate`` for one example with one step."""

  def one(key):
    def surrogate(theta):
      weights = masked_softmax(theta, mask)
      index, log_prob = hard.sample_position(key, weights)
      return hard.reinforce_surrogate(log_prob[None, None], jnp.zeros((1, 1)),
                                      rewards[index][None], baseline, jnp.ones((1, 1), bool))

    return -jax.grad(surrogate)(theta)

  keys = jax.random.split(jax.random.key(11), num_samples)
  return jax.vmap(one)(keys)


def test_reinforce_estimator_is_unbiased_on_a_toy_objective():
  theta = jnp.asarray([0.3, -1.0, 1.2, 0.0, 2.0, 0.5])
  mask = jnp.asarray([True, True, True, True, False, True])  # position 4 is never sampled
  rewards = jnp.asarray([1.0, -2.0, 0.5, 3.0, 100.0, -1.0]) + 5.0
  exact = jax.grad(lambda th: jnp.sum(masked_softmax(th, mask) * rewards))(theta)
  n = 20000
  expected_reward = float(jnp.sum(masked_softmax(theta, mask) * rewards))
  variances = {}
  for baseline in (0.0, expected_reward):
    samples = np.asarray(_estimates(theta, rewards, mask, jnp.asarray(baseline), n))
    mean, stderr = samples.mean(0), samples.std(0) / np.sqrt(n)
    assert np.all(np.abs(mean - exact) <= 4 * stderr + 1e-4), (baseline, mean, exact, stderr)
    assert samples[:, 4].max() == 0.0  # no gradient through a masked position
    variances[baseline] = samples.var(0).sum()
  # The baseline keeps the estimate unbiased and (here, by far) lowers its variance.
  assert variances[expected_reward] < 0.2 * variances[0.0]


def test_surrogate_baseline_and_collection_helpers():
  log_probs = jnp.asarray([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
  entropies = jnp.asarray([[1.0, 1.0, 1.0], [2.0, 2.0, 0.0]])
  mask = jnp.asarray([[True, True, True], [True, True, False]])
  rewards = jnp.asarray([-1.0, -3.0])
  value = hard.reinforce_surrogate(log_probs, entropies, rewards, jnp.asarray(-2.0), mask, 0.1)
  # advantages (1, -1); sum (R - b) log p = 1 * -6 + -1 * -1 = -5; entropy sum 7; 5 steps.
  np.testing.assert_allclose(value, -(-5.0 + 0.1 * 7.0) / 5.0, rtol=1e-6)
  weights = jnp.asarray([1.0, 0.0])  # the second row is batch padding
  np.testing.assert_allclose(hard.update_baseline(jnp.asarray(0.0), rewards, weights, 0.9,
                                                  jnp.asarray(False)), -1.0)
  np.testing.assert_allclose(hard.update_baseline(jnp.asarray(-2.0), rewards, weights, 0.9,
                                                  jnp.asarray(True)), -1.9, rtol=1e-6)
  sown = {"decoder_module": {"attn": {"mechanism_fn": {
      "log_prob": (jnp.zeros((2, 4, 1)),), "entropy": (jnp.ones((2, 4, 1)),)}}}}
  got = hard.collect_samples(sown)
  assert got[0].shape == got[1].shape == (2, 4)
  assert hard.collect_samples({}) is None


def test_training_mode_without_a_sample_rng_is_an_error():
  query, keys, values, mask = _case()
  module = Attention.create(attention="dot", mechanism="hard")
  with pytest.raises(ValueError, match="rngs=\\{'sample': key\\}"):
    jax.eval_shape(lambda: module.init_with_output(
        jax.random.key(0), query, keys, values, mask, method="attend", deterministic=False))


def test_global_and_hard_agree_on_where_the_mass_is():
  """Sampling frequencies over many draws approach the soft weights."""
  query, keys, values, mask = _case(2)
  module = Attention.create(attention="dot", mechanism="hard")  # no parameters
  params = {}

  @jax.jit
  def frequencies(keys_rng):
    def one(key):
      return module.apply(params, query, keys, values, mask, method="attend",
                          deterministic=False, rngs={"sample": key})[1]
    return jnp.mean(jax.vmap(one)(jax.random.split(keys_rng, 4000)), axis=0)

  _, soft = global_attention(jnp.einsum("bqd,bkd->bqk", query, keys), values, mask)
  np.testing.assert_allclose(frequencies(jax.random.key(1)), soft, atol=0.03)
