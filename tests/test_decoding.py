"""Greedy decoding and beam search: agreement with teacher forcing, EOS handling, beam = 1 is
greedy, exhaustive search on a tiny vocabulary, ranking and the length penalty."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.data.vocab import BOS, EOS, PAD
from attnlab.decoding import beam_search, greedy_decode, length_penalty
from attnlab.models import Seq2Seq

SRC_VOCAB, TGT_VOCAB, EMB, HIDDEN = 11, 9, 8, 16
LENGTHS = (4, 2, 3, 1)
SRC_LEN, MAX_LEN = 4, 6


def make_model(tgt_vocab_size=TGT_VOCAB):
  return Seq2Seq.create(src_vocab_size=SRC_VOCAB, tgt_vocab_size=tgt_vocab_size, emb_dim=EMB,
                        hidden_dim=HIDDEN, bidirectional=True, decoder="luong",
                        attention="general")


def make_source(lengths=LENGTHS, src_len=SRC_LEN, seed=0):
  """src [batch, src_len] of ids >= 4, PAD after each length; lengths [batch]."""
  lengths = np.asarray(lengths, np.int32)
  src = np.random.default_rng(seed).integers(4, SRC_VOCAB, (len(lengths), src_len))
  src[np.arange(src_len)[None, :] >= lengths[:, None]] = PAD
  return src.astype(np.int32), lengths


def random_params(module, *args, seed=0, scale=0.3):
  """``module``'s variables with every parameter drawn from N(0, scale^2).

  Cheaper than ``init`` (traced once by eval_shape, never compiled or run), and free of the
  special structure of an initialiser (zero biases) that could hide a bug.
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes)


def with_eos_bias(params, bias):
  """params with ``bias`` added to the EOS logit (the output layer's bias)."""
  output = params["params"]["decoder_module"]["output"]
  new_output = {**output, "bias": output["bias"].at[EOS].add(bias)}
  decoder = {**params["params"]["decoder_module"], "output": new_output}
  return {"params": {**params["params"], "decoder_module": decoder}}


def masked_log_softmax(logits):
  """log-probabilities [..., vocab] with PAD and BOS impossible, as the decoders use them."""
  logits = np.array(logits, np.float64)
  logits[..., [PAD, BOS]] = -np.inf
  logits -= logits.max(-1, keepdims=True)
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def teacher_forced_input(tokens):
  """Outputs [batch, len] -> the decoder inputs that produced them: BOS + tokens[:, :-1]."""
  tokens = np.asarray(tokens)
  return np.concatenate([np.full((len(tokens), 1), BOS, np.int32), tokens[:, :-1]], axis=1)


def output_length(row):
  """Tokens up to and including the first EOS (all of them when there is none)."""
  eos = np.flatnonzero(np.asarray(row) == EOS)
  return int(eos[0]) + 1 if eos.size else len(row)


@functools.lru_cache(maxsize=None)
def _greedy_case():
  """A model whose greedy outputs stop at different steps, its greedy result, and the
  teacher-forced (logits, attention) fed that result as the prefix.

  Random parameters rarely say EOS at the right rate, so the EOS logit is shifted until some
  output stops midway (EOS after >= 1 token, PAD after it) and some runs for >= 3 tokens
  (seed 3: lengths 1, 6, 4, 6). The shift is a
  parameter, not a shape: the sweep compiles greedy_decode once.
  """
  model = make_model()
  src, lengths = make_source()
  base = random_params(model, src, lengths, np.full((len(LENGTHS), MAX_LEN), BOS, np.int32),
                       seed=3, scale=0.5)
  for bias in np.linspace(-2.0, 4.0, 25):
    params = with_eos_bias(base, float(bias))
    result = jax.tree.map(np.asarray, greedy_decode(model, params, src, lengths, max_len=MAX_LEN))
    stops_midway = (result.lengths >= 2) & (result.lengths <= MAX_LEN - 2)
    if stops_midway.any() and result.lengths.max() >= 3:
      break
  else:
    raise AssertionError("no EOS bias gives both early and late stops; change the seed")
  logits, attention = jax.jit(model.apply)(params, src, lengths,
                                           teacher_forced_input(result.tokens))
  return model, params, result, np.asarray(logits), np.asarray(attention)


