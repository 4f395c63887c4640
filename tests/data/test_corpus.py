"""Tests for attnlab.data.corpus: file formats, bad input and the `corpus` task."""

import collections
import gzip
import hashlib
import importlib.util
import re
import unicodedata
from pathlib import Path

import pytest

from attnlab import run_config
from attnlab.config import validate
from attnlab.data.corpus import read_aligned, read_lines, read_parallel, split_file, tokenize
from attnlab.data.tasks import build_task, default_data_config
from attnlab.data.text import MosesTokenizer, PunctuationTokenizer, SentencePieceTokenizer
from attnlab.data.vocab import SPECIALS

REPO = Path(__file__).resolve().parents[2]
MAR_GZ = REPO / "data" / "mar-eng" / "mar.txt.gz"
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


def write_lines(path, lines, encoding="utf-8", compress=False):
  data = "\n".join(lines).encode(encoding) + b"\n"
  path.write_bytes(gzip.compress(data) if compress else data)
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


def moses_en_mr(text_pairs):
  en, mr = MosesTokenizer("en"), MosesTokenizer("")
  return sorted(en.tokenize(a) + ("|",) + mr.tokenize(b) for a, b in text_pairs)


# ---------------------------------------------------------------------- tab-separated files


def test_read_two_and_three_columns(corpus_file):
  assert read_parallel(corpus_file) == tuple(PAIRS)


def test_read_skips_blank_lines_crlf_and_bom(tmp_path):
  path = tmp_path / "crlf.txt"
  path.write_bytes("\ufeffGo.\tजा.\r\n\r\n   \nRun!\tपळ!\r\n".encode("utf-8"))
  assert read_parallel(path) == (("Go.", "जा."), ("Run!", "पळ!"))


