"""Tokenizers: how a task turns a line of text into tokens and tokens back into text.

Every task carries one tokenizer per side (`TaskData.src_tokenizer`, `TaskData.tgt_tokenizer`),
so training, evaluation and decoding never branch on a task's name:

    tokens = task.src_tokenizer.tokenize("Ein Hund rennt.")    # ('ein', 'hund', 'rennt', '.')
    text = task.tgt_tokenizer.detokenize(predicted_tokens)     # 'a dog runs.'

A tokenizer is a small frozen value that serialises to JSON (`to_json`, `to_dict`), so a run can
save it in its workdir and decoding can rebuild it without rebuilding the dataset:

    tokenizer = tokenizer_from_json(saved_text)

| name          | tokens                                                   | detokenize         |
|---------------|----------------------------------------------------------|--------------------|
| chars         | one per non-space character (date: month names whole)    | joined             |
| whitespace    | the whitespace-separated words (synthetic tasks)         | spaces             |
| punctuation   | whitespace words, each punctuation mark alone (`tokenize`) | spaces           |
| moses         | the Moses tokenizer (sacremoses), per language           | Moses detokenizer  |
| sentencepiece | subwords of a SentencePiece model (see below)            | SentencePiece      |

A SentencePiece model is learned from the train split (unigram or BPE; one per side, or one
joint model shared by both sides) or read from an existing `.model` file (`load`); either way
its bytes travel inside the tokenizer's JSON, so a workdir never needs the file again.

`lowercase=True` lowercases the tokens (Moses tokenizes the cased text first: its non-breaking
prefixes such as "Mr." are case-sensitive), so detokenized output is lowercase too.
"""

from __future__ import annotations

import abc
import base64
import binascii
import dataclasses
import functools
import io
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

# SentencePiece's training algorithms offered (`spm_train --model_type`).
SPM_MODEL_TYPES = ("unigram", "bpe")
# Tokenizer name -> class: the choices of the corpus task's `data.tokenizer`.
TOKENIZERS: dict[str, type[Tokenizer]] = {}
# A run of letters ([^\W\d_]: word characters that are neither digits nor "_"), else one
# non-space character.
_LETTER_RUN_OR_CHAR = re.compile(r"[^\W\d_]+|\S")


def _register(cls):
  TOKENIZERS[cls.name] = cls
  return cls


class Tokenizer(abc.ABC):
  """Text <-> tokens for one side (one language) of a task.

  Subclasses are frozen dataclasses: equal settings (and models) compare equal.
  """

  name: ClassVar[str]

  @abc.abstractmethod
  def tokenize(self, text: str) -> tuple[str, ...]:
    """One line of raw text -> its tokens `[len]` (whitespace-only text gives `()`)."""

  @abc.abstractmethod
  def detokenize(self, tokens: Sequence[str]) -> str:
    """Tokens `[len]` -> readable text (the inverse of `tokenize` up to lowercasing and
    whitespace)."""

  def to_dict(self) -> dict[str, Any]:
    """A JSON-compatible dict that `tokenizer_from_dict` turns back into an equal tokenizer."""
    fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
    return {"tokenizer": self.name, **fields}

  def to_json(self) -> str:
    """`to_dict` as a JSON string (UTF-8 text kept readable)."""
    return json.dumps(self.to_dict(), ensure_ascii=False)


def tokenizer_from_dict(data: dict[str, Any]) -> Tokenizer:
  """Inverse of `Tokenizer.to_dict`. Raises ValueError on anything else."""
  if not isinstance(data, dict) or data.get("tokenizer") not in TOKENIZERS:
    name = data.get("tokenizer") if isinstance(data, dict) else None
    raise ValueError(f"not a serialised tokenizer: 'tokenizer' is {name!r}; valid: "
                     f"{', '.join(sorted(TOKENIZERS))}")
  fields = {k: v for k, v in data.items() if k != "tokenizer"}
  try:
    return TOKENIZERS[data["tokenizer"]](**fields)
  except TypeError as e:
    raise ValueError(f"not a serialised {data['tokenizer']} tokenizer: {e}") from None


def tokenizer_from_json(text: str) -> Tokenizer:
  """Inverse of `Tokenizer.to_json`: rebuilds a task's tokenizer (e.g. from a workdir) without
  rebuilding its data. Raises ValueError on anything else."""
  try:
    data = json.loads(text)
  except (json.JSONDecodeError, TypeError) as e:
    raise ValueError(f"not a serialised tokenizer (not JSON): {e}") from None
  return tokenizer_from_dict(data)


