"""Parallel corpora as researchers have them, and the `corpus` task built from them.

Two layouts, told apart by `data.path`:

* a file: tab-separated pairs, `column1<TAB>column2`, optionally a third attribution column
  (ignored), as Tatoeba / manythings.org's `mar.txt`. Valid and test are drawn from it at random.
* a folder: line-aligned files, one sentence a line, named `{split}.{lang}`, e.g. Multi30k's
  `train.de` + `train.en`, `val.de` + `val.en`, `test_2016_flickr.de` + `test_2016_flickr.en`.
  `data.splits` names the (train, valid, test) files, so an official test set is used as
  published, never re-split.

Any file may be gzip-compressed (detected by its magic bytes, whatever its name; in a folder
`train.de.gz` is found for `train.de`), and may have CRLF line endings and a UTF-8 byte order
mark. Blank lines are skipped. Bad input (a missing or empty file, bytes that are not UTF-8,
line counts that differ, a line without a tab) raises one error naming the file and line.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Sequence

import numpy as np

from attnlab.data.base import Example, TaskData, register_task
from attnlab.data.text import (TOKENIZERS, build_corpus_tokenizers, sentencepiece_defaults,
                               tokenize)
from attnlab.data.vocab import Vocab

__all__ = [
    "BAD_LINE_POLICIES", "LONG_HELD_OUT_POLICIES", "corpus_defaults", "corpus_task",
    "filter_by_length", "limit_length", "read_aligned", "read_lines", "read_parallel",
    "split_file",
    "tokenize",  # the `punctuation` tokenizer's function, importable from here as before
]

BAD_LINE_POLICIES = ("error", "skip")
LONG_HELD_OUT_POLICIES = ("skip", "truncate")
# How many line numbers of skipped lines a warning names.
_REPORTED_BAD_LINES = 5
# How many file names a "not found in folder" error lists.
_REPORTED_FILES = 12
_GZIP_MAGIC = b"\x1f\x8b"

Pair = tuple[str, str]


# ---------------------------------------------------------------------------------- reading


def read_lines(path: str | os.PathLike) -> tuple[str, ...]:
  """The lines of a UTF-8 text file, plain or gzip-compressed.

  A leading byte order mark and the `\\r` of CRLF endings are removed; the newline after the
  last line adds no empty line; blank lines are kept (callers decide), so index `i` is line
  `i + 1` of the file.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: the file is empty or blank, not valid gzip, or not UTF-8 (naming the line).
  """
  name = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"parallel corpus file not found: {name}")
  with open(path, "rb") as f:
    raw = f.read()
  if raw.startswith(_GZIP_MAGIC):
    try:
      raw = gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
      raise ValueError(f"{name}: not a valid gzip file ({e})") from None
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line_number = raw.count(b"\n", 0, e.start) + 1
    byte_in_line = e.start - (raw.rfind(b"\n", 0, e.start) + 1)
    raise ValueError(f"{name}:{line_number}: not valid UTF-8 ({e.reason} at byte "
                     f"{byte_in_line} of the line)") from None
  text = text.removeprefix("\ufeff")  # a UTF-8 byte order mark
  if not text.strip():
    raise ValueError(f"parallel corpus file is empty: {name}")
  lines = [line.removesuffix("\r") for line in text.split("\n")]
  if lines[-1] == "":
    lines.pop()  # the final newline
  return tuple(lines)


def _warn_skipped(name: str, bad_lines: Sequence[int], what: str) -> None:
  if bad_lines:
    shown = ", ".join(map(str, bad_lines[:_REPORTED_BAD_LINES]))
    more = ", ..." if len(bad_lines) > _REPORTED_BAD_LINES else ""
    warnings.warn(f"{name}: skipped {len(bad_lines)} line(s) {what}: lines {shown}{more}",
                  stacklevel=3)


def _check_policy(on_bad_line: str) -> None:
  if on_bad_line not in BAD_LINE_POLICIES:
    raise ValueError(f"on_bad_line must be one of {BAD_LINE_POLICIES}, got {on_bad_line!r}")


def read_parallel(path: str | os.PathLike, on_bad_line: str = "error") -> tuple[Pair, ...]:
  """Reads `(column1, column2)` text pairs from a tab-separated file (plain or gzip).

  Args:
    path: the file.
    on_bad_line: what to do with a line that has no tab or an empty side: 'error' raises a
      ValueError naming the line number; 'skip' drops it and warns once (count and first line
      numbers). Blank lines are always skipped silently; columns after the second (Tatoeba's
      attribution) are ignored.

  Returns:
    The pairs `[num_pairs]`, each `(column1, column2)` stripped of surrounding whitespace.

  Raises:
    FileNotFoundError: no file at `path`.
    ValueError: the file is empty or has no pairs, is not UTF-8 (or not valid gzip), or a bad
      line under 'error'.
  """
  _check_policy(on_bad_line)
  name = os.fspath(path)
  pairs, bad_lines = [], []
  for line_number, line in enumerate(read_lines(path), start=1):
    if not line.strip():
      continue
    columns = line.split("\t")
    if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
      if on_bad_line == "error":
        raise ValueError(f"{name}:{line_number}: expected 'source<TAB>target', got "
                         f"{line[:80]!r}")
      bad_lines.append(line_number)
      continue
    pairs.append((columns[0].strip(), columns[1].strip()))
  _warn_skipped(name, bad_lines, "without 'source<TAB>target'")
  if not pairs:
    raise ValueError(f"no 'source<TAB>target' pairs in {name}")
  return tuple(pairs)


def _strip_trailing_blank(lines: Sequence[str]) -> Sequence[str]:
  end = len(lines)
  while end and not lines[end - 1].strip():
    end -= 1
  return lines[:end]


def read_aligned(src_path: str | os.PathLike, tgt_path: str | os.PathLike,
                 on_bad_line: str = "error") -> tuple[Pair, ...]:
  """Reads `(source, target)` pairs from two line-aligned files (plain or gzip): line i of one
  translates line i of the other.

  Args:
    src_path, tgt_path: the two files.
    on_bad_line: a line that is blank in one file but not in the other: 'error' raises a
      ValueError naming the file and line; 'skip' drops the pair and warns once. Lines blank in
      both files are skipped silently, and so are blank lines at the end of a file.

  Returns:
    The pairs `[num_pairs]`, each stripped of surrounding whitespace.

  Raises:
    FileNotFoundError: a file is missing.
    ValueError: a file is empty, not UTF-8 (or not valid gzip), the line counts differ, or a
      bad line under 'error'.
  """
  _check_policy(on_bad_line)
  src_name, tgt_name = os.fspath(src_path), os.fspath(tgt_path)
  src_lines = _strip_trailing_blank(read_lines(src_path))
  tgt_lines = _strip_trailing_blank(read_lines(tgt_path))
  if len(src_lines) != len(tgt_lines):
    raise ValueError(f"{src_name} has {len(src_lines)} lines but {tgt_name} has "
                     f"{len(tgt_lines)}: line-aligned files need the same number of lines")
  pairs, bad_lines = [], []
  for line_number, (src, tgt) in enumerate(zip(src_lines, tgt_lines), start=1):
    src, tgt = src.strip(), tgt.strip()
    if src and tgt:
      pairs.append((src, tgt))
    elif src or tgt:
      if on_bad_line == "error":
        blank, other = (src_name, tgt_name) if tgt else (tgt_name, src_name)
        raise ValueError(f"{blank}:{line_number}: blank line, but line {line_number} of "
                         f"{other} is not (are the files line-aligned?)")
      bad_lines.append(line_number)
  _warn_skipped(f"{src_name} + {tgt_name}", bad_lines, "blank on one side only")
  if not pairs:
    raise ValueError(f"no sentence pairs in {src_name} + {tgt_name}")
  return tuple(pairs)


def split_file(folder: str | os.PathLike, stem: str, lang: str) -> str:
  """The file `{stem}.{lang}` in `folder`, or else `{stem}.{lang}.gz`.

  Raises FileNotFoundError naming both and listing the folder's files.
  """
  folder = os.fspath(folder)
  for name in (f"{stem}.{lang}", f"{stem}.{lang}.gz"):
    path = os.path.join(folder, name)
    if os.path.isfile(path):
      return path
  present = sorted(os.listdir(folder))
  shown = ", ".join(present[:_REPORTED_FILES]) + (", ..." if len(present) > _REPORTED_FILES
                                                   else "")
  raise FileNotFoundError(f"no {stem}.{lang} or {stem}.{lang}.gz in {folder} "
                          f"(it holds: {shown or 'nothing'})")


# ---------------------------------------------------------------------------------- the task


def corpus_defaults(c) -> None:
  """The `corpus` task's fields of the data config, with their defaults."""
  # Parallel text: a tab-separated file (`source<TAB>target[<TAB>attribution]` a line, plain or
  # .gz) or a folder of line-aligned files `{split}.{lang}[.gz]` (see `splits`). Required.
  c.path = ""
  # Languages of source and target (ISO 639-1 codes such as 'de', 'en'). With a folder they
  # name its files (train.de, train.en; required); they also pick the Moses tokenizer's rules
  # ('' = English rules).
  c.src_lang = ""
  c.tgt_lang = ""
  # Folder only: the file stems of the (train, valid, test) splits, e.g. ('train', 'val',
  # 'test_2016_flickr') for Multi30k. '' for valid or test: draw that split at random from the
  # training pairs (num_valid / num_test pairs).
  c.splits = ("train", "valid", "test")
  # Tab-separated file only. False: column 1 is the source (eng->mar for mar.txt); True:
  # translate column 2 -> column 1 (then swap src_lang and tgt_lang too).
  c.reverse = False
  # Tokenizer of both sides (attnlab.data.text.TOKENIZERS): moses (sacremoses, per language),
  # sentencepiece (subwords learned from the train split, or an existing .model file),
  # punctuation (whitespace, then every punctuation character alone), whitespace, chars.
  c.tokenizer = "moses"
  # Lowercase the text.
  c.lowercase = True
  # sentencepiece only: at most this many subword pieces per side (per joint model).
  c.vocab_size = 8000
  sentencepiece_defaults(c)  # spm_model_type, spm_joint, spm_model, src_/tgt_spm_model
  # Tokens seen fewer times in the train split become <unk>.
  c.min_freq = 1
  # Cap on each vocabulary's size, specials included; None for no cap.
  c.max_vocab_size = None
  # Training pairs with more source / target tokens than these are dropped (None: keep all).
  # Valid and test keep every pair, so scores are on the whole held-out set.
  c.max_src_len = 20
  c.max_tgt_len = 20
  # Sizes of valid and test when drawn at random from the training pairs (always for a
  # tab-separated file; for a folder, a split whose stem in `splits` is '').
  c.num_valid = 1000
  c.num_test = 1000
  # A line without a tab or with an empty side (a folder: blank in one file only): 'error'
  # (raise, naming the file and line) or 'skip' (warn and drop).
  c.on_bad_line = "error"
  # No pair of any split has more source or target tokens than this (None: no limit): one
  # huge line would set its split's padded shapes (a 250,000-word test line asks for terabytes).
  # Longer training pairs are dropped, as max_src_len / max_tgt_len drop theirs; longer valid
  # and test pairs are dropped ('skip') or cut to the limit ('truncate'). Counted, said once.
  c.length_limit = 400
  c.on_long_held_out = "skip"


