"""The synthetic tasks: date normalisation, copy, reverse and toy translation.

Each is registered by name (`attnlab.data.base.register_task`) with the fields it adds to the
default data config; `build_task(config.data)` builds the one `config.data.task` names. The
parallel-corpus task lives in `attnlab.data.corpus`.

All randomness comes from `numpy.random.default_rng(data_config.seed)`, so the same data config
always gives the same data. Alignments are "sure links" `(tgt_position, src_position)`, 0-based
over the token tuples (no BOS/EOS), as used by alignment error rate. Each task owns its text:
the date task's tokens are characters (`CharTokenizer`), the others' whitespace-separated
symbols (`WhitespaceTokenizer`).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Sequence

import numpy as np

# Example, TaskData and the registry are re-exported here for code written against this module.
from attnlab.data.base import (TASK_DEFAULTS, TASKS, Alignment, Example, TaskData, build_task,
                               default_data_config, register_task)
from attnlab.data.text import CharTokenizer
from attnlab.data.vocab import SPECIALS, Vocab

__all__ = [
    "TASK_DEFAULTS", "TASKS", "Alignment", "Example", "TaskData", "build_task",
    "default_data_config", "register_task", "date_task", "copy_task", "reverse_task",
    "toy_translation_task",
]


def _split_defaults(c) -> None:
  # Number of examples in each split (disjoint).
  c.num_train = 10000
  c.num_valid = 1000
  c.num_test = 1000


def _symbol_defaults(c) -> None:
  _split_defaults(c)
  # Number of distinct symbols (a..z when <= 26, else t0, t1, ...).
  c.vocab_size = 10
  # Sequence lengths are drawn uniformly from [min_len, max_len].
  c.min_len = 5
  c.max_len = 20
  # The last this many symbols are left out of both vocabularies (they encode as <unk>), like
  # the rare names and numbers of a corpus: only a copy model (model.copy) can output them.
  c.num_oov_symbols = 0


def _toy_translation_defaults(c) -> None:
  _split_defaults(c)
  # Number of source word types (target types: one more per preposition).
  c.vocab_size = 100
  # Source sentences have between min_len and max_len words.
  c.min_len = 3
  c.max_len = 20
  # Clauses joined by "and": uniformly 1..max_clauses (about 8 words each); raise it for
  # sources longer than about 40 words.
  c.max_clauses = 3
  # Move each clause's verb to the end of the clause in the target (SOV order).
  c.verb_final = True
  # Translate each preposition as a circumposition: one word before, one after its noun phrase.
  c.circumpositions = True


def _split_sizes(data_config) -> tuple[int, int, int]:
  sizes = (int(data_config.num_train), int(data_config.num_valid), int(data_config.num_test))
  if sizes[0] < 1 or min(sizes) < 0:
    raise ValueError(f"need num_train >= 1 and num_valid, num_test >= 0, got {sizes}")
  return sizes


def _split(examples: Sequence[Example], sizes: tuple[int, int, int]):
  """Slices `examples` (already shuffled, distinct) into train, valid, test."""
  n_train, n_valid, n_test = sizes
  examples = tuple(examples)
  return (examples[:n_train], examples[n_train:n_train + n_valid],
          examples[n_train + n_valid:n_train + n_valid + n_test])


# ----------------------------------------------------------------------------------------------
# date: yy-mm-dd -> dd/Mon/yyyy


DATE_FIRST = datetime.date(1974, 1, 1)
DATE_LAST = datetime.date(2034, 12, 31)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DIGITS = tuple("0123456789")
# Characters, month names whole: "23/Mar/1998" <-> ("2", "3", "/", "Mar", "/", "1", ...).
_DATE_TEXT = CharTokenizer(group_letters=True)


def date_example(date: datetime.date) -> Example:
  """The `date` task's example for one calendar date.

  Source `yy-mm-dd` as 8 characters, target `dd/Mon/yyyy` as 9 tokens (the month is one token):
  `98-03-23 -> 23/Mar/1998`. True alignment: each day digit to its source digit, the month to
  both month digits, the year's last two digits to the `yy` digits, the century digits (which
  the model must infer from `yy`) to both `yy` digits, and each slash to the dash in the same
  place (`dd/` <- `-dd`, `/yyyy` <- `yy-`).
  """
  src = tuple(date.strftime("%y-%m-%d"))
  tgt = (*f"{date.day:02d}", "/", MONTHS[date.month - 1], "/", *f"{date.year:04d}")
  # src positions: y0 y1 - m0 m1 - d0 d1  (0..7)
  # tgt positions: d0 d1 / Mon / c0 c1 y0 y1  (0..8)
  alignment = ((0, 6), (1, 7), (2, 5), (3, 3), (3, 4), (4, 2),
               (5, 0), (5, 1), (6, 0), (6, 1), (7, 0), (8, 1))
  return Example(src, tgt, alignment)


@register_task("date", defaults=_split_defaults)
def date_task(data_config) -> TaskData:
  """Date normalisation: every date from 1974-01-01 to 2034-12-31, `yy-mm-dd -> dd/Mon/yyyy`.

  Reads `seed`, `num_train`, `num_valid`, `num_test`. All dates are shuffled once and sliced, so
  the splits are disjoint; their total must not exceed the 22,280 dates.
  """
  sizes = _split_sizes(data_config)
  num_dates = (DATE_LAST - DATE_FIRST).days + 1
  if sum(sizes) > num_dates:
    raise ValueError(f"num_train + num_valid + num_test = {sum(sizes)} exceeds the {num_dates} "
                     f"dates from {DATE_FIRST} to {DATE_LAST}")
  rng = np.random.default_rng(data_config.seed)
  order = rng.permutation(num_dates)[:sum(sizes)]
  examples = [date_example(DATE_FIRST + datetime.timedelta(days=int(i))) for i in order]
  return TaskData(
      "date", *_split(examples, sizes),
      src_vocab=Vocab(SPECIALS + _DIGITS + ("-",)),
      tgt_vocab=Vocab(SPECIALS + _DIGITS + ("/",) + MONTHS),
      is_text=False, has_alignment=True,
      src_tokenizer=_DATE_TEXT, tgt_tokenizer=_DATE_TEXT)


# ----------------------------------------------------------------------------------------------
# copy / reverse


def _symbols(vocab_size: int) -> tuple[str, ...]:
  if vocab_size < 1:
    raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
  if vocab_size <= 26:
    return tuple("abcdefghijklmnopqrstuvwxyz"[:vocab_size])
  return tuple(f"t{i}" for i in range(vocab_size))


def _check_lengths(min_len: int, max_len: int, lowest: int = 1) -> None:
  if not lowest <= min_len <= max_len:
    raise ValueError(f"need {lowest} <= min_len <= max_len, got min_len={min_len}, "
                     f"max_len={max_len}")


def _distinct(draw: Callable[[], tuple[str, ...]], count: int, what: str) -> list:
  """Draws until `count` distinct sequences are collected, in order of first appearance."""
  seen: dict[tuple[str, ...], None] = {}
  for _ in range(max(1000, 50 * count)):
    if len(seen) == count:
      break
    seen.setdefault(draw(), None)
  if len(seen) < count:
    raise ValueError(f"could not draw {count} distinct {what}; only {len(seen)} found. Ask for "
                     "fewer examples or widen the lengths / vocabulary")
  return list(seen)


def _random_sequences(data_config) -> tuple[list[tuple[str, ...]], tuple[int, int, int]]:
  """Distinct random symbol sequences for copy/reverse, in draw order."""
  sizes = _split_sizes(data_config)
  symbols = _symbols(int(data_config.vocab_size))
  min_len, max_len = int(data_config.min_len), int(data_config.max_len)
  _check_lengths(min_len, max_len)
  capacity = sum(len(symbols)**n for n in range(min_len, max_len + 1))
  if sum(sizes) > capacity:
    raise ValueError(f"asked for {sum(sizes)} distinct sequences but only {capacity} exist with "
                     f"vocab_size={len(symbols)} and lengths {min_len}..{max_len}")
  rng = np.random.default_rng(data_config.seed)

  def draw():
    length = rng.integers(min_len, max_len + 1)
    return tuple(symbols[i] for i in rng.integers(0, len(symbols), size=length))

  return _distinct(draw, sum(sizes), "sequences"), sizes


def _symbol_task(name: str, data_config, reverse: bool) -> TaskData:
  sequences, sizes = _random_sequences(data_config)
  examples = []
  for src in sequences:
    n = len(src)
    if reverse:
      examples.append(Example(src, src[::-1], tuple((t, n - 1 - t) for t in range(n))))
    else:
      examples.append(Example(src, src, tuple((t, t) for t in range(n))))
  symbols = _symbols(int(data_config.vocab_size))
  num_oov = int(data_config.num_oov_symbols)
  if not 0 <= num_oov < len(symbols):
    raise ValueError(f"num_oov_symbols must be in [0, vocab_size), got {num_oov} with "
                     f"vocab_size={len(symbols)}")
  vocab = Vocab(SPECIALS + symbols[:len(symbols) - num_oov])
  return TaskData(name, *_split(examples, sizes), src_vocab=vocab, tgt_vocab=vocab,
                  is_text=False, has_alignment=True)


@register_task("copy", defaults=_symbol_defaults)
def copy_task(data_config) -> TaskData:
  """Copy a random symbol sequence; alignment is the identity.

  Reads `seed`, `num_train`, `num_valid`, `num_test`, `vocab_size` (symbols `a..z` when <= 26,
  else `t0, t1, ...`), `min_len`, `max_len` (lengths drawn uniformly in [min_len, max_len]),
  `num_oov_symbols` (the last symbols, kept out of both vocabularies: they encode as <unk>, so
  only copying from the source reproduces them).
  All sequences are distinct, so valid and test share none with train or each other; the
  de-duplication slightly under-samples lengths with few possible sequences.
  """
  return _symbol_task("copy", data_config, reverse=False)


@register_task("reverse", defaults=_symbol_defaults)
def reverse_task(data_config) -> TaskData:
  """Reverse a random symbol sequence; alignment is the anti-diagonal.

  Reads the same fields as `copy`.
  """
  return _symbol_task("reverse", data_config, reverse=True)


# ----------------------------------------------------------------------------------------------
# toy_translation: a synthetic language pair with known word alignment

# Shares of the content-word types; the rest are nouns. Determiners and prepositions get 5%
# each (at least 2), plus the conjunction "and".
_CONTENT_SHARES = {"adj": 0.2, "vtr": 0.15, "vin": 0.1, "adv": 0.15}
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _toy_source_words(vocab_size: int) -> dict[str, tuple[str, ...]]:
  """Source word types by category, named after the category: det0, noun3, vtr1, ... and."""
  if vocab_size < 12:
    raise ValueError(f"toy_translation needs vocab_size >= 12, got {vocab_size}")
  n_det = n_prep = max(2, round(0.05 * vocab_size))
  rest = vocab_size - n_det - n_prep - 1
  counts = {"det": n_det, "prep": n_prep}
  counts.update({cat: max(1, int(share * rest)) for cat, share in _CONTENT_SHARES.items()})
  counts["noun"] = rest - sum(counts[cat] for cat in _CONTENT_SHARES)
  words = {cat: tuple(f"{cat}{i}" for i in range(n)) for cat, n in counts.items()}
  words["conj"] = ("and",)
  return words


def _toy_lexicon(words: dict[str, tuple[str, ...]], rng) -> dict[str, tuple[str, ...]]:
  """A random word-level lexicon: each source word -> one made-up target word (two for a
  preposition: the halves of its circumposition). All target words are distinct."""
  sources = [w for cat in sorted(words) for w in words[cat]]
  needed = len(sources) + len(words["prep"])

  def draw():
    syllables = rng.integers(2, 4)
    return "".join(_CONSONANTS[rng.integers(len(_CONSONANTS))] + _VOWELS[rng.integers(len(_VOWELS))]
                   for _ in range(syllables))

  targets = iter(_distinct(draw, needed, "target words"))
  lexicon = {}
  for w in sources:
    lexicon[w] = (next(targets), next(targets)) if w.startswith("prep") else (next(targets),)
  return lexicon


class _ToyBuilder:
  """Accumulates a source sentence and its target as (target word, source position) pairs."""

  def __init__(self, rng, words, lexicon, verb_final, circumpositions, max_clauses=3):
    self.rng, self.words, self.lexicon = rng, words, lexicon
    self.verb_final, self.circumpositions = verb_final, circumpositions
    self.max_clauses = max_clauses
    self.src: list[str] = []

  def word(self, cat: str) -> list[tuple[str, int]]:
    """Appends a random `cat` word to the source; returns its target words with its position."""
    choices = self.words[cat]
    w = choices[self.rng.integers(len(choices))]
    self.src.append(w)
    return [(t, len(self.src) - 1) for t in self.lexicon[w]]

  def count(self) -> int:
    """0, 1 or 2 with probabilities 0.5, 0.3, 0.2 (adjectives per NP, PPs per clause)."""
    u = self.rng.random()
    return 0 if u < 0.5 else 1 if u < 0.8 else 2

  def noun_phrase(self) -> list[tuple[str, int]]:
    """det adj* noun -> det' noun' adj'* (adjectives follow their noun in the target)."""
    det = self.word("det")
    adjs = [self.word("adj") for _ in range(self.count())]
    noun = self.word("noun")
    return det + noun + [t for adj in adjs for t in adj]

  def prepositional_phrase(self) -> list[tuple[str, int]]:
    """prep NP -> prepA' NP' prepB' (circumposition) or prepA' prepB' NP' (without)."""
    prep, np_ = self.word("prep"), self.noun_phrase()
    return [prep[0]] + np_ + [prep[1]] if self.circumpositions else prep + np_

  def clause(self) -> list[tuple[str, int]]:
    """NP verb [NP] PP* [adv] -> NP' [NP'] PP'* [adv'] verb' when verb_final, else same order."""
    subject = self.noun_phrase()
    transitive = self.rng.random() < 0.5
    verb = self.word("vtr" if transitive else "vin")
    obj = self.noun_phrase() if transitive else []
    pps = [t for _ in range(self.count()) for t in self.prepositional_phrase()]
    adv = self.word("adv") if self.rng.random() < 0.3 else []
    if self.verb_final:
      return subject + obj + pps + adv + verb
    return subject + verb + obj + pps + adv

  def sentence(self) -> list[tuple[str, int]]:
    """clause (and clause){0,max_clauses-1}; each clause is reordered on its own."""
    target = self.clause()
    for _ in range(self.rng.integers(self.max_clauses)):
      target += self.word("conj") + self.clause()
    return target