def tokenize(text: str, lowercase: bool = True) -> tuple[str, ...]:
  """Word-level tokenization: split on whitespace, then split off punctuation.

  Every punctuation character (Unicode category P*: `. , ? ! " ' -` and the Devanagari danda
  `।`) becomes its own token. Everything else, notably combining marks (categories Mn/Mc such
  as the Devanagari vowel signs and virama, for which `str.isalnum()` is False) and zero-width
  joiners, stays inside its word; this is why `\\w`-based regexes are not used. Text is NFC
  normalised first so that equal words get equal tokens.

  Example: `"Don't go!" -> ("don", "'", "t", "go", "!")`.
  """
  text = unicodedata.normalize("NFC", text)
  if lowercase:
    text = text.lower()
  tokens = []
  for word in text.split():
    start = 0
    for i, char in enumerate(word):
      if unicodedata.category(char).startswith("P"):
        if i > start:
          tokens.append(word[start:i])
        tokens.append(char)
        start = i + 1
    if start < len(word):
      tokens.append(word[start:])
  return tuple(tokens)


@_register
@dataclasses.dataclass(frozen=True)
class CharTokenizer(Tokenizer):
  """One token per character, whitespace dropped: `"98-03-23" -> ("9", "8", "-", ...)`.

  Attributes:
    group_letters: a run of letters is one token (the date task's month names:
      `"23/Mar/1998" -> ("2", "3", "/", "Mar", "/", "1", "9", "9", "8")`).
  """

  name: ClassVar[str] = "chars"
  group_letters: bool = False

  def tokenize(self, text: str) -> tuple[str, ...]:
    if self.group_letters:
      return tuple(_LETTER_RUN_OR_CHAR.findall(text))
    return tuple(c for c in text if not c.isspace())

  def detokenize(self, tokens: Sequence[str]) -> str:
    return "".join(tokens)


@_register
@dataclasses.dataclass(frozen=True)
class WhitespaceTokenizer(Tokenizer):
  """Tokens are the whitespace-separated words: `"a b  c" -> ("a", "b", "c")`."""

  name: ClassVar[str] = "whitespace"
  lowercase: bool = False

  def tokenize(self, text: str) -> tuple[str, ...]:
    return tuple((text.lower() if self.lowercase else text).split())

  def detokenize(self, tokens: Sequence[str]) -> str:
    return " ".join(tokens)


@_register
@dataclasses.dataclass(frozen=True)
class PunctuationTokenizer(Tokenizer):
  """`tokenize`: whitespace words with every punctuation character split off (NFC first).

  Language-agnostic and exact about combining marks, but naive about English clitics:
  `"Don't" -> ("don", "'", "t")` where Moses gives `("don", "'t")`.
  """

  name: ClassVar[str] = "punctuation"
  lowercase: bool = True

  def tokenize(self, text: str) -> tuple[str, ...]:
    return tokenize(text, self.lowercase)

  def detokenize(self, tokens: Sequence[str]) -> str:
    return " ".join(tokens)


# Words holding a zero-width joiner or non-joiner (U+200D, U+200C), kept whole: Moses would
# split at them, but Devanagari ("अ‍ॅलर्जी"), Bengali and Persian ("می‌خواهم") write them inside
# words. sacremoses matches these with the `regex` module, whose \w includes combining marks
# and the joiners.
_JOINED_WORDS = (r"\w*[\u200c\u200d]\w*",)


# sacremoses and sentencepiece are imported where first used: sacremoses alone takes about half
# a second to import (it compiles its regexes), which every `import attnlab` would pay.


@functools.lru_cache(maxsize=None)
def _moses(lang: str):
  """sacremoses's (MosesTokenizer, MosesDetokenizer) for `lang`, built once."""
  import sacremoses  # pylint: disable=g-import-not-at-top
  return sacremoses.MosesTokenizer(lang), sacremoses.MosesDetokenizer(lang)


