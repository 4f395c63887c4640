"""Tests for attnlab.data.text: the tokenizers every task carries, and their JSON form."""

import json

import hypothesis
import hypothesis.strategies as st
import pytest

from attnlab.data import TASKS, build_task, default_data_config
from attnlab.data.text import (TOKENIZERS, CharTokenizer, MosesTokenizer, PunctuationTokenizer,
                               SentencePieceTokenizer, WhitespaceTokenizer, build_corpus_tokenizers,
                               build_tokenizer,
                               tokenize, tokenizer_from_dict, tokenizer_from_json)

CAPTIONS = [
    "A man in an orange hat starring at something.",
    "Two young, White males are outside near many bushes.",
    "A little girl climbing into a wooden playhouse.",
    "Several men in hard hats are operating a giant pulley system.",
    "A dog runs through the grass.",
    "Two dogs are playing in the snow.",
] * 5


@pytest.fixture(scope="module")
def spm():
  return SentencePieceTokenizer.train(CAPTIONS, vocab_size=60)


# ------------------------------------------------------------------------------ punctuation


def test_tokenize_english_punctuation():
  assert tokenize("Don't go, Tom!") == ("don", "'", "t", "go", ",", "tom", "!")
  assert tokenize('He said "hi."  Really?') == ("he", "said", '"', "hi", ".", '"', "really", "?")
  assert tokenize("Tom", lowercase=False) == ("Tom",)
  assert tokenize("  ") == ()
  assert PunctuationTokenizer().tokenize("Don't go!") == tokenize("Don't go!")
  assert PunctuationTokenizer(lowercase=False).detokenize(("Go", "!")) == "Go !"


def test_tokenize_marathi_keeps_combining_marks():
  sentence = "तू खूप चांगली आहेस."
  assert tokenize(sentence) == ("तू", "खूप", "चांगली", "आहेस", ".")
  assert tokenize("मी घरी जातो।") == ("मी", "घरी", "जातो", "।")
  # The trap: vowel signs and the virama are not alphanumeric.
  assert not "ा".isalnum() and not "्".isalnum()
  assert "त्याच्याकडे" in tokenize("त्याच्याकडे सायकल आहे.")


# ------------------------------------------------------------------------------ moses


def test_moses_english_clitics_and_punctuation():
  moses = MosesTokenizer("en")
  assert moses.tokenize("Don't go, Tom!") == ("don", "'t", "go", ",", "tom", "!")
  assert moses.tokenize("Mr. Smith isn't here.") == ("mr.", "smith", "isn", "'t", "here", ".")
  assert moses.tokenize("Tom & Mary") == ("tom", "&", "mary")  # no XML escaping
  assert moses.tokenize("   ") == ()
  cased = MosesTokenizer("en", lowercase=False)
  assert cased.tokenize("Don't go, Tom!") == ("Don", "'t", "go", ",", "Tom", "!")
  assert cased.detokenize(("Don", "'t", "go", ",", "Tom", "&", "Mary", "!")) == \
      "Don't go, Tom & Mary!"


def test_moses_language_rules():
  text = "L'homme est là."
  assert MosesTokenizer("fr").tokenize(text) == ("l'", "homme", "est", "là", ".")
  assert MosesTokenizer("fr").detokenize(("l'", "homme", "est", "là", ".")) == "l'homme est là."
  assert MosesTokenizer("de").tokenize("Ein Mann, der etwas anstarrt.") == (
      "ein", "mann", ",", "der", "etwas", "anstarrt", ".")


def test_moses_keeps_devanagari_words_whole():
  moses = MosesTokenizer("mr")
  assert moses.tokenize("तू खूप चांगली आहेस.") == ("तू", "खूप", "चांगली", "आहेस", ".")
  assert moses.tokenize("मी घरी जातो।") == ("मी", "घरी", "जातो", "।")
  # A zero-width joiner inside a word (U+200D) does not split it.
  assert moses.tokenize("मला धुळीची अ\u200dॅलर्जी आहे.") == (
      "मला", "धुळीची", "अ\u200dॅलर्जी", "आहे", ".")
  # NFC first: decomposed and composed spellings give the same token.
  assert moses.tokenize("e\u0301te\u0301") == moses.tokenize("\u00e9t\u00e9")


@hypothesis.settings(deadline=None, max_examples=60)
@hypothesis.given(st.lists(st.sampled_from(CAPTIONS[:6] + ["Don't!", "a, b.", "(x)"]),
                           min_size=1, max_size=3))