def filter_by_length(examples, max_src_len: int | None, max_tgt_len: int | None) -> list[Example]:
  """Keeps examples with `len(src) <= max_src_len` and `len(tgt) <= max_tgt_len` (None: no cap)."""
  return [e for e in examples
          if (max_src_len is None or len(e.src) <= max_src_len)
          and (max_tgt_len is None or len(e.tgt) <= max_tgt_len)]


def limit_length(examples, limit: int | None, policy: str, what: str) -> tuple[Example, ...]:
  """`examples` with at most `limit` tokens a side (None: all as they are): longer pairs are
  dropped ('skip') or cut to `limit` tokens a side ('truncate'), and one warning says how many
  (`what` names the split)."""
  too_long = [e for e in examples if limit is not None and max(len(e.src), len(e.tgt)) > limit]
  if not too_long:
    return tuple(examples)
  longest = max(max(len(e.src), len(e.tgt)) for e in too_long)
  warnings.warn(f"{what}: {'dropped' if policy == 'skip' else 'truncated'} {len(too_long)} "
                f"pair(s) over data.length_limit={limit} tokens a side (the longest: {longest})",
                stacklevel=3)
  if policy == "skip":
    return tuple(e for e in examples if max(len(e.src), len(e.tgt)) <= limit)
  return tuple(Example(e.src[:limit], e.tgt[:limit], reference=e.reference) for e in examples)