def test_greedy_tokens_are_the_argmax_of_teacher_forcing_on_their_prefix():
  _, _, result, logits, attention = _greedy_case()
  log_probs = masked_log_softmax(logits)
  assert result.tokens.shape == (len(LENGTHS), MAX_LEN)
  assert result.attention.shape == (len(LENGTHS), MAX_LEN, SRC_LEN)
  for i, row in enumerate(result.tokens):
    n = output_length(row)
    assert result.lengths[i] == n
    np.testing.assert_array_equal(row[:n], np.argmax(log_probs[i, :n], axis=-1))
    assert not np.isin(row[:n], [PAD, BOS]).any()
    np.testing.assert_allclose(result.attention[i, :n], attention[i, :n], rtol=0, atol=1e-5)
    expected = log_probs[i, np.arange(n), row[:n]].sum()
    np.testing.assert_allclose(result.log_probs[i], expected, rtol=0, atol=1e-4)
  np.testing.assert_array_equal(result.scores, result.log_probs)


def test_greedy_emits_pad_and_zero_attention_after_eos():
  _, _, result, _, _ = _greedy_case()
  stopped_early = 0
  for i, row in enumerate(result.tokens):
    n = output_length(row)
    np.testing.assert_array_equal(row[n:], PAD)
    np.testing.assert_array_equal(result.attention[i, n:], 0.0)
    # Real rows are distributions over the real source positions.
    np.testing.assert_allclose(result.attention[i, :n].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.attention[i, :n, LENGTHS[i]:], 0.0)
    stopped_early += n < MAX_LEN
  assert stopped_early  # the case really covers "after EOS"


def test_beam_size_one_is_greedy():
  model, params, greedy, _, _ = _greedy_case()
  src, lengths = make_source()
  beam = jax.tree.map(np.asarray, beam_search(model, params, src, lengths, max_len=MAX_LEN,
                                              beam_size=1, alpha=0.6))
  assert beam.tokens.shape == (len(LENGTHS), 1, MAX_LEN)
  np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
  np.testing.assert_array_equal(beam.lengths[:, 0], greedy.lengths)
  np.testing.assert_allclose(beam.log_probs[:, 0], greedy.log_probs, rtol=0, atol=1e-5)
  np.testing.assert_allclose(beam.attention[:, 0], greedy.attention, rtol=0, atol=1e-6)
  np.testing.assert_allclose(
      beam.scores[:, 0], greedy.log_probs / length_penalty(greedy.lengths, 0.6), rtol=1e-6)


