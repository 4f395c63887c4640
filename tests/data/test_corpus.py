"""Tests for attnlab.data.corpus: file reading, tokenization and the `corpus` task."""

import collections
import unicodedata
from pathlib import Path

import pytest

from attnlab.data.corpus import read_parallel, tokenize
from attnlab.data.tasks import build_task, default_data_config
from attnlab.data.vocab import SPECIALS

# The shared data folder sits beside the checkout: <root>/main/tests/data -> <root>/shared.
MAR_TXT = Path(__file__).resolve().parents[2].parent / "shared/data/mar-eng/mar.txt"
MAR_LINES = 33725

PAIRS = [
    ("Go.", "जा."),
    ("Run!", "पळ!"),
    ("Who?", "कोण?"),
    ("I see the dog.", "मला कुत्रा दिसतो."),
    ("The dog is big.", "कुत्रा मोठा आहे."),
    ("You're very nice.", "तू खूप चांगली आहेस."),
    ("He has a bicycle.", "त्याच्याकडे सायकल आहे."),
    ("The big dog runs.", "मोठा कुत्रा धावतो."),
    ("I see you.", "मला तू दिसतेस."),
    ("We can talk.", "आपण बोलू शकतो."),
] * 3


def write_lines(path, lines, encoding="utf-8"):
  path.write_bytes("\n".join(lines).encode(encoding) + b"\n")
  return path


@pytest.fixture
def corpus_file(tmp_path):
  lines = [f"{en}\t{mr}" if i % 2 else f"{en}\t{mr}\tCC-BY 2.0 (France) #{i}"
           for i, (en, mr) in enumerate(PAIRS)]
  return write_lines(tmp_path / "pairs.txt", lines)


def corpus_config(path, **overrides):
  config = default_data_config("corpus")
  config.path = str(path)
  config.num_valid, config.num_test = 4, 3
  config.update(overrides)
  return config


def test_tokenize_english_punctuation():
  assert tokenize("Don't go, Tom!") == ("don", "'", "t", "go", ",", "tom", "!")
  assert tokenize('He said "hi."  Really?') == ("he", "said", '"', "hi", ".", '"', "really", "?")
  assert tokenize("Tom", lowercase=False) == ("Tom",)
  assert tokenize("  ") == ()


def test_tokenize_marathi_keeps_combining_marks():
  sentence = "तू खूप चांगली आहेस."
  assert tokenize(sentence) == ("तू", "खूप", "चांगली", "आहेस", ".")
  assert tokenize("मी घरी जातो।") == ("मी", "घरी", "जातो", "।")
  # The trap: vowel signs and the virama are not alphanumeric.
  assert not "ा".isalnum() and not "्".isalnum()
  assert "त्याच्याकडे" in tokenize("त्याच्याकडे सायकल आहे.")


def test_read_two_and_three_columns(corpus_file):
  assert read_parallel(corpus_file) == tuple(PAIRS)


def test_read_skips_blank_lines_crlf_and_bom(tmp_path):
  path = tmp_path / "crlf.txt"
  path.write_bytes("\ufeffGo.\tजा.\r\n\r\n   \nRun!\tपळ!\r\n".encode("utf-8"))
  assert read_parallel(path) == (("Go.", "जा."), ("Run!", "पळ!"))


def test_bad_line_error_names_line_number(tmp_path):
  path = write_lines(tmp_path / "bad.txt", ["Go.\tजा.", "", "no tab here", "Run!\tपळ!"])
  with pytest.raises(ValueError, match=r"bad\.txt:3:"):
    read_parallel(path)
  path = write_lines(tmp_path / "empty_side.txt", ["Go.\tजा.", "Run!\t  "])
  with pytest.raises(ValueError, match=":2:"):
    read_parallel(path)


def test_bad_line_skip_warns_with_line_numbers(tmp_path):
  path = write_lines(tmp_path / "bad.txt", ["Go.\tजा.", "oops", "Run!\tपळ!", "\tx", "oops"])
  with pytest.warns(UserWarning, match=r"skipped 3 line.*lines 2, 4, 5"):
    pairs = read_parallel(path, on_bad_line="skip")
  assert pairs == (("Go.", "जा."), ("Run!", "पळ!"))
  with pytest.raises(ValueError, match="on_bad_line"):
    read_parallel(path, on_bad_line="ignore")


