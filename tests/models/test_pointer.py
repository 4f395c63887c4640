"""Copy attention (pointer-generator): the extended distribution sums to one, padding gets no
copy mass, the teacher-forced pass equals step-by-step decoding, and greedy decoding emits
extended ids that map back to the source words."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.data.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab
from attnlab.decoding import beam_search, greedy_decode
from attnlab.models import DECODER_STYLES, Seq2Seq, pointer
from attnlab.options import defaults

import tiny_seq2seq
from tiny_seq2seq import EMB, HIDDEN, SRC_VOCAB, TGT_VOCAB

LENGTHS = (5, 3, 1)
SRC_LEN, TGT_LEN = 6, 4


def random_inputs(seed, lengths=LENGTHS, src_len=SRC_LEN, tgt_len=TGT_LEN):
  """src [batch, src_len], lengths [batch], src_ext [batch, src_len] (some ids are OOV slots
  >= TGT_VOCAB; PAD after the length), tgt_in [batch, tgt_len] (BOS + extended ids)."""
  rng = np.random.default_rng(seed)
  lengths = np.asarray(lengths, np.int32)
  real = np.arange(src_len)[None, :] < lengths[:, None]
  src = np.where(real, rng.integers(3, SRC_VOCAB, (len(lengths), src_len)), PAD).astype(np.int32)
  src_ext = np.where(real, rng.integers(3, TGT_VOCAB + 3, (len(lengths), src_len)), PAD)
  tgt_in = rng.integers(3, TGT_VOCAB + 3, (len(lengths), tgt_len))
  tgt_in[:, 0] = BOS
  return src, lengths, src_ext.astype(np.int32), tgt_in.astype(np.int32)


def make_model(**overrides):
  kwargs = dict(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB,
                hidden_dim=HIDDEN, bidirectional=True, max_src_len=8, copy=True)
  return Seq2Seq.create(**{**kwargs, **overrides})


# Wider than the other model tests' 0.3: gives p_gen and the copy mass more spread.
random_params = functools.partial(tiny_seq2seq.random_params, scale=0.5)


# --------------------------------------------------------------------------- the mixture


@pytest.mark.parametrize("seed", range(6))
def test_mixture_sums_to_one_and_padding_gets_no_copy_mass(seed):
  rng = np.random.default_rng(seed)
  batch, vocab, src_len = 4, 7, 5
  lengths = rng.integers(1, src_len + 1, batch)
  mask = np.arange(src_len)[None, :] < lengths[:, None]
  logits = 5.0 * rng.standard_normal((batch, vocab))
  p_gen_logit = 4.0 * rng.standard_normal(batch)
  # Weights need not sum to one (local_p, monotonic) and are nonzero on padding here, which
  # must still get nothing; row 0 has no attention mass at all.
  weights = rng.random((batch, src_len)) * rng.integers(0, 2, (batch, src_len))
  weights[0] = 0.0
  src_ext = rng.integers(3, vocab + src_len - 1, (batch, src_len))
  pad_id = vocab + src_len - 1  # a slot that only padded positions point at
  src_ext = np.where(mask, src_ext, pad_id)
  log_p = np.asarray(pointer.mixture_log_probs(
      jnp.asarray(logits), jnp.asarray(p_gen_logit), jnp.asarray(weights),
      jnp.asarray(src_ext), jnp.asarray(mask)))
  assert log_p.shape == (batch, vocab + src_len) and np.isfinite(log_p).all()
  np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)
  assert np.all(np.exp(log_p[:, pad_id]) == 0.0)
  # The formula itself: p_gen P_vocab + (1 - p_gen) * renormalised copy mass.
  p_gen = 1 / (1 + np.exp(-p_gen_logit))
  vocab_p = np.exp(logits - logits.max(-1, keepdims=True))
  vocab_p /= vocab_p.sum(-1, keepdims=True)
  for b in range(batch):
    a = np.where(mask[b], weights[b], 0.0)
    expected = np.concatenate([vocab_p[b], np.zeros(src_len)])
    if a.sum() > 0:
      copy = np.zeros(vocab + src_len)
      np.add.at(copy, src_ext[b], a / a.sum())
      expected = p_gen[b] * expected + (1 - p_gen[b]) * copy
    np.testing.assert_allclose(np.exp(log_p[b]), expected, atol=1e-6)


def test_mixture_gradients_are_finite_with_zero_probabilities():
  logits = jnp.array([[0.0, 80.0, -80.0]])  # softmax underflows to 0 at id 2
  weights = jnp.array([[1.0, 0.0]])
  src_ext = jnp.array([[3, 4]])
  mask = jnp.array([[True, True]])

  def loss(logits, p_gen_logit, weights):
    return -jnp.sum(pointer.mixture_log_probs(logits, p_gen_logit, weights, src_ext, mask)[:, 2:])

  grads = jax.grad(loss, argnums=(0, 1, 2))(logits, jnp.array([0.3]), weights)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads)


def test_feed_ids_maps_oov_slots_to_unk():
  ids = jnp.array([PAD, BOS, 5, TGT_VOCAB - 1, TGT_VOCAB, TGT_VOCAB + 4])
  np.testing.assert_array_equal(pointer.feed_ids(ids, TGT_VOCAB, UNK),
                                [PAD, BOS, 5, TGT_VOCAB - 1, UNK, UNK])


# --------------------------------------------------------------------------- the model

CASES = {
    "luong_global": dict(decoder="luong", attention="general"),
    "bahdanau_additive": dict(decoder="bahdanau", attention="additive"),
    "luong_local_p": dict(decoder="luong", attention="general", mechanism="local_p",
                          local_window=1),
    "luong_monotonic": dict(decoder="luong", attention="dot", mechanism="monotonic"),
    "bahdanau_sparsemax": dict(decoder="bahdanau", attention="additive", normalizer="sparsemax"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_distribution_over_extended_vocab_sums_to_one(case):
  model = make_model(**CASES[case])
  src, lengths, src_ext, tgt_in = random_inputs(seed=1)
  pad_id = TGT_VOCAB + SRC_LEN - 1
  src_ext = np.where(src_ext == PAD, pad_id, np.minimum(src_ext, pad_id - 1))
  params = random_params(model, src, lengths, tgt_in, src_ext=src_ext)
  log_p, attention = jax.jit(lambda p: model.apply(p, src, lengths, tgt_in, src_ext=src_ext))(
      params)
  assert log_p.shape == (len(LENGTHS), TGT_LEN, TGT_VOCAB + SRC_LEN)
  np.testing.assert_allclose(np.exp(np.asarray(log_p)).sum(-1), 1.0, atol=1e-5)
  assert np.all(np.exp(np.asarray(log_p)[..., pad_id]) == 0.0)  # padding is never copied


def test_copy_needs_src_ext_and_an_attention_decoder():
  src, lengths, _, tgt_in = random_inputs(seed=0)
  with pytest.raises(ValueError, match="src_ext"):
    jax.eval_shape(make_model().init, jax.random.key(0), src, lengths, tgt_in)
  # That copying needs an attention decoder: the `none` style's requirement (attnlab.config).
  problems = {r.name: r.problem({**defaults(), "decoder": "none", "copy": True})
              for r in DECODER_STYLES["none"]}
  assert "attention weights" in problems["copy"]


@pytest.mark.parametrize("decoder", ["luong", "bahdanau"])
def test_teacher_forcing_equals_step_by_step_with_copy(decoder):
  model = make_model(decoder=decoder, attention="additive")
  src, lengths, src_ext, tgt_in = random_inputs(seed=2)
  params = random_params(model, src, lengths, tgt_in, src_ext=src_ext)
  forced, forced_attention = model.apply(params, src, lengths, tgt_in, src_ext=src_ext)
  memory, state = model.apply(params, src, lengths, TGT_LEN, method=model.start)
  for t in range(TGT_LEN):  # tgt_in holds OOV slot ids: both paths embed them as UNK
    state, log_p, attention = model.apply(params, memory, state, jnp.asarray(tgt_in[:, t]),
                                          src_ext=src_ext, method=model.step)
    np.testing.assert_allclose(log_p, forced[:, t], atol=1e-5)
    np.testing.assert_allclose(attention, forced_attention[:, t], atol=1e-6)


def test_greedy_decoding_copies_oov_ids_back_to_source_words():
  # A hand-set "copy everything" model: p_gen -> 0, so every step copies the source position
  # the attention picks; with a one-word source that is that word, whatever its vocabulary.
  model = make_model(decoder="luong", attention="general")
  tgt_vocab = Vocab(SPECIALS + tuple("abcde"))  # 9 ids = TGT_VOCAB
  sources = [("a", "zed"), ("quux",), ("b",)]
  oovs = [tgt_vocab.source_oovs(s) for s in sources]
  assert oovs == [("zed",), ("quux",), ()]
  src_ext = np.full((3, SRC_LEN), PAD, np.int32)
  for row, (s, o) in enumerate(zip(sources, oovs)):
    src_ext[row, :len(s)] = tgt_vocab.encode_extended(s, o)
  np.testing.assert_array_equal(src_ext[:, :2], [[4, TGT_VOCAB], [TGT_VOCAB, PAD], [5, PAD]])
  lengths = np.array([len(s) for s in sources], np.int32)
  src = np.where(src_ext != PAD, UNK, PAD).astype(np.int32)
  params = random_params(model, src, lengths, src[:, :2], src_ext=src_ext)
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: (jnp.full_like(x, -50.0) if "p_gen" in jax.tree_util.keystr(path)
                       and "bias" in jax.tree_util.keystr(path) else
                       jnp.zeros_like(x) if "p_gen" in jax.tree_util.keystr(path) else x),
      params)
  result = greedy_decode(model, params, src, lengths, 3, src_ext=src_ext)
  tokens = np.asarray(result.tokens)
  # Rows with one source word copy it (an OOV slot or its target id) at every step.
  assert list(tokens[1]) == [TGT_VOCAB] * 3
  assert list(tokens[2]) == [5] * 3
  assert tgt_vocab.decode(tokens[1], oovs[1]) == ["quux"] * 3
  assert tgt_vocab.decode(tokens[2], oovs[2]) == ["b"] * 3
  assert set(tgt_vocab.decode(tokens[0], oovs[0])) <= {"a", "zed"}
  # Beam search finds the same copies, over the extended vocabulary.
  beams = np.asarray(beam_search(model, params, src, lengths, 3, beam_size=2,
                                 src_ext=src_ext).tokens)
  assert list(beams[1, 0]) == [TGT_VOCAB] * 3 and list(beams[2, 0]) == [5] * 3
  assert EOS not in tokens[1:]