@_register
@dataclasses.dataclass(frozen=True)
class MosesTokenizer(Tokenizer):
  """The Moses tokenizer (sacremoses, as in fairseq): language-aware punctuation, clitics and
  non-breaking prefixes, `"Don't go, Mr. Smith!" -> ("don", "'t", "go", ",", "mr.", "smith",
  "!")` with lang='en'.

  Attributes:
    lang: ISO 639-1 code choosing Moses's rules (non-breaking prefixes, apostrophes); any code
      works, those without rules of their own get the generic ones.
    lowercase: lowercase the tokens.

  No XML escaping (`&` stays `&`), as fairseq; text is NFC normalised first; words with a
  zero-width (non-)joiner inside stay whole.
  """

  name: ClassVar[str] = "moses"
  lang: str = "en"
  lowercase: bool = True

  def tokenize(self, text: str) -> tuple[str, ...]:
    tokens = _moses(self.lang)[0].tokenize(unicodedata.normalize("NFC", text), escape=False,
                                           protected_patterns=_JOINED_WORDS)
    return tuple(t.lower() for t in tokens) if self.lowercase else tuple(tokens)

  def detokenize(self, tokens: Sequence[str]) -> str:
    return _moses(self.lang)[1].detokenize(list(tokens), unescape=False)


@functools.lru_cache(maxsize=8)
def _sentencepiece(model: str):
  """The SentencePieceProcessor of a base64 model, loaded once."""
  import sentencepiece  # pylint: disable=g-import-not-at-top
  proto = base64.b64decode(model, validate=True)
  if not proto:
    raise ValueError("empty")
  return sentencepiece.SentencePieceProcessor(model_proto=proto)


@_register
@dataclasses.dataclass(frozen=True)
class SentencePieceTokenizer(Tokenizer):
  """Subword tokens from a SentencePiece model (Kudo & Richardson 2018): `"a dog runs." ->
  ("▁a", "▁dog", "▁run", "s", ".")`. Build one with `SentencePieceTokenizer.train`.

  Attributes:
    model: the serialised SentencePiece model, base64 (so the tokenizer is plain JSON).
    lowercase: lowercase the text before encoding (the model was trained on lowercased text).
  """

  name: ClassVar[str] = "sentencepiece"
  model: str
  lowercase: bool = True

  def __post_init__(self):
    try:
      _sentencepiece(self.model)
    except (binascii.Error, RuntimeError, TypeError, ValueError) as e:
      raise ValueError(f"not a SentencePiece model: {e}") from None

  @classmethod
  def train(cls, lines: Iterable[str], vocab_size: int, lowercase: bool = True,
            seed: int = 0, model_type: str = "unigram") -> SentencePieceTokenizer:
    """Trains a SentencePiece model on raw `lines` (the train split only).

    `model_type` is one of `SPM_MODEL_TYPES`: 'unigram' (Kudo 2018) or 'bpe' (Sennrich et al.
    2016). `vocab_size` is an upper bound (`hard_vocab_limit=False`): a small corpus yields
    fewer pieces instead of an error. Training is single-threaded and seeded, so the same lines
    give the same model. Raises ValueError when there is no text to train on.
    """
    if vocab_size < 8:
      raise ValueError(f"sentencepiece vocab_size must be >= 8, got {vocab_size}")
    if model_type not in SPM_MODEL_TYPES:
      raise ValueError(f"unknown SentencePiece model type {model_type!r}; valid: "
                       f"{', '.join(SPM_MODEL_TYPES)}")
    texts = [line.lower() if lowercase else line for line in lines]
    if not any(t.strip() for t in texts):
      raise ValueError("no text to train a SentencePiece model on")
    import sentencepiece  # pylint: disable=g-import-not-at-top
    model = io.BytesIO()
    sentencepiece.set_random_generator_seed(seed)
    try:
      sentencepiece.SentencePieceTrainer.train(
          sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
          model_type=model_type, character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
          minloglevel=2)
    except RuntimeError as e:
      raise ValueError(f"SentencePiece training failed: {e}") from None
    return cls(base64.b64encode(model.getvalue()).decode("ascii"), lowercase)

  @classmethod
  def load(cls, path: str, lowercase: bool = True) -> SentencePieceTokenizer:
    """The tokenizer of an existing SentencePiece `.model` file (one trained by `spm_train`,
    fairseq, OpenNMT or JoeyNMT). The model's bytes are kept, so the file is not needed again.

    Raises ValueError (one line, naming `path`) when it is missing or not a model.
    """
    if not os.path.isfile(path):
      raise ValueError(f"no such SentencePiece model file: {path!r}")
    with open(path, "rb") as f:
      model = base64.b64encode(f.read()).decode("ascii")
    try:
      return cls(model, lowercase)
    except ValueError:
      raise ValueError(f"{path}: not a SentencePiece model file") from None

  def tokenize(self, text: str) -> tuple[str, ...]:
    text = text.lower() if self.lowercase else text
    return tuple(_sentencepiece(self.model).encode(text, out_type=str))

  def detokenize(self, tokens: Sequence[str]) -> str:
    return _sentencepiece(self.model).decode_pieces(list(tokens))


