"""Hard (stochastic) attention (Xu et al. 2015, Sec. 4.1): attend to one source position.

The scores give a distribution alpha = normalizer(scores) over the allowed
source positions. The context is the value at one position s_t:

* evaluation (``deterministic=True``): s_t = argmax alpha;
* training with ``hard_estimator='reinforce'``: s_t ~ Categorical(alpha). The
  sampling is not differentiable, so the mechanism sows log alpha[s_t] and the
  entropy H(alpha) [batch, q_len] into the ``SAMPLES`` collection and the
  training loss adds ``reinforce_loss``: the score-function (REINFORCE,
  Williams 1992) estimator with a moving-average baseline (``update_baseline``)
  and an entropy bonus (Xu et al. 2015, eq. 12). The estimator lives here, with its
  mechanism; the training step (``attnlab.training.steps``) gives it what only training
  has: the reward (minus each example's target NLL) and the baseline, which it carries
  from step to step in its state;
* training with ``hard_estimator='gumbel'``: straight-through Gumbel-softmax
  (Jang et al. 2017): the forward pass uses the one-hot of argmax(scores + g),
  g ~ Gumbel(0, 1), the backward pass the gradient of softmax((scores + g) / tau)
  (a relaxation of the softmax distribution, whatever the ``normalizer``).

The returned weights are the one-hot of s_t (zeros for a fully masked row). The
samples draw from the rng stream ``'sample'`` (``apply(..., rngs={'sample': key})``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnlab.attention import masks as masks_lib
from attnlab.attention.mechanisms import (Mechanism, get_normalizer, masked_softmax,
                                          register_mechanism, weighted_sum)
from attnlab.options import OneOf, Real

Array = jax.Array

# The collection the REINFORCE samples are sown into (``apply(..., mutable=[SAMPLES])``).
SAMPLES = "hard_attention"
# hard_estimator values.
HARD_ESTIMATORS = ("reinforce", "gumbel")


def _safe_log(weights: Array) -> Array:
  """log(weights), 0 where weights == 0 (finite values and finite gradients)."""
  positive = weights > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, weights, 1.0)), 0.0)


def entropy(weights: Array) -> Array:
  """weights [..., k_len] (a distribution, zeros allowed) -> H = -sum w log w [...] in nats."""
  return -jnp.sum(weights * _safe_log(weights), axis=-1)


def sample_position(rng: Array, weights: Array) -> tuple[Array, Array]:
  """Samples one position per row of a distribution.

  Args:
    rng: a key.
    weights: [..., k_len] non-negative, summing to 1 (or 0 for a fully masked row).

  Returns:
    index [...] int32 (s ~ Categorical(weights); 0 for an all-zero row) and
    log_prob [...] = log weights[s] (0 for an all-zero row), differentiable in
    the weights.
  """
  logits = jnp.where(weights > 0, _safe_log(weights), -jnp.inf)
  index = jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)
  log_prob = jnp.take_along_axis(_safe_log(weights), index[..., None], axis=-1)[..., 0]
  return index, log_prob


def gumbel_straight_through(rng: Array, scores: Array, mask: Array,
                            temperature: float = 1.0) -> Array:
  """Straight-through Gumbel-softmax weights (Jang et al. 2017; Maddison et al. 2017).

  Args:
    rng: a key.
    scores: [..., k_len].
    mask: like ``scores``, True = may attend.
    temperature: tau > 0 of the relaxed sample.

  Returns:
    weights like ``scores``: in the forward pass exactly the one-hot of
    argmax(scores + g) over allowed keys (zeros for a fully masked row); their
    gradient is that of softmax((scores + g) / tau).
  """
  noisy = scores + jax.random.gumbel(rng, scores.shape, scores.dtype)
  soft = masked_softmax(noisy / temperature, mask)
  hard = _one_hot_argmax(noisy, mask)
  # (soft - stop_gradient(soft)) is exactly 0 in the forward pass, so the weights stay
  # exactly one-hot; hard + soft - soft would round 1 to 0.99999994.
  return hard + (soft - jax.lax.stop_gradient(soft))


def _one_hot_argmax(scores: Array, mask: Array) -> Array:
  """One-hot [..., k_len] of the best allowed key; zeros where no key is allowed."""
  index = jnp.argmax(jnp.where(mask, scores, -jnp.inf), axis=-1)
  any_key = jnp.any(mask, axis=-1, keepdims=True)
  return jax.nn.one_hot(index, scores.shape[-1], dtype=scores.dtype) * any_key


def reinforce_surrogate(log_probs: Array, entropies: Array, rewards: Array, baseline: Array,
                        mask: Array, entropy_weight: float = 0.0) -> Array:
  """The surrogate loss whose gradient is the REINFORCE estimate (Xu et al. 2015, eq. 12).

  For an objective E_s[R(s)] over sampled positions s = (s_1, ..., s_T) of an
  example, grad E[R] = E[(R - b) sum_t grad log p(s_t)] for any b that does not
  depend on s; minimising this surrogate follows that estimate (and the entropy
  bonus), normalised like the token-mean training loss.

  Args:
    log_probs: [batch, tgt_len] log p(s_t) of each sampled position.
    entropies: [batch, tgt_len] entropy of each step's attention distribution.
    rewards: [batch] R per example (e.g. minus its target NLL); no gradient flows
      through it.
    baseline: [] b, e.g. a moving average of past rewards (``update_baseline``).
    mask: [batch, tgt_len] bool, True at real target steps.
    entropy_weight: lambda_e, weight of the entropy bonus.

  Returns:
    scalar: -(sum_{b,t} (R_b - b) log p(s_bt) + lambda_e sum_{b,t} H_bt) / #steps.
  """
  mask = mask.astype(log_probs.dtype)
  advantage = jax.lax.stop_gradient(rewards - baseline)  # [batch]
  count = jnp.maximum(jnp.sum(mask), 1.0)
  score_term = jnp.sum(advantage[:, None] * log_probs * mask)
  entropy_term = jnp.sum(entropies * mask)
  return -(score_term + entropy_weight * entropy_term) / count


def update_baseline(baseline: Array, rewards: Array, weights: Array, decay: float,
                    initialized: Array) -> Array:
  """Exponential moving average of the mean reward: b <- decay b + (1 - decay) mean(R).

  Args:
    baseline: [] the current b.
    rewards: [batch]; weights: [batch] (1 for real examples, 0 for padding rows).
    decay: in [0, 1).
    initialized: [] bool; False: b starts at this batch's mean reward.

  Returns:
    the new b [].
  """
  weights = weights.astype(rewards.dtype)
  mean = jnp.sum(rewards * weights) / jnp.maximum(jnp.sum(weights), 1.0)
  return jnp.where(initialized, decay * baseline + (1.0 - decay) * mean, mean)


def collect_samples(sown: dict) -> tuple[Array, Array] | None:
  """The sown REINFORCE samples as (log_probs, entropies), each [batch, tgt_len].

  ``sown`` is the ``SAMPLES`` collection returned by ``apply(..., mutable=[SAMPLES])``
  (under the decoder's scan each leaf is [batch, tgt_len, 1]); None when nothing
  was sown (no hard attention, evaluation, or the gumbel estimator).
  """
  found = {"log_prob": [], "entropy": []}

  def visit(tree):
    for key, value in tree.items():
      if key in found and isinstance(value, tuple):
        found[key].extend(value)
      elif isinstance(value, dict):
        visit(value)

  visit(dict(sown))
  if not found["log_prob"]:
    return None
  join = lambda xs: jnp.concatenate([x.reshape(x.shape[0], -1) for x in xs], axis=1)  # noqa: E731
  return join(found["log_prob"]), join(found["entropy"])


def reinforce_loss(sown: dict, rewards: Array, baseline: Array, target_mask: Array,
                   example_mask: Array, initialized: Array, entropy_weight: float,
                   baseline_decay: float) -> tuple[Array, Array]:
  """The REINFORCE term of hard attention's training loss, and the updated baseline.

  Training with ``mechanism='hard'`` and ``hard_estimator='reinforce'``, the teacher-forced
  pass sows the log-probability of each sampled position (``apply(..., deterministic=False,
  mutable=[SAMPLES])``). Add the returned surrogate (``reinforce_surrogate``) to the loss.

  Args:
    sown: the ``SAMPLES`` collection of that pass.
    rewards: [batch] per-example reward (minus the example's target NLL).
    baseline: [] the moving-average reward baseline.
    target_mask: [batch, tgt_len] bool, real target steps.
    example_mask: [batch] bool, real examples (not batch padding).
    initialized: [] bool, False before the first update (the baseline then starts at this
      batch's mean reward).
    entropy_weight, baseline_decay: the options ``hard_entropy_weight`` and
      ``hard_baseline_decay``.

  Returns:
    surrogate loss [] (0 when nothing was sown) and the new baseline [].
  """
  samples = collect_samples(sown)
  if samples is None:
    return jnp.zeros((), jnp.float32), baseline
  log_probs, entropies = samples
  new_baseline = update_baseline(baseline, rewards, example_mask, baseline_decay, initialized)
  # Before the first update the current batch's mean is the best baseline there is.
  used = jnp.where(initialized, baseline, new_baseline)
  surrogate = reinforce_surrogate(log_probs, entropies, rewards, used, target_mask,
                                  entropy_weight)
  return surrogate, new_baseline


@register_mechanism("hard")
class Hard(Mechanism):
  """Hard attention: the context is the value at one position (see the module docstring)."""

  option_checks = {"hard_estimator": OneOf(HARD_ESTIMATORS),
                   "hard_temperature": Real("(0, inf)"),
                   "hard_entropy_weight": Real("[0, inf)"),
                   "hard_baseline_decay": Real("[0, 1)")}
  sown_collections = (SAMPLES,)

  def __call__(self, score_fn, query, memory, *, t, state, deterministic):
    scores = score_fn.score(query, memory.keys)  # [batch, q_len, k_len]
    batch, q_len, k_len = scores.shape
    mask = masks_lib.as_query_key_mask(memory.mask, batch, q_len, k_len)
    any_key = jnp.any(mask, axis=-1, keepdims=True)
    if deterministic:
      weights = get_normalizer(self.options.normalizer)(scores, mask)
      weights = _one_hot_argmax(weights, mask)
    elif self.options.hard_estimator == "gumbel":
      weights = gumbel_straight_through(self._rng(), scores, mask,
                                        self.options.hard_temperature)
    else:  # reinforce
      distribution = get_normalizer(self.options.normalizer)(scores, mask)
      index, log_prob = sample_position(self._rng(), distribution)
      weights = jax.nn.one_hot(index, k_len, dtype=scores.dtype) * any_key
      self.sow(SAMPLES, "log_prob", log_prob)  # [batch, q_len]
      self.sow(SAMPLES, "entropy", entropy(distribution))  # [batch, q_len]
    return weighted_sum(weights, memory.values), weights, state

  def _rng(self) -> Array:
    if not self.has_rng("sample"):
      raise ValueError("hard attention in training mode (deterministic=False) samples: pass "
                       "rngs={'sample': key} to apply")
    return self.make_rng("sample")