def test_moses_tokens_survive_detokenize_then_tokenize(sentences):
  # Cased text: after lowercasing, "something. a man" reads to Moses as an abbreviation's
  # period inside a sentence, so lowercased text round-trips one sentence at a time.
  cased = MosesTokenizer("en", lowercase=False)
  tokens = cased.tokenize(" ".join(sentences))
  assert cased.tokenize(cased.detokenize(tokens)) == tokens
  lowercased = MosesTokenizer("en")
  tokens = lowercased.tokenize(sentences[0])
  assert lowercased.tokenize(lowercased.detokenize(tokens)) == tokens


# ------------------------------------------------------------------------------ sentencepiece


def test_sentencepiece_round_trip(spm):
  pieces = spm.tokenize("A dog runs through the snow.")
  assert len(pieces) >= 6 and all(isinstance(p, str) for p in pieces)
  assert spm.detokenize(pieces) == "a dog runs through the snow."
  assert spm.tokenize("A DOG") == spm.tokenize("a dog")  # lowercased
  assert spm.tokenize("") == ()


def test_sentencepiece_training_is_deterministic_and_bounded(spm):
  assert SentencePieceTokenizer.train(CAPTIONS, vocab_size=60) == spm
  other = SentencePieceTokenizer.train(CAPTIONS, vocab_size=40)
  assert other != spm
  pieces = {p for line in CAPTIONS for p in other.tokenize(line)}
  assert len(pieces) <= 40
  cased = SentencePieceTokenizer.train(CAPTIONS, vocab_size=60, lowercase=False)
  assert cased.detokenize(cased.tokenize("A dog.")) == "A dog."


def test_sentencepiece_bad_input():
  with pytest.raises(ValueError, match="no text"):
    SentencePieceTokenizer.train(["", "  "], vocab_size=60)
  with pytest.raises(ValueError, match="vocab_size"):
    SentencePieceTokenizer.train(CAPTIONS, vocab_size=2)
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    SentencePieceTokenizer("bm90IGEgbW9kZWw=")  # base64 of "not a model"
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    SentencePieceTokenizer("%%%")


def test_sentencepiece_bpe_differs_from_unigram_and_round_trips(spm):
  bpe = SentencePieceTokenizer.train(CAPTIONS, vocab_size=60, model_type="bpe")
  assert bpe != spm and bpe == SentencePieceTokenizer.train(CAPTIONS, 60, model_type="bpe")
  assert bpe.detokenize(bpe.tokenize("A dog runs through the snow.")) == (
      "a dog runs through the snow.")
  with pytest.raises(ValueError, match="valid: unigram, bpe"):
    SentencePieceTokenizer.train(CAPTIONS, vocab_size=60, model_type="word")