def sentencepiece_defaults(c) -> None:
  """The SentencePiece fields of the corpus task's data config, with their defaults."""
  # sentencepiece only: the subword algorithm learned from the train split, 'unigram' (Kudo
  # 2018) or 'bpe' (Sennrich et al. 2016), as spm_train's --model_type.
  c.spm_model_type = "unigram"
  # sentencepiece only: one model learned from both sides' train text, shared by source and
  # target (a joint vocabulary, as fairseq's --joined-dictionary runs use); False: one per side.
  c.spm_joint = False
  # sentencepiece only: an existing SentencePiece .model file for both sides (e.g. from a
  # fairseq, OpenNMT or JoeyNMT run), used instead of training one; or one file per side with
  # src_spm_model and tgt_spm_model. The model is saved in the workdir (vocab.json), so eval
  # and decode do not need the file again.
  c.spm_model = ""
  c.src_spm_model = ""
  c.tgt_spm_model = ""


def spm_model_paths(data_config) -> tuple[str, str]:
  """The (source, target) `.model` files a corpus config names ('' each: train them)."""
  both = data_config.spm_model
  return both or data_config.src_spm_model, both or data_config.tgt_spm_model


def build_corpus_tokenizers(data_config, training_pairs: Sequence[tuple[str, str]],
                            langs: tuple[str, str]) -> tuple[Tokenizer, Tokenizer]:
  """The (source, target) tokenizers of a corpus task's data config.

  `training_pairs` are the raw `(source, target)` train-split lines a SentencePiece model
  learns from (one per side, or one joint model with `spm_joint`), unless `.model` files are
  named (`spm_model`, or `src_spm_model` + `tgt_spm_model`).
  """
  name, lowercase = data_config.tokenizer, bool(data_config.lowercase)
  if name != "sentencepiece":
    return tuple(build_tokenizer(name, lang=lang, lowercase=lowercase) for lang in langs)
  paths = spm_model_paths(data_config)
  if any(paths):
    keys = (("spm_model",) * 2 if data_config.spm_model
            else ("src_spm_model", "tgt_spm_model"))
    tokenizers = []
    for key, path in zip(keys, paths):
      try:
        tokenizers.append(SentencePieceTokenizer.load(path, lowercase))
      except ValueError as e:
        raise ValueError(f"data.{key}: {e}") from None
    return tuple(tokenizers)
  train = functools.partial(SentencePieceTokenizer.train,
                            vocab_size=int(data_config.vocab_size),
                            lowercase=lowercase, seed=data_config.seed,
                            model_type=data_config.spm_model_type)
  if data_config.spm_joint:
    joint = train([line for pair in training_pairs for line in pair])
    return joint, joint
  return tuple(train([pair[side] for pair in training_pairs]) for side in (0, 1))


def build_tokenizer(name: str, *, lang: str = "", lowercase: bool = True,
                    vocab_size: int = 8000, training_text: Iterable[str] = (),
                    seed: int = 0) -> Tokenizer:
  """The tokenizer `name` (see `TOKENIZERS`) for one side of a corpus.

  Args:
    name: chars, whitespace, punctuation, moses or sentencepiece.
    lang: the side's language code (moses; '' = English rules).
    lowercase: lowercase tokens (chars keeps case).
    vocab_size: sentencepiece only: at most this many pieces.
    training_text: sentencepiece only: the raw train-split lines it learns from.
    seed: sentencepiece only: training seed.
  """
  if name not in TOKENIZERS:
    raise ValueError(f"unknown tokenizer {name!r}; valid: {', '.join(sorted(TOKENIZERS))}")
  if name == "chars":
    return CharTokenizer()
  if name == "moses":
    return MosesTokenizer(lang or "en", bool(lowercase))
  if name == "sentencepiece":
    return SentencePieceTokenizer.train(training_text, int(vocab_size), bool(lowercase), seed)
  return TOKENIZERS[name](lowercase=bool(lowercase))
