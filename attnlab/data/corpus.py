"""Tab-separated parallel corpora (the Tatoeba / manythings.org `mar.txt` format).

Format: UTF-8, one pair a line, `column1<TAB>column2`, optionally a third attribution column
(ignored). Blank lines are skipped. The `corpus` task (registered in `attnlab.data.tasks`)
reads a file, tokenizes at the word level, drops over-long pairs, splits deterministically and
builds vocabularies from the train split.
"""

from __future__ import annotations

import os
import unicodedata
import warnings

import numpy as np

from attnlab.data.tasks import Example, TaskData
from attnlab.data.vocab import Vocab

BAD_LINE_POLICIES = ("error", "skip")
# How many line numbers of skipped lines a warning names.
_REPORTED_BAD_LINES = 5


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


def read_parallel(path: str | os.PathLike,
                  on_bad_line: str = "error") -> tuple[tuple[str, str], ...]:
  """Reads `(column1, column2)` text pairs from a tab-separated file.

  Args:
    path: the file.
    on_bad_line: what to do with a line that has no tab or an empty side: 'error' raises a
      ValueError naming the line number; 'skip' drops it and warns once (count and first line
      numbers). Blank lines are always skipped silently; columns after the second are ignored.

  Returns:
    The pairs `[num_pairs]`, each `(column1, column2)` stripped of surrounding whitespace.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: the file is empty or has no pairs, a line is not UTF-8, or a bad line under
      'error'.
  """
  if on_bad_line not in BAD_LINE_POLICIES:
    raise ValueError(f"on_bad_line must be one of {BAD_LINE_POLICIES}, got {on_bad_line!r}")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"parallel corpus file not found: {os.fspath(path)}")
  with open(path, "rb") as f:
    raw = f.read()
  if not raw.strip():
    raise ValueError(f"parallel corpus file is empty: {os.fspath(path)}")
  pairs, bad_lines = [], []
  for line_number, raw_line in enumerate(raw.split(b"\n"), start=1):
    try:
      line = raw_line.decode("utf-8")
    except UnicodeDecodeError as e:
      raise ValueError(f"{os.fspath(path)}:{line_number}: not valid UTF-8 ({e.reason} at byte "
                       f"{e.start} of the line)") from None
    if line_number == 1:
      line = line.removeprefix("\ufeff")  # a UTF-8 byte order mark
    if not line.strip():
      continue
    columns = line.rstrip("\r").split("\t")
    if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
      if on_bad_line == "error":
        raise ValueError(f"{os.fspath(path)}:{line_number}: expected 'source<TAB>target', got "
                         f"{line[:80]!r}")
      bad_lines.append(line_number)
      continue
    pairs.append((columns[0].strip(), columns[1].strip()))
  if bad_lines:
    shown = ", ".join(map(str, bad_lines[:_REPORTED_BAD_LINES]))
    more = ", ..." if len(bad_lines) > _REPORTED_BAD_LINES else ""
    warnings.warn(f"{os.fspath(path)}: skipped {len(bad_lines)} line(s) without "
                  f"'source<TAB>target': lines {shown}{more}", stacklevel=2)
  if not pairs:
    raise ValueError(f"no 'source<TAB>target' pairs in {os.fspath(path)}")
  return tuple(pairs)


def filter_by_length(examples, max_src_len: int | None, max_tgt_len: int | None) -> list[Example]:
  """Keeps examples with `len(src) <= max_src_len` and `len(tgt) <= max_tgt_len` (None: no cap)."""
  return [e for e in examples
          if (max_src_len is None or len(e.src) <= max_src_len)
          and (max_tgt_len is None or len(e.tgt) <= max_tgt_len)]


def corpus_task(data_config) -> TaskData:
  """The `corpus` task: a tab-separated parallel corpus, tokenized, filtered and split.

  Reads `path`, `seed`, `lowercase`, `reverse` (False: column 1 -> column 2; True: column 2 ->
  column 1), `min_freq`, `max_vocab_size`, `max_src_len`, `max_tgt_len` (pairs with more tokens
  are dropped; None keeps all), `num_valid`, `num_test`, `on_bad_line`.

  The kept pairs are shuffled once with `default_rng(seed)`: the first `num_valid` are valid,
  the next `num_test` test, the rest train. Vocabularies come from the train split only, so
  valid/test words unseen in train (or rarer than `min_freq`) become <unk>.
  """
  if not data_config.path:
    raise ValueError("the corpus task needs data_config.path (a tab-separated parallel file)")
  pairs = read_parallel(data_config.path, on_bad_line=data_config.on_bad_line)
  lowercase = bool(data_config.lowercase)
  examples = []
  for first, second in pairs:
    src, tgt = (second, first) if data_config.reverse else (first, second)
    examples.append(Example(tokenize(src, lowercase), tokenize(tgt, lowercase)))
  kept = filter_by_length(examples, data_config.max_src_len, data_config.max_tgt_len)
  num_valid, num_test = int(data_config.num_valid), int(data_config.num_test)
  if min(num_valid, num_test) < 0:
    raise ValueError(f"num_valid and num_test must be >= 0, got {num_valid}, {num_test}")
  if num_valid + num_test >= len(kept):
    raise ValueError(f"num_valid + num_test = {num_valid + num_test} leaves no training pairs: "
                     f"{len(kept)} of {len(examples)} pairs in {data_config.path} are within "
                     f"max_src_len={data_config.max_src_len}, "
                     f"max_tgt_len={data_config.max_tgt_len}")
  order = np.random.default_rng(data_config.seed).permutation(len(kept))
  shuffled = [kept[i] for i in order]
  valid = tuple(shuffled[:num_valid])
  test = tuple(shuffled[num_valid:num_valid + num_test])
  train = tuple(shuffled[num_valid + num_test:])
  min_freq, max_size = int(data_config.min_freq), data_config.max_vocab_size
  return TaskData(
      "corpus", train, valid, test,
      src_vocab=Vocab.build((e.src for e in train), min_freq=min_freq, max_size=max_size),
      tgt_vocab=Vocab.build((e.tgt for e in train), min_freq=min_freq, max_size=max_size),
      is_text=True, has_alignment=False)