def external_model(tmp_path, lines, name="spm"):
  """A .model file as `spm_train` (fairseq, OpenNMT, JoeyNMT) writes one."""
  import sentencepiece  # pylint: disable=g-import-not-at-top
  text = tmp_path / f"{name}.txt"
  text.write_text("\n".join(lines) + "\n", encoding="utf-8")
  sentencepiece.SentencePieceTrainer.train(
      input=str(text), model_prefix=str(tmp_path / name), vocab_size=50, model_type="bpe",
      character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
  return tmp_path / f"{name}.model"


def test_sentencepiece_load_keeps_the_model_without_the_file(tmp_path):
  path = external_model(tmp_path, [c.lower() for c in CAPTIONS])
  loaded = SentencePieceTokenizer.load(str(path))
  path.unlink()
  rebuilt = tokenizer_from_json(loaded.to_json())
  assert rebuilt == loaded
  pieces = rebuilt.tokenize("Two dogs are playing.")
  assert rebuilt.detokenize(pieces) == "two dogs are playing."
  with pytest.raises(ValueError, match="no such SentencePiece model file"):
    SentencePieceTokenizer.load(str(path))
  (tmp_path / "bad.model").write_text("not a model")
  with pytest.raises(ValueError, match="bad.model: not a SentencePiece model file"):
    SentencePieceTokenizer.load(str(tmp_path / "bad.model"))


def corpus_config(**fields):
  config = default_data_config("corpus")
  config.tokenizer, config.vocab_size, config.seed = "sentencepiece", 60, 0
  config.update(fields)
  return config


PAIRS = [(c, c.upper()) for c in CAPTIONS]  # two "languages" with disjoint characters


def test_corpus_tokenizers_per_side_joint_and_from_files(tmp_path):
  langs = ("en", "xx")
  src, tgt = build_corpus_tokenizers(corpus_config(lowercase=False), PAIRS, langs)
  assert src != tgt and "D" not in "".join(src.tokenize("A dog"))[1:]
  src, tgt = build_corpus_tokenizers(corpus_config(lowercase=False, spm_joint=True), PAIRS, langs)
  assert src == tgt and src.detokenize(src.tokenize("A DOG runs.")) == "A DOG runs."
  bpe, _ = build_corpus_tokenizers(corpus_config(spm_model_type="bpe"), PAIRS, langs)
  assert bpe != build_corpus_tokenizers(corpus_config(), PAIRS, langs)[0]
  path = external_model(tmp_path, CAPTIONS)
  src, tgt = build_corpus_tokenizers(corpus_config(spm_model=str(path)), PAIRS, langs)
  assert src == tgt == SentencePieceTokenizer.load(str(path))
  other = external_model(tmp_path, [c.upper() for c in CAPTIONS], name="other")
  src, tgt = build_corpus_tokenizers(
      corpus_config(src_spm_model=str(path), tgt_spm_model=str(other), lowercase=False),
      PAIRS, langs)
  assert src != tgt and tgt.detokenize(tgt.tokenize("A DOG.")) == "A DOG."
  with pytest.raises(ValueError, match="data.tgt_spm_model: no such SentencePiece model file"):
    build_corpus_tokenizers(corpus_config(src_spm_model=str(path), tgt_spm_model="/no.model"),
                            PAIRS, langs)


# ------------------------------------------------------------------------------ all of them


def test_chars_and_whitespace():
  assert CharTokenizer().tokenize(" 98-03 23 ") == tuple("98-0323")
  assert CharTokenizer().detokenize(tuple("98-03")) == "98-03"
  grouped = CharTokenizer(group_letters=True)
  assert grouped.tokenize("23/Mar/1998") == ("2", "3", "/", "Mar", "/", "1", "9", "9", "8")
  assert WhitespaceTokenizer().tokenize("a b  C\n") == ("a", "b", "C")
  assert WhitespaceTokenizer(lowercase=True).tokenize("a C") == ("a", "c")
  assert WhitespaceTokenizer().detokenize(("a", "b")) == "a b"


def test_build_tokenizer_by_name(spm):
  assert sorted(TOKENIZERS) == ["chars", "moses", "punctuation", "sentencepiece", "whitespace"]
  assert build_tokenizer("moses", lang="de") == MosesTokenizer("de")
  assert build_tokenizer("moses") == MosesTokenizer("en")  # '' = English rules
  assert build_tokenizer("punctuation", lowercase=False) == PunctuationTokenizer(False)
  assert build_tokenizer("whitespace") == WhitespaceTokenizer(lowercase=True)
  assert build_tokenizer("chars") == CharTokenizer()
  assert build_tokenizer("sentencepiece", vocab_size=60, training_text=CAPTIONS) == spm
  with pytest.raises(ValueError, match="unknown tokenizer 'spacy'; valid: chars, moses"):
    build_tokenizer("spacy")


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_json_round_trip(name, spm):
  tokenizer = spm if name == "sentencepiece" else build_tokenizer(name, lang="fr",
                                                                  lowercase=False)
  text = tokenizer.to_json()
  assert json.loads(text)["tokenizer"] == name
  restored = tokenizer_from_json(text)
  assert restored == tokenizer and type(restored) is type(tokenizer)
  assert tokenizer_from_dict(tokenizer.to_dict()) == tokenizer
  line = "L'homme en Chapeau, 98-03-23."
  assert restored.tokenize(line) == tokenizer.tokenize(line)
  assert restored.detokenize(tokenizer.tokenize(line)) == tokenizer.detokenize(
      tokenizer.tokenize(line))


def test_from_json_rejects_garbage():
  for text, needle in (("not json", "not JSON"), ('{"tokenizer": "spacy"}', "'spacy'; valid"),
                       ("[1, 2]", "is None"), ('{"tokenizer": "moses", "langg": "en"}', "langg")):
    with pytest.raises(ValueError, match="not a serialised"):
      tokenizer_from_json(text)
    with pytest.raises(ValueError, match=needle):
      tokenizer_from_json(text)


@pytest.mark.parametrize("name", sorted(set(TASKS) - {"corpus"}))
def test_every_task_owns_its_text(name):
  """detokenize then tokenize gives every example's tokens back, on both sides."""
  config = default_data_config(name)
  config.num_train, config.num_valid, config.num_test = 50, 5, 50
  task = build_task(config)
  for example in task.test:
    for tokenizer, tokens in ((task.src_tokenizer, example.src),
                              (task.tgt_tokenizer, example.tgt)):
      assert tokenizer.tokenize(tokenizer.detokenize(tokens)) == tokens
  assert tokenizer_from_json(task.src_tokenizer.to_json()) == task.src_tokenizer


def test_date_text():
  task = build_task(default_data_config("date"))
  assert task.src_tokenizer.tokenize(" 98-03-23 ") == tuple("98-03-23")
  assert task.tgt_tokenizer.detokenize(("2", "3", "/", "Mar", "/", "1", "9", "9", "8")) == \
      "23/Mar/1998"
