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
| sentencepiece | subwords of a model learned from the train split         | SentencePiece      |

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
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

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
            seed: int = 0) -> SentencePieceTokenizer:
    """Trains a unigram SentencePiece model on raw `lines` (the train split only).

    `vocab_size` is an upper bound (`hard_vocab_limit=False`): a small corpus yields fewer
    pieces instead of an error. Training is single-threaded and seeded, so the same lines give
    the same model. Raises ValueError when there is no text to train on.
    """
    if vocab_size < 8:
      raise ValueError(f"sentencepiece vocab_size must be >= 8, got {vocab_size}")
    texts = [line.lower() if lowercase else line for line in lines]
    if not any(t.strip() for t in texts):
      raise ValueError("no text to train a SentencePiece model on")
    import sentencepiece  # pylint: disable=g-import-not-at-top
    model = io.BytesIO()
    sentencepiece.set_random_generator_seed(seed)
    try:
      sentencepiece.SentencePieceTrainer.train(
          sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
          model_type="unigram", character_coverage=1.0, hard_vocab_limit=False, num_threads=1,
          minloglevel=2)
    except RuntimeError as e:
      raise ValueError(f"SentencePiece training failed: {e}") from None
    return cls(base64.b64encode(model.getvalue()).decode("ascii"), lowercase)

  def tokenize(self, text: str) -> tuple[str, ...]:
    text = text.lower() if self.lowercase else text
    return tuple(_sentencepiece(self.model).encode(text, out_type=str))

  def detokenize(self, tokens: Sequence[str]) -> str:
    return _sentencepiece(self.model).decode_pieces(list(tokens))


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
