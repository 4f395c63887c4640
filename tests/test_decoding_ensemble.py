"""Decoding with an ``Ensemble`` of models: one member, or a model twice, decodes exactly as
the model (greedy and beam search, scores and attention included); two different models mix
their per-step distributions as the mean of their probabilities."""

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.data.vocab import BOS, PAD
from attnlab.decoding import Ensemble, beam_search, ensemble_logits, greedy_decode

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_decoding import (MAX_LEN, make_model, make_source, masked_log_softmax,  # noqa: E402
                           random_params)


def model_and_params(seed):
  model = make_model()
  src, lengths = make_source()
  params = random_params(model, jnp.asarray(src), jnp.asarray(lengths),
                         jnp.ones((len(lengths), 3), jnp.int32), seed=seed)
  return model, params


def ensemble_of(*members):
  """(Ensemble, its variables) of (model, variables) pairs."""
  ensemble = Ensemble(members=tuple(m for m, _ in members))
  return ensemble, {"params": {f"members_{i}": p["params"] for i, (_, p) in enumerate(members)}}


def decode_both(model, params, beam_size):
  src, lengths = map(jnp.asarray, make_source())
  if beam_size == 1:
    return greedy_decode(model, params, src, lengths, MAX_LEN)
  return beam_search(model, params, src, lengths, MAX_LEN, beam_size=beam_size, alpha=0.6)


@pytest.mark.parametrize("copies", [1, 2])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_ensemble_of_one_model_decodes_exactly_as_the_model(copies, beam_size):
  member = model_and_params(seed=0)
  alone = decode_both(*member, beam_size)
  together = decode_both(*ensemble_of(*[member] * copies), beam_size)
  for name in ("tokens", "scores", "log_probs", "lengths", "attention"):
    np.testing.assert_array_equal(getattr(together, name), getattr(alone, name), err_msg=name)


def test_two_models_mix_the_mean_of_their_probabilities():
  logits = jax.random.normal(jax.random.key(1), (3, 2, 7)) * 3.0  # [members, batch, vocab]
  mixed = masked_log_softmax(ensemble_logits(logits))
  with np.errstate(divide="ignore"):  # PAD and BOS: log 0
    expected = np.log(np.mean(np.exp(masked_log_softmax(logits)), axis=0))
  keep = np.ones(7, bool)
  keep[[PAD, BOS]] = False
  np.testing.assert_allclose(mixed[..., keep], expected[..., keep], rtol=1e-5, atol=1e-5)


def test_an_ensemble_of_two_models_decodes_with_the_mean_distribution():
  first = model_and_params(seed=0)
  # The same module object twice, with other parameters: each member still has its own.
  second = (first[0], model_and_params(seed=1)[1])
  ensemble, params = ensemble_of(first, second)
  result = decode_both(ensemble, params, 1)
  # Teacher-forced with the ensemble's own output, each greedy token is the argmax of the
  # mean of the two models' probabilities, and its log-probability is the mean's.
  src, lengths = map(jnp.asarray, make_source())
  tgt_in = jnp.concatenate([jnp.full((src.shape[0], 1), BOS), result.tokens[:, :-1]], axis=1)
  probs = [np.exp(masked_log_softmax(m.apply(p, src, lengths, tgt_in)[0]))
           for m, p in (first, second)]
  mean = np.mean(probs, axis=0)  # [batch, max_len, vocab]
  for row in range(src.shape[0]):
    length = int(result.lengths[row])
    np.testing.assert_array_equal(result.tokens[row, :length],
                                  mean[row, :length].argmax(-1))
    log_prob = np.log(mean[row, np.arange(length), result.tokens[row, :length]]).sum()
    np.testing.assert_allclose(result.log_probs[row], log_prob, rtol=1e-4, atol=1e-4)
  attention = [m.apply(p, src, lengths, tgt_in)[1] for m, p in (first, second)]
  row, length = 0, int(result.lengths[0])
  np.testing.assert_allclose(result.attention[row, :length],
                             np.mean(attention, axis=0)[row, :length], rtol=1e-5, atol=1e-6)
