"""Tests for attnlab.data.vocab."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from attnlab.data.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab

WORDS = st.lists(st.sampled_from(["a", "b", "c", "dog", "चांगली", "?"]), max_size=12)


def test_special_ids_match_specials():
  assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
  vocab = Vocab.build([])
  assert vocab.tokens == SPECIALS
  assert [vocab.index(s) for s in SPECIALS] == [PAD, BOS, EOS, UNK]


def test_build_orders_by_frequency_then_alphabet():
  vocab = Vocab.build([["b", "a", "c"], ["c", "b", "d"], ["c"]])
  assert vocab.tokens[len(SPECIALS):] == ("c", "b", "a", "d")
  assert len(vocab) == len(SPECIALS) + 4


def test_build_ignores_special_strings_in_data():
  vocab = Vocab.build([["<unk>", "x", "<pad>"]])
  assert vocab.tokens == SPECIALS + ("x",)


@hypothesis.settings(deadline=None, max_examples=50)
@hypothesis.given(st.lists(WORDS, max_size=5), WORDS)
def test_encode_decode_round_trip(corpus, sentence):
  vocab = Vocab.build(corpus + [sentence])
  ids = vocab.encode(sentence)
  assert all(isinstance(i, int) and i >= len(SPECIALS) for i in ids)
  assert vocab.decode(ids) == list(sentence)
  assert vocab.decode(np.array([BOS] + ids + [EOS, 7, PAD])) == list(sentence)


def test_unknown_tokens_encode_to_unk():
  vocab = Vocab.build([["a", "b"]])
  assert vocab.encode(["a", "zzz", "b"]) == [vocab.index("a"), UNK, vocab.index("b")]
  assert vocab.decode([vocab.index("a"), UNK]) == ["a", "<unk>"]
  assert "zzz" not in vocab and "a" in vocab
  with pytest.raises(ValueError, match="zzz"):
    vocab.index("zzz")


def test_decode_stops_at_eos_and_skips_pad_bos():
  vocab = Vocab.build([["a", "b"]])
  a, b = vocab.encode(["a", "b"])
  assert vocab.decode([BOS, a, PAD, b, EOS, a, b]) == ["a", "b"]
  assert vocab.decode([EOS, a]) == []
  with pytest.raises(ValueError, match="out of range"):
    vocab.decode([a, 99])


def test_min_freq_and_max_size():
  corpus = [["a", "a", "a", "b", "b", "c"]]
  assert Vocab.build(corpus, min_freq=2).tokens[len(SPECIALS):] == ("a", "b")
  assert Vocab.build(corpus, min_freq=4).tokens == SPECIALS
  assert Vocab.build(corpus, max_size=5).tokens == SPECIALS + ("a",)
  with pytest.raises(ValueError, match="min_freq"):
    Vocab.build(corpus, min_freq=0)
  with pytest.raises(ValueError, match="max_size"):
    Vocab.build(corpus, max_size=2)


def test_json_round_trip_keeps_unicode():
  vocab = Vocab.build([["तू", "खूप", "चांगली"], ["you", "?"]])
  text = vocab.to_json()
  assert "चांगली" in text
  restored = Vocab.from_json(text)
  assert restored == vocab
  assert restored.encode(["खूप"]) == vocab.encode(["खूप"])
  assert hash(restored) == hash(vocab)


@pytest.mark.parametrize("tokens", [("a", "b"), SPECIALS + ("x", "x"), SPECIALS[::-1]])
def test_invalid_token_lists_raise(tokens):
  with pytest.raises(ValueError):
    Vocab(tokens)


def test_from_json_rejects_garbage():
  with pytest.raises(ValueError, match="Vocab"):
    Vocab.from_json("not json")
  with pytest.raises(ValueError, match="Vocab"):
    Vocab.from_json('{"words": []}')


# ------------------------------------------------------------ extended vocabulary (copying)


@hypothesis.given(src=WORDS, tgt=WORDS)
def test_extended_ids_round_trip_through_source_oovs(src, tgt):
  vocab = Vocab.build([["a", "b"]])
  oovs = vocab.source_oovs(src)
  assert len(oovs) == len(set(oovs)) <= len(src) and not any(t in vocab for t in oovs)
  ids = vocab.encode_extended(src, oovs)
  assert all(i < len(vocab) + len(src) for i in ids)
  assert vocab.decode(ids, oovs) == list(src)  # every source word comes back
  for token, i in zip(tgt, vocab.encode_extended(tgt, oovs)):
    assert vocab.token(i, oovs) == (token if token in vocab or token in oovs else "<unk>")


def test_extended_ids_outside_oovs():
  vocab = Vocab.build([["a"]])
  assert vocab.source_oovs(["x", "a", "y", "x"]) == ("x", "y")
  assert vocab.encode_extended(["y", "z", "a"], ("x", "y")) == [len(vocab) + 1, UNK, 4]
  assert vocab.token(len(vocab) + 5, ("x",)) == "<unk>"  # an unused slot
  with pytest.raises(ValueError, match="out of range"):
    vocab.decode([len(vocab)])  # no oovs given: extended ids are errors