def test_missing_empty_and_non_utf8_files(tmp_path):
  missing = tmp_path / "nope.txt"
  with pytest.raises(FileNotFoundError, match="nope.txt"):
    read_parallel(missing)
  empty = tmp_path / "empty.txt"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match="empty"):
    read_parallel(empty)
  blank = write_lines(tmp_path / "blank.txt", ["", "  "])
  with pytest.raises(ValueError, match="empty"):
    read_parallel(blank)
  latin = tmp_path / "latin1.txt"
  latin.write_bytes(b"Go.\tja.\nCaf\xe9\tkaphe\n")
  with pytest.raises(ValueError, match=r"latin1\.txt:2: not valid UTF-8"):
    read_parallel(latin)
  only_bad = write_lines(tmp_path / "only_bad.txt", ["no tab"])
  with pytest.warns(UserWarning), pytest.raises(ValueError, match="no 'source<TAB>target'"):
    read_parallel(only_bad, on_bad_line="skip")


def test_corpus_task_splits(corpus_file):
  data = build_task(corpus_config(corpus_file))
  assert (len(data.train), len(data.valid), len(data.test)) == (len(PAIRS) - 7, 4, 3)
  assert data.is_text and not data.has_alignment
  everything = sorted(e.src + ("|",) + e.tgt for e in data.train + data.valid + data.test)
  assert everything == sorted(tokenize(en) + ("|",) + tokenize(mr) for en, mr in PAIRS)
  assert build_task(corpus_config(corpus_file)) == data
  assert build_task(corpus_config(corpus_file, seed=3)).train != data.train


def test_corpus_vocab_from_train_only_with_min_freq(corpus_file):
  for min_freq in (1, 4):
    data = build_task(corpus_config(corpus_file, min_freq=min_freq))
    for vocab, side in ((data.src_vocab, "src"), (data.tgt_vocab, "tgt")):
      counts = collections.Counter(t for e in data.train for t in getattr(e, side))
      assert set(vocab.tokens) - set(SPECIALS) == {t for t, n in counts.items() if n >= min_freq}
  # Rare words become <unk>.
  data = build_task(corpus_config(corpus_file, min_freq=4))
  assert "<unk>" in {t for e in data.train for t in data.src_vocab.decode(
      data.src_vocab.encode(e.src))}


def test_corpus_length_filter_and_reverse(corpus_file):
  data = build_task(corpus_config(corpus_file, max_src_len=3, max_tgt_len=None))
  kept = data.train + data.valid + data.test
  assert all(len(e.src) <= 3 for e in kept)
  assert len(kept) == sum(len(tokenize(en)) <= 3 for en, _ in PAIRS)
  flipped = build_task(corpus_config(corpus_file, reverse=True))
  assert {e.src for e in flipped.train + flipped.valid + flipped.test} == {
      tokenize(mr) for _, mr in PAIRS}


def test_corpus_task_errors(corpus_file):
  with pytest.raises(ValueError, match="path"):
    build_task(corpus_config(""))
  with pytest.raises(ValueError, match="no training pairs"):
    build_task(corpus_config(corpus_file, num_valid=20, num_test=10))


@pytest.fixture(scope="module")
def real_corpus():
  if not MAR_TXT.is_file():
    pytest.skip(f"real corpus not found at {MAR_TXT} (the shared/ folder beside the checkout)")
  config = corpus_config(MAR_TXT, num_valid=500, num_test=700, max_src_len=None,
                         max_tgt_len=None)
  return build_task(config)


def test_real_file_loads_with_sizes_asked(real_corpus):
  data = real_corpus
  assert (len(data.valid), len(data.test)) == (500, 700)
  assert len(data.train) == MAR_LINES - 1200
  assert data.train[0].src and data.train[0].tgt


def test_real_file_marathi_tokens_keep_combining_marks(real_corpus):
  tokens = {t for e in real_corpus.train for t in e.tgt}
  # Punctuation (including the danda) is always split off into one-character tokens.
  assert not [t for t in tokens
              if len(t) > 1 and any(unicodedata.category(c).startswith("P") for c in t)]
  for token in tokens:
    # No token starts with (so none consists only of) a combining mark such as "ा" or "्".
    assert not unicodedata.category(token[0]).startswith("M"), token
  assert {"आहे", "मला", "तू"} <= tokens
