"""configs/kjv_rv1909.py and the KJV / Reina-Valera 1909 folder (line-aligned gzip files).

The corpus stays outside the repository (../shared/data/kjv-rv1909 beside the checkout): tests
that read it skip with the reason when it is absent. A slice of it (tests/data/kjv_rv1909_slice,
69 verse pairs, its README says which) keeps the loader and the entry point tested on a fresh
clone.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from attnlab.config import validate
from attnlab.data import build_task
from attnlab.data.text import MosesTokenizer
from attnlab.defaults import load_config_file

REPO = pathlib.Path(__file__).resolve().parents[2]
KJV = REPO.parent / "shared" / "data" / "kjv-rv1909"
SLICE = REPO / "tests" / "data" / "kjv_rv1909_slice"
needs_data = pytest.mark.skipif(
    not (KJV / "train.en.gz").is_file(),
    reason=f"the KJV / Reina-Valera 1909 corpus is not at {KJV} (it stays outside the "
           "repository; tests/data/kjv_rv1909_slice stands in for it)")

kjv = load_config_file(REPO / "configs" / "kjv_rv1909.py")


def entry_point_env():
  return {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
          "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}


def run_main(*args, timeout=600):
  return subprocess.run([sys.executable, "-m", "attnlab.main", *args], capture_output=True,
                        text=True, env=entry_point_env(), cwd=REPO, timeout=timeout)


def test_config_variants():
  config = kjv.get_config()
  assert os.path.normpath(config.data.path) == os.path.normpath(KJV)
  assert (config.data.src_lang, config.data.tgt_lang) == ("en", "es")
  assert tuple(config.data.splits) == ("train", "val", "test")
  # Word-level tokens: a source's length is its number of words, so the length buckets and the
  # training caps count words, not subword pieces.
  assert config.data.tokenizer == "moses" and config.data.lowercase
  assert config.data.min_freq == 2 and config.data.max_vocab_size == 8000
  assert tuple(config.eval.length_boundaries) == (10, 20, 30, 40, 50, 60)
  assert tuple(config.eval.test_beam_sizes) == (5,)
  assert (config.model.decoder, config.model.attention) == ("bahdanau", "additive")
  assert config.train.best_metric == "bleu"
  es_en = kjv.get_config("src=es,tgt=en")
  assert (es_en.data.src_lang, es_en.data.tgt_lang) == ("es", "en")
  quick = kjv.get_config("quick,attention=false")
  assert quick.model.decoder == "none"
  assert quick.train.num_steps <= 10 and quick.eval.max_examples == 30
  with pytest.raises(ValueError, match="unknown config argument 'big'"):
    kjv.get_config("big")
  with pytest.raises(ValueError, match="src and tgt must be en and es"):
    kjv.get_config("src=en,tgt=en")
  with pytest.raises(ValueError, match="src and tgt must be en and es"):
    kjv.get_config("src=de")


def test_slice_loads_as_the_corpus_does():
  config = kjv.get_config()
  config.data.path = str(SLICE)
  task = build_task(config.data)
  assert (len(task.train), len(task.valid), len(task.test)) == (47, 10, 12)
  assert task.src_tokenizer == MosesTokenizer("en") and task.tgt_tokenizer == MosesTokenizer("es")
  # Genesis 1 is a test chapter: the corpus is split by chapter.
  assert task.test[0].tgt[:4] == ("en", "el", "principio", "crió")
  # One token a word or punctuation mark: the lengths that the buckets count.
  assert task.test[0].src == ("in", "the", "beginning", "god", "created", "the", "heaven",
                              "and", "the", "earth", ".")
  assert max(len(e.src) for e in task.test) > 60  # the slice reaches the last bucket
  reverse = kjv.get_config("src=es,tgt=en")
  reverse.data.path = str(SLICE)
  reversed_task = build_task(reverse.data)
  assert reversed_task.test[0].src == task.test[0].tgt
  assert reversed_task.test[0].tgt == task.test[0].src


def test_missing_corpus_is_one_line_and_exit_2(tmp_path):
  proc = run_main("--config", f"{REPO / 'configs/kjv_rv1909.py'}:quick", "--workdir",
                  str(tmp_path / "run"), f"--config.data.path={tmp_path / 'nowhere'}",
                  timeout=300)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("error: config.data.path: no such file or folder")
  assert "Traceback" not in proc.stderr
  config = kjv.get_config("quick")
  config.data.path = str(SLICE)
  validate(config)


@pytest.mark.slow
def test_quick_config_trains_and_evaluates_on_the_slice(tmp_path):
  proc = run_main("--config", f"{REPO / 'configs/kjv_rv1909.py'}:quick", "--workdir",
                  str(tmp_path), f"--config.data.path={SLICE}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 6
  test = summary["test"]
  assert test["num_examples"] == 12 and "bleu" in test
  assert set(test["bleu_by_length"]) <= {"1-10", "11-20", "21-30", "31-40", "41-50", "51-60",
                                         ">60"}
  assert ">60" in test["bleu_by_length"]


@pytest.fixture(scope="module")
def task():
  return build_task(kjv.get_config().data)


@needs_data
def test_the_corpus_splits_and_vocabularies(task):
  # Every held-out pair; training pairs of at most 80 words a side (30 of 26,436 dropped).
  assert (len(task.valid), len(task.test)) == (1487, 3011)
  assert 26350 < len(task.train) < 26436
  # The 8,000 most frequent words seen at least twice in train (specials included).
  assert len(task.src_vocab) == len(task.tgt_vocab) == 8000
  lengths = [len(e.src) for e in task.test]
  assert sum(n > 30 for n in lengths) == 1281 and sum(n > 50 for n in lengths) == 217