def test_beam_hypotheses_are_sorted_and_rescore_exactly_under_teacher_forcing():
  # Every optional piece of decoder state (LSTM (c, h) carries, two layers, the
  # self-attention history) must follow its hypothesis when the beams are reordered.
  model = Seq2Seq.create(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB,
                         hidden_dim=HIDDEN, bidirectional=True, decoder="bahdanau",
                         attention="additive", cell="lstm", decoder_layers=2,
                         decoder_self_attention=True, num_heads=2)
  src, lengths = make_source()
  params = random_params(model, src, lengths, np.full((len(LENGTHS), MAX_LEN), BOS, np.int32),
                         seed=3, scale=0.5)
  params = with_eos_bias(params, -1.0)  # hypotheses of 1, 2, 3 and MAX_LEN tokens
  k, alpha = 3, 0.6
  beam = jax.tree.map(np.asarray, beam_search(model, params, src, lengths, max_len=MAX_LEN,
                                              beam_size=k, alpha=alpha))
  assert beam.tokens.shape == (len(LENGTHS), k, MAX_LEN)
  assert beam.attention.shape == (len(LENGTHS), k, MAX_LEN, SRC_LEN)
  assert np.all(np.diff(beam.scores, axis=1) <= 0)  # best first
  np.testing.assert_allclose(beam.scores, beam.log_probs / length_penalty(beam.lengths, alpha),
                             rtol=1e-6)
  assert np.any((beam.lengths > 1) & (beam.lengths < MAX_LEN - 1))  # EOS midway: PAD after it
  assert beam.lengths.max() == MAX_LEN

  tokens = beam.tokens.reshape(-1, MAX_LEN)  # [batch * k, max_len]
  logits, attention = jax.jit(model.apply)(params, np.repeat(src, k, 0), np.repeat(lengths, k),
                                           teacher_forced_input(tokens))
  log_probs, attention = masked_log_softmax(logits), np.asarray(attention)
  for j, (row, n) in enumerate(zip(tokens, beam.lengths.reshape(-1))):
    assert n == output_length(row)
    np.testing.assert_array_equal(row[n:], PAD)
    np.testing.assert_allclose(beam.log_probs.reshape(-1)[j],
                               log_probs[j, np.arange(n), row[:n]].sum(), rtol=0, atol=1e-4)
    hypothesis_attention = beam.attention.reshape(-1, MAX_LEN, SRC_LEN)[j]
    np.testing.assert_allclose(hypothesis_attention[:n], attention[j, :n], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(hypothesis_attention[n:], 0.0)
  for i in range(len(LENGTHS)):
    assert len({tuple(row[:n]) for row, n in zip(beam.tokens[i], beam.lengths[i])}) == k


# --------------------------------------------------------------------------- exhaustive search

TINY_VOCAB, TINY_MAX_LEN = 5, 3  # PAD BOS EOS UNK + one token: EOS, UNK and 4 can be emitted


def all_outputs():
  """Every possible output of at most TINY_MAX_LEN tokens, cut after its first EOS."""
  emittable = [t for t in range(TINY_VOCAB) if t not in (PAD, BOS)]
  outputs = set()
  for sequence in itertools.product(emittable, repeat=TINY_MAX_LEN):
    outputs.add(sequence[:output_length(sequence)])
  return sorted(outputs)


def test_all_outputs_enumeration():
  outputs = all_outputs()
  assert len(outputs) == 1 + 2 + 2 * 2 + 2 * 2 * 2  # EOS after 0, 1, 2 tokens, or never
  assert (EOS,) in outputs and (3, 4, 3) in outputs and (4, EOS) in outputs


def test_beam_search_is_exhaustive_with_a_beam_as_large_as_the_output_space():
  model = make_model(TINY_VOCAB)
  src, lengths = make_source(lengths=(3, 2), src_len=3, seed=3)
  outputs = all_outputs()
  padded = np.array([list(o) + [PAD] * (TINY_MAX_LEN - len(o)) for o in outputs], np.int32)
  # Seed 1: for the second example the best output is not the greedy one (checked below).
  params = random_params(model, src, lengths, padded[:len(lengths)], seed=1, scale=0.5)
  beam = jax.tree.map(np.asarray, beam_search(model, params, src, lengths, max_len=TINY_MAX_LEN,
                                              beam_size=len(outputs), alpha=0.0))

  # Score every output of every example by teacher forcing, in one batch.
  batch, num = len(lengths), len(outputs)
  logits, _ = jax.jit(model.apply)(params, np.repeat(src, num, 0), np.repeat(lengths, num),
                                   np.tile(teacher_forced_input(padded), (batch, 1)))
  log_probs = masked_log_softmax(logits).reshape(batch, num, TINY_MAX_LEN, TINY_VOCAB)
  greedy_is_best = []
  for i in range(batch):
    scores = {o: sum(log_probs[i, j, t, o[t]] for t in range(len(o)))
              for j, o in enumerate(outputs)}
    best = max(scores, key=scores.get)
    found = [tuple(row[:n]) for row, n in zip(beam.tokens[i], beam.lengths[i])]
    assert found[0] == best
    np.testing.assert_allclose(beam.log_probs[i, 0], scores[best], rtol=0, atol=1e-4)
    # The beam holds every possible output exactly once, each with its true score, sorted.
    assert sorted(found) == outputs
    np.testing.assert_allclose(beam.log_probs[i], [scores[o] for o in found], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(beam.scores[i], beam.log_probs[i])  # alpha = 0
    assert np.all(np.diff(beam.scores[i]) <= 0)
    # The greedy output, read off the same teacher-forced distributions.
    next_log_probs = {o[:t]: log_probs[i, j, t] for j, o in enumerate(outputs)
                      for t in range(len(o))}
    greedy = ()
    while len(greedy) < TINY_MAX_LEN and EOS not in greedy:
      greedy += (int(np.argmax(next_log_probs[greedy])),)
    greedy_is_best.append(greedy == best)
  assert not all(greedy_is_best)  # the search finds what greedy decoding misses


# --------------------------------------------------------------------------- length penalty, args


def test_length_penalty_is_gnmt():
  lengths = np.array([1, 2, 7, 20])
  for alpha in (0.0, 0.6, 1.0, 2.0):
    np.testing.assert_allclose(length_penalty(jnp.asarray(lengths), alpha),
                               ((5.0 + lengths) / 6.0) ** alpha, rtol=1e-6)
  np.testing.assert_allclose(length_penalty(jnp.asarray([1]), 0.6), [1.0])  # one token: no penalty
  np.testing.assert_allclose(length_penalty(jnp.asarray([7]), 1.0), [2.0])
  np.testing.assert_array_equal(length_penalty(jnp.asarray(lengths), 0.0), 1.0)
  # Longer hypotheses are divided by more: the penalty grows with the length.
  assert np.all(np.diff(np.asarray(length_penalty(jnp.asarray(lengths), 0.6))) > 0)


def test_beam_size_zero_is_an_error():
  model = make_model()
  src, lengths = make_source()
  with pytest.raises(ValueError, match="beam_size must be >= 1"):
    beam_search(model, {}, src, lengths, max_len=MAX_LEN, beam_size=0)