def _read_folder(data_config) -> tuple[str, list[list[Pair] | None], tuple[str, str]]:
  """A folder's (train, valid, test) pairs (None: a split to draw at random), a description of
  where they come from for messages, and the (source, target) languages."""
  folder = os.fspath(data_config.path)
  langs = (data_config.src_lang, data_config.tgt_lang)
  if not all(langs):
    raise ValueError(f"{folder} is a folder: name the languages of its files with "
                     "data.src_lang and data.tgt_lang (e.g. 'de' and 'en' for train.de + "
                     f"train.en), got {langs[0]!r} and {langs[1]!r}")
  if data_config.reverse:
    raise ValueError("data.reverse applies to a tab-separated file; with a folder, swap "
                     "data.src_lang and data.tgt_lang")
  stems = tuple(data_config.splits)
  if len(stems) != 3 or not all(isinstance(s, str) for s in stems) or not stems[0]:
    raise ValueError(f"data.splits must be three file stems (train, valid, test), the train "
                     f"one non-empty, e.g. ('train', 'val', 'test'); got {stems!r}")
  splits = []
  for stem in stems:
    if not stem:
      splits.append(None)
      continue
    src_path, tgt_path = (split_file(folder, stem, lang) for lang in langs)
    splits.append(list(read_aligned(src_path, tgt_path, data_config.on_bad_line)))
  return f"{os.path.join(folder, stems[0])}.{{{langs[0]},{langs[1]}}}", splits, langs