def test_read_gzip_whatever_its_name(tmp_path, corpus_file):
  for name in ("pairs.txt.gz", "pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(corpus_file.read_bytes()))
    assert read_parallel(path) == tuple(PAIRS)
  crlf_bom = tmp_path / "crlf.gz"
  crlf_bom.write_bytes(gzip.compress("\ufeffGo.\tजा.\r\nRun!\tपळ!\r\n".encode("utf-8")))
  assert read_parallel(crlf_bom) == (("Go.", "जा."), ("Run!", "पळ!"))


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
  with pytest.raises(ValueError, match=r"empty: .*empty\.txt"):
    read_parallel(empty)
  blank = write_lines(tmp_path / "blank.txt", ["", "  "])
  with pytest.raises(ValueError, match="empty"):
    read_parallel(blank)
  empty_gz = tmp_path / "empty.gz"
  empty_gz.write_bytes(gzip.compress(b""))
  with pytest.raises(ValueError, match=r"empty: .*empty\.gz"):
    read_parallel(empty_gz)
  latin = tmp_path / "latin1.txt"
  latin.write_bytes(b"Go.\tja.\nCaf\xe9\tkaphe\n")
  with pytest.raises(ValueError, match=r"latin1\.txt:2: not valid UTF-8 .* at byte 3 of the line"):
    read_parallel(latin)
  latin_gz = tmp_path / "latin1.gz"
  latin_gz.write_bytes(gzip.compress(b"Go.\tja.\n\nCaf\xe9\tkaphe\n"))
  with pytest.raises(ValueError, match=r"latin1\.gz:3: not valid UTF-8"):
    read_parallel(latin_gz)
  only_bad = write_lines(tmp_path / "only_bad.txt", ["no tab"])
  with pytest.warns(UserWarning), pytest.raises(ValueError, match="no 'source<TAB>target'"):
    read_parallel(only_bad, on_bad_line="skip")


def test_broken_gzip_is_a_clear_error(tmp_path):
  path = tmp_path / "cut.txt.gz"
  path.write_bytes(gzip.compress("Go.\tजा.\n".encode() * 100)[:30])
  with pytest.raises(ValueError, match=r"cut\.txt\.gz: not a valid gzip file"):
    read_parallel(path)


def test_read_lines_keeps_line_numbers(tmp_path):
  path = tmp_path / "lines.txt"
  path.write_bytes(b"\xef\xbb\xbfa\r\n\r\nb\nc")
  assert read_lines(path) == ("a", "", "b", "c")


# ---------------------------------------------------------------------- line-aligned files


def write_pair(folder, stem, src_lines, tgt_lines, langs=("de", "en"), compress=False):
  suffix = ".gz" if compress else ""
  return (write_lines(folder / f"{stem}.{langs[0]}{suffix}", src_lines, compress=compress),
          write_lines(folder / f"{stem}.{langs[1]}{suffix}", tgt_lines, compress=compress))


def test_read_aligned_plain_gzip_crlf_bom(tmp_path):
  src, tgt = write_pair(tmp_path, "a", ["Ein Hund.", "Zwei Katzen."], ["A dog.", "Two cats."])
  assert read_aligned(src, tgt) == (("Ein Hund.", "A dog."), ("Zwei Katzen.", "Two cats."))
  src, tgt = write_pair(tmp_path, "b", ["Ein Hund."], ["A dog."], compress=True)
  assert read_aligned(src, tgt) == (("Ein Hund.", "A dog."),)
  src.write_bytes("\ufeffEin Hund.\r\nZwei Katzen.\r\n".encode())
  tgt.write_bytes("A dog.\nTwo cats.".encode())  # no final newline
  assert read_aligned(src, tgt) == (("Ein Hund.", "A dog."), ("Zwei Katzen.", "Two cats."))


def test_read_aligned_blank_lines(tmp_path):
  # Blank in both: skipped; blank lines at the end of one file: ignored.
  src, tgt = write_pair(tmp_path, "a", ["x", "", "y", "", ""], ["X", "  ", "Y"])
  assert read_aligned(src, tgt) == (("x", "X"), ("y", "Y"))
  # Blank in one only: an error naming the blank file and line, or skipped with a warning.
  src, tgt = write_pair(tmp_path, "b", ["x", "y", "z"], ["X", "", "Z"])
  with pytest.raises(ValueError, match=r"b\.en:2: blank line, but line 2 of .*b\.de is not"):
    read_aligned(src, tgt)
  with pytest.warns(UserWarning, match=r"skipped 1 line.*blank on one side only: lines 2"):
    assert read_aligned(src, tgt, on_bad_line="skip") == (("x", "X"), ("z", "Z"))


def test_read_aligned_bad_input(tmp_path):
  src, tgt = write_pair(tmp_path, "count", ["x", "y", "z"], ["X", "Y"])
  with pytest.raises(ValueError,
                     match=r"count\.de has 3 lines but .*count\.en has 2: line-aligned"):
    read_aligned(src, tgt)
  with pytest.raises(FileNotFoundError, match=r"missing\.en"):
    read_aligned(src, tmp_path / "missing.en")
  empty = tmp_path / "empty.en"
  empty.write_bytes(b"")
  with pytest.raises(ValueError, match=r"empty: .*empty\.en"):
    read_aligned(src, empty)
  latin = tmp_path / "latin.en"
  latin.write_bytes(b"X\nY\nCaf\xe9\n")
  with pytest.raises(ValueError, match=r"latin\.en:3: not valid UTF-8"):
    read_aligned(src, latin)


def test_split_file_prefers_plain_then_gzip_and_lists_the_folder(tmp_path):
  write_pair(tmp_path, "train", ["x"], ["X"], compress=True)
  assert split_file(tmp_path, "train", "de") == str(tmp_path / "train.de.gz")
  write_lines(tmp_path / "train.de", ["x"])
  assert split_file(tmp_path, "train", "de") == str(tmp_path / "train.de")
  with pytest.raises(FileNotFoundError,
                     match=r"no train\.fr or train\.fr\.gz in .* \(it holds: train\.de, "
                           r"train\.de\.gz, train\.en\.gz\)"):
    split_file(tmp_path, "train", "fr")


# ---------------------------------------------------------------------- the corpus task


def test_corpus_task_splits(corpus_file):
  data = build_task(corpus_config(corpus_file))
  assert (len(data.train), len(data.valid), len(data.test)) == (len(PAIRS) - 7, 4, 3)
  assert data.is_text and not data.has_alignment
  everything = sorted(e.src + ("|",) + e.tgt for e in data.train + data.valid + data.test)
  assert everything == moses_en_mr(PAIRS)
  assert build_task(corpus_config(corpus_file)) == data
  assert build_task(corpus_config(corpus_file, seed=3)).train != data.train


def test_corpus_default_tokenizer_is_moses_lowercased(corpus_file):
  defaults = default_data_config("corpus")
  assert (defaults.tokenizer, defaults.lowercase) == ("moses", True)
  data = build_task(corpus_config(corpus_file, src_lang="en", tgt_lang="mr"))
  assert data.src_tokenizer == MosesTokenizer("en", lowercase=True)
  assert data.tgt_tokenizer == MosesTokenizer("mr", lowercase=True)
  assert ("you", "'re", "very", "nice", ".") in {e.src for e in data.train + data.valid
                                                  + data.test}
  assert data.src_tokenizer.tokenize("Don't go, Tom!") == ("don", "'t", "go", ",", "tom", "!")
  cased = build_task(corpus_config(corpus_file, lowercase=False))
  assert ("Go", ".") in {e.src for e in cased.train + cased.valid + cased.test}


def test_corpus_punctuation_tokenizer_keeps_the_old_tokens(corpus_file):
  data = build_task(corpus_config(corpus_file, tokenizer="punctuation"))
  assert data.src_tokenizer == data.tgt_tokenizer == PunctuationTokenizer(lowercase=True)
  everything = sorted(e.src + ("|",) + e.tgt for e in data.train + data.valid + data.test)
  assert everything == sorted(tokenize(en) + ("|",) + tokenize(mr) for en, mr in PAIRS)
  # A run's config.json from before data.tokenizer existed rebuilds that run's tokens.
  old = corpus_config(corpus_file).to_dict()
  for field in ("tokenizer", "src_lang", "tgt_lang", "splits", "vocab_size"):
    del old[field]
  assert build_task(run_config.from_json({"data": old}).data) == data


def test_corpus_sentencepiece_learns_from_the_train_split_only(tmp_path):
  train = [f"the {w} sees a cat ." for w in ("dog", "bird", "man", "woman", "child")] * 6
  write_pair(tmp_path, "train", train, [t.upper() for t in train], langs=("xx", "yy"))
  write_pair(tmp_path, "valid", ["the dog sees a cat ."], ["THE DOG SEES A CAT ."],
             langs=("xx", "yy"))
  # A test word the train split never has: no piece of the model spells it whole.
  write_pair(tmp_path, "test", ["zebrafish !"], ["ZEBRAFISH !"], langs=("xx", "yy"))
  config = corpus_config(tmp_path, src_lang="xx", tgt_lang="yy", tokenizer="sentencepiece",
                         vocab_size=40)
  data = build_task(config)
  assert isinstance(data.src_tokenizer, SentencePieceTokenizer)
  assert data.src_tokenizer.lowercase and data.tgt_tokenizer.lowercase
  assert "▁zebrafish" not in data.test[0].src and len(data.test[0].src) > 2
  assert data.tgt_tokenizer.detokenize(data.test[0].tgt) == "zebrafish !"
  assert {t for e in data.train for t in e.src} <= set(data.src_vocab.tokens)
  assert build_task(config) == data  # same data, same model


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


def test_length_filter_applies_to_train_only_and_reverse(corpus_file):
  data = build_task(corpus_config(corpus_file, max_src_len=3, max_tgt_len=None))
  assert all(len(e.src) <= 3 for e in data.train)
  assert (len(data.valid), len(data.test)) == (4, 3)  # held-out pairs keep every length
  short = sum(len(MosesTokenizer().tokenize(en)) <= 3 for en, _ in PAIRS)
  assert len(data.train) == short - sum(len(e.src) <= 3 for e in data.valid + data.test)
  flipped = build_task(corpus_config(corpus_file, reverse=True, tokenizer="punctuation"))
  assert {e.src for e in flipped.train + flipped.valid + flipped.test} == {
      tokenize(mr) for _, mr in PAIRS}


def test_corpus_task_errors(corpus_file):
  with pytest.raises(ValueError, match="path"):
    build_task(corpus_config(""))
  with pytest.raises(ValueError, match="leaves no training pairs"):
    build_task(corpus_config(corpus_file, num_valid=20, num_test=10))
  with pytest.raises(ValueError, match="no training pairs left: none of the 23"):
    build_task(corpus_config(corpus_file, max_src_len=0))
  with pytest.raises(ValueError, match=r"unknown data.tokenizer 'spacy'; valid: chars, moses"):
    build_task(corpus_config(corpus_file, tokenizer="spacy"))


# ---------------------------------------------------------------------- a folder with splits


def de(i):
  return f"Ein {'sehr ' * (i % 3)}großer Hund {i} rennt."  # 6 to 8 Moses tokens


def en(i):
  return f"A {'very ' * (i % 3)}big dog {i} runs."


def fr(i):
  return f"Un {'très ' * (i % 3)}grand chien {i} court."


@pytest.fixture
def split_folder(tmp_path):
  """A Multi30k-like folder: train / val / test_2016 in de, en (gzip) and fr (plain)."""
  for stem, lines in (("train", range(0, 30)), ("val", range(30, 35)),
                      ("test_2016", range(35, 40))):
    write_pair(tmp_path, stem, [de(i) for i in lines], [en(i) for i in lines], compress=True)
    write_lines(tmp_path / f"{stem}.fr", [fr(i) for i in lines])
  return tmp_path


def folder_config(folder, **overrides):
  fields = {"src_lang": "de", "tgt_lang": "en", "min_freq": 1,
            "splits": ("train", "val", "test_2016")}
  return corpus_config(folder, **{**fields, **overrides})


def test_folder_splits_are_used_as_published(split_folder):
  data = build_task(folder_config(split_folder))
  assert (len(data.train), len(data.valid), len(data.test)) == (30, 5, 5)
  moses_de, moses_en = MosesTokenizer("de"), MosesTokenizer("en")
  # The official test set in file order, nothing re-split or shuffled.
  assert [e.src for e in data.test] == [moses_de.tokenize(de(i)) for i in range(35, 40)]
  assert [e.tgt for e in data.train] == [moses_en.tokenize(en(i)) for i in range(30)]
  assert data.src_tokenizer == moses_de and data.tgt_tokenizer == moses_en
  assert "35" not in data.src_vocab  # vocabularies from train only
  # Either direction, any language pair of the folder; plain and gzip files mix.
  fr_de = build_task(folder_config(split_folder, src_lang="fr", tgt_lang="de"))
  assert fr_de.test[0].src == ("un", "très", "très", "grand", "chien", "35", "court", ".")
  assert fr_de.test[0].tgt == data.test[0].src


def test_folder_length_filter_spares_valid_and_test(split_folder):
  data = build_task(folder_config(split_folder, max_src_len=7))
  assert [len(e.src) for e in data.train] == [6, 7] * 10
  assert (len(data.valid), len(data.test)) == (5, 5)
  assert max(len(e.src) for e in data.test) == 8


def test_length_limit_drops_long_training_pairs_and_skips_or_truncates_held_out(split_folder):
  # Moses tokens: i % 3 == 0 -> 6, 1 -> 7, 2 -> 8 (de and en alike).
  with pytest.warns(UserWarning) as caught:
    data = build_task(folder_config(split_folder, length_limit=7, max_src_len=None,
                                    max_tgt_len=None))
  said = sorted(str(w.message).split(": ", 1)[1] for w in caught)
  assert said == [  # each split once: counted, the policy named, the longest given
      "test: dropped 2 pair(s) over data.length_limit=7 tokens a side (the longest: 8)",
      "train: dropped 10 pair(s) over data.length_limit=7 tokens a side (the longest: 8)",
      "valid: dropped 1 pair(s) over data.length_limit=7 tokens a side (the longest: 8)"]
  assert (len(data.train), len(data.valid), len(data.test)) == (20, 4, 3)
  assert max(len(e.src) for e in data.train + data.valid + data.test) == 7
  with pytest.warns(UserWarning, match=r"test: truncated 2 pair\(s\) over data.length_limit=7"):
    cut = build_task(folder_config(split_folder, length_limit=7, on_long_held_out="truncate"))
  assert (len(cut.valid), len(cut.test)) == (5, 5)
  full = build_task(folder_config(split_folder)).test
  assert [(e.src, e.tgt) for e in cut.test] == [(e.src[:7], e.tgt[:7]) for e in full]
  assert build_task(folder_config(split_folder, length_limit=None)).test == build_task(
      folder_config(split_folder)).test  # under the limit: nothing said, nothing changed


@pytest.mark.parametrize("field,value,needle", [
    ("length_limit", 0, "data.length_limit must be an integer >= 1 or None"),
    ("on_long_held_out", "error", "data.on_long_held_out must be one of ('skip', 'truncate')"),
])
def test_length_limit_fields_are_checked(split_folder, field, value, needle):
  with pytest.raises(ValueError, match=re.escape(needle)):
    build_task(folder_config(split_folder, **{field: value}))


def test_a_huge_held_out_line_is_dropped_and_said_once_not_an_out_of_memory(tmp_path):
  """Issue 22: a 250,000-word test line sized every padded shape; training died with an
  out-of-memory error (raised where the train step is first waited on, training/cost.py)."""
  import json
  import sys
  sys.path.insert(0, str(REPO / "tests"))
  from test_main import CONFIGS, run_main
  folder = tmp_path / "corpus"
  folder.mkdir()
  for stem, lines in (("train", range(0, 40)), ("valid", range(40, 46)),
                      ("test", range(46, 52))):
    src, tgt = [de(i) for i in lines], [en(i) for i in lines]
    if stem == "test":
      src[2] = " ".join(["hund"] * 250_000)
    write_pair(folder, stem, src, tgt)
  proc = run_main("--config", f"{CONFIGS / 'multi30k.py'}:quick", "--workdir",
                  str(tmp_path / "w"), f"--config.data.path={folder}",
                  "--config.data.splits=('train', 'valid', 'test')", "--config.data.min_freq=1",
                  "--config.data.tokenizer=whitespace")
  said = "test: dropped 1 pair(s) over data.length_limit=400 tokens a side (the longest: 250000)"
  assert proc.stderr.count(said) == 1, proc.stderr
  summary = json.loads((tmp_path / "w" / "summary.json").read_text())
  assert summary["test"]["num_examples"] == 5
  assert json.loads((tmp_path / "w" / "run.json").read_text())["max_src_len"] <= 400


def test_folder_draws_a_split_without_file_from_train(split_folder):
  data = build_task(folder_config(split_folder, splits=("train", "", "test_2016"),
                                  num_valid=6))
  assert (len(data.train), len(data.valid), len(data.test)) == (24, 6, 5)
  assert not set(data.valid) & set(data.train)
  both = build_task(folder_config(split_folder, splits=("train", "", ""), num_valid=6,
                                  num_test=4))
  assert (len(both.train), len(both.valid), len(both.test)) == (20, 6, 4)


def test_folder_errors_name_the_file(split_folder):
  with pytest.raises(FileNotFoundError, match=r"no train\.es or train\.es\.gz in .*holds: test_"):
    build_task(folder_config(split_folder, tgt_lang="es"))
  with pytest.raises(FileNotFoundError, match=r"no dev\.de or dev\.de\.gz in "):
    build_task(folder_config(split_folder, splits=("train", "dev", "")))
  with pytest.raises(ValueError, match="data.src_lang and data.tgt_lang"):
    build_task(folder_config(split_folder, src_lang=""))
  with pytest.raises(ValueError, match="swap data.src_lang and data.tgt_lang"):
    build_task(folder_config(split_folder, reverse=True))
  for splits in (("train", "val"), ("", "val", "test_2016"), ("train", 1, "test")):
    with pytest.raises(ValueError, match="data.splits must be three file stems"):
      build_task(folder_config(split_folder, splits=splits))
  lines = gzip.decompress((split_folder / "val.de.gz").read_bytes()).decode().splitlines()
  write_lines(split_folder / "val.de.gz", lines[:-1], compress=True)
  with pytest.raises(ValueError, match=r"val\.de\.gz has 4 lines but .*val\.en\.gz has 5"):
    build_task(folder_config(split_folder))


# ---------------------------------------------------------------------- the shipped corpus


def test_shipped_corpus_matches_its_readme_checksum():
  readme = (MAR_GZ.parent / "README.md").read_text(encoding="utf-8")
  digest = re.search(r"sha256 of the uncompressed file:\*\*\s*`([0-9a-f]{64})`", readme)[1]
  assert hashlib.sha256(gzip.decompress(MAR_GZ.read_bytes())).hexdigest() == digest
  assert "CC-BY 2.0 FR" in readme and "Tatoeba contributors" in readme


def test_mar_eng_config_reads_the_shipped_corpus():
  spec = importlib.util.spec_from_file_location("mar_eng", REPO / "configs" / "mar_eng.py")
  mar_eng = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mar_eng)
  config = mar_eng.get_config("quick")
  assert Path(config.data.path) == MAR_GZ
  assert (config.data.src_lang, config.data.tgt_lang, config.data.tokenizer) == ("en", "mr",
                                                                                "moses")
  validate(config)


@pytest.fixture(scope="module")
def real_corpus():
  config = corpus_config(MAR_GZ, src_lang="en", tgt_lang="mr", num_valid=500, num_test=700,
                         max_src_len=None, max_tgt_len=None)
  return build_task(config)


def test_real_file_loads_with_sizes_asked(real_corpus):
  data = real_corpus
  assert (len(data.valid), len(data.test)) == (500, 700)
  assert len(data.train) == MAR_LINES - 1200
  assert data.train[0].src and data.train[0].tgt


def test_real_file_marathi_tokens_keep_combining_marks(real_corpus):
  tokens = {t for e in real_corpus.train for t in e.tgt}
  for token in tokens:
    # No token starts with (so none consists only of) a combining mark such as "ा" or "्",
    # nor is a lone zero-width joiner: "अ‍ॅलर्जी" (with U+200D) stays one word.
    assert not unicodedata.category(token[0]).startswith("M"), token
    assert token != "\u200d"
  assert {"आहे", "मला", "तू", "अ\u200dॅलर्जी"} <= tokens
  # Sentence-final punctuation, the danda too, is its own token.
  assert {e.tgt[-1] for e in real_corpus.train} >= {".", "?", "!"}
  assert "।" in tokens