def toy_translation_example(builder: _ToyBuilder) -> Example:
  """Generates one sentence pair from a fresh builder state."""
  builder.src = []
  target = builder.sentence()
  tgt = tuple(t for t, _ in target)
  return Example(tuple(builder.src), tgt, tuple((i, s) for i, (_, s) in enumerate(target)))


@register_task("toy_translation", defaults=_toy_translation_defaults)
def toy_translation_task(data_config) -> TaskData:
  """A synthetic language pair with an exactly known word alignment.

  Source grammar (word types named by category, e.g. `det1 adj4 noun17 vtr3`):
    sentence := clause ("and" clause){0,max_clauses-1}   (uniformly many clauses)
    clause   := NP verb [NP] PP{0,2} [adv]      (transitive verbs take the object NP)
    NP       := det adj{0,2} noun
    PP       := prep NP
  Translation, word by word through a fixed random lexicon of made-up target words, then:
    1. adjectives follow their noun: `det adj1 adj2 noun -> det' noun' adj1' adj2'`;
    2. if `verb_final`, each clause's verb moves to the end of its clause (long-range
       reordering): `NP verb NP PP adv -> NP' NP' PP' adv' verb'`;
    3. if `circumpositions`, a preposition becomes two target words around its noun phrase
       (`prep NP -> prepA' NP' prepB'`, both aligned to `prep`): a one-to-many link; otherwise
       both words precede the noun phrase.
  Sentences are drawn from the grammar and kept when their source length is in
  [min_len, max_len]; all are distinct, so valid/test share none with train.

  Reads `seed`, `num_train`, `num_valid`, `num_test`, `vocab_size` (exact number of source word
  types, >= 12), `min_len` (>= 3), `max_len`, `max_clauses` (>= 1), `verb_final`,
  `circumpositions`.
  """
  sizes = _split_sizes(data_config)
  min_len, max_len = int(data_config.min_len), int(data_config.max_len)
  _check_lengths(min_len, max_len, lowest=3)
  rng = np.random.default_rng(data_config.seed)
  words = _toy_source_words(int(data_config.vocab_size))
  lexicon = _toy_lexicon(words, rng)
  max_clauses = int(data_config.max_clauses)
  if max_clauses < 1:
    raise ValueError(f"need max_clauses >= 1, got {max_clauses}")
  builder = _ToyBuilder(rng, words, lexicon, bool(data_config.verb_final),
                        bool(data_config.circumpositions), max_clauses)
  by_src: dict[tuple[str, ...], Example] = {}

  def draw():
    # Rejection on the source length; a fixed try budget per sentence keeps this finite.
    for _ in range(1000):
      example = toy_translation_example(builder)
      if min_len <= len(example.src) <= max_len:
        by_src[example.src] = example
        return example.src
    raise ValueError(f"the toy grammar almost never produces sentences of {min_len}..{max_len} "
                     "words; lower min_len")

  sources = _distinct(draw, sum(sizes), "toy sentences")
  examples = [by_src[src] for src in sources]
  src_types = tuple(itertools.chain.from_iterable(words[cat] for cat in sorted(words)))
  tgt_types = tuple(itertools.chain.from_iterable(lexicon[w] for w in src_types))
  return TaskData("toy_translation", *_split(examples, sizes),
                  src_vocab=Vocab(SPECIALS + src_types), tgt_vocab=Vocab(SPECIALS + tgt_types),
                  is_text=True, has_alignment=True)