def _draw_held_out(splits, data_config, where: str) -> tuple[list[Pair], list[Pair], list[Pair]]:
  """Fills the missing valid / test splits with pairs drawn at random from train."""
  train, valid, test = splits
  sizes = {"num_valid": int(data_config.num_valid) if valid is None else 0,
           "num_test": int(data_config.num_test) if test is None else 0}
  if min(sizes.values()) < 0:
    raise ValueError(f"num_valid and num_test must be >= 0, got {sizes}")
  num_valid, num_test = sizes["num_valid"], sizes["num_test"]
  if num_valid + num_test == 0:
    return train, valid or [], test or []
  if num_valid + num_test >= len(train):
    raise ValueError(f"num_valid + num_test = {num_valid + num_test} leaves no training pairs "
                     f"of the {len(train)} in {where}")
  order = np.random.default_rng(data_config.seed).permutation(len(train))
  shuffled = [train[i] for i in order]
  if valid is None:
    valid = shuffled[:num_valid]
  if test is None:
    test = shuffled[num_valid:num_valid + num_test]
  return shuffled[num_valid + num_test:], valid, test


@register_task("corpus", defaults=corpus_defaults)
def corpus_task(data_config) -> TaskData:
  """The `corpus` task: parallel text, tokenized, split, filtered, with vocabularies.

  Reads every field of `corpus_defaults`. Steps:
  1. Read the pairs: a tab-separated file (`reverse` swaps its columns), or a folder's
     line-aligned `{split}.{src_lang}` / `{split}.{tgt_lang}` files for each of `splits`.
  2. Splits with no file (a tab-separated file's valid and test) are drawn at random from the
     training pairs with `default_rng(seed)`: `num_valid`, then `num_test` pairs.
  3. Each side gets its tokenizer (`tokenizer`, `src_lang` / `tgt_lang`, `lowercase`;
     sentencepiece learns `vocab_size` pieces of `spm_model_type` from the training pairs only,
     one model per side or one joint model (`spm_joint`), or reads `spm_model` files).
  4. Training pairs longer than `max_src_len` / `max_tgt_len` tokens are dropped; valid and test
     keep every pair up to `length_limit` tokens a side (longer: `on_long_held_out`).
  5. Vocabularies come from the train split only (`min_freq`, `max_vocab_size`), so valid/test
     tokens unseen in train (or rarer than `min_freq`) become <unk>.
  """
  path = data_config.path
  if not path:
    raise ValueError("the corpus task needs data_config.path (a tab-separated parallel file "
                     "or a folder of line-aligned files)")
  name = data_config.tokenizer
  if name not in TOKENIZERS:
    raise ValueError(f"unknown data.tokenizer {name!r}; valid: {', '.join(sorted(TOKENIZERS))}")
  limit, policy = data_config.length_limit, data_config.on_long_held_out
  if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
    raise ValueError(f"data.length_limit must be an integer >= 1 or None, got {limit!r}")
  if policy not in LONG_HELD_OUT_POLICIES:
    raise ValueError(f"data.on_long_held_out must be one of {LONG_HELD_OUT_POLICIES}, got "
                     f"{policy!r}")
  if os.path.isdir(path):
    where, splits, langs = _read_folder(data_config)
  else:
    pairs = read_parallel(path, on_bad_line=data_config.on_bad_line)
    if data_config.reverse:
      pairs = tuple((second, first) for first, second in pairs)
    where, splits = os.fspath(path), [list(pairs), None, None]
    langs = (data_config.src_lang, data_config.tgt_lang)
  train, valid, test = _draw_held_out(splits, data_config, where)

  tokenizers = build_corpus_tokenizers(data_config, train, langs)

  def tokenized(pairs, split, policy="skip"):
    examples = [Example(tokenizers[0].tokenize(s), tokenizers[1].tokenize(t), reference=t)
                for s, t in pairs]
    kept = [e for e in examples if e.src]
    if len(kept) < len(examples):
      warnings.warn(f"{where}: dropped {len(examples) - len(kept)} pair(s) whose source has no "
                    "tokens", stacklevel=3)
    return limit_length(kept, limit, policy, f"{os.fspath(path)}: {split}")

  all_train = tokenized(train, "train")
  train_examples = tuple(filter_by_length(all_train, data_config.max_src_len,
                                          data_config.max_tgt_len))
  if not train_examples:
    raise ValueError(f"no training pairs left: none of the {len(all_train)} in {where} is within "
                     f"max_src_len={data_config.max_src_len}, "
                     f"max_tgt_len={data_config.max_tgt_len}")
  min_freq, max_size = int(data_config.min_freq), data_config.max_vocab_size
  return TaskData(
      "corpus", train_examples, tokenized(valid, "valid", policy),
      tokenized(test, "test", policy),
      src_vocab=Vocab.build((e.src for e in train_examples), min_freq=min_freq,
                            max_size=max_size),
      tgt_vocab=Vocab.build((e.tgt for e in train_examples), min_freq=min_freq,
                            max_size=max_size),
      is_text=True, has_alignment=False,
      src_tokenizer=tokenizers[0], tgt_tokenizer=tokenizers[1])
