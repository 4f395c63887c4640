"""configs/multi30k.py and the Multi30k folder (official splits, gzip, line-aligned files).

The data stays outside the repository (../shared/data/multi30k beside the checkout): tests that
read it skip with the reason when it is absent.
"""

import importlib.util
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

REPO = pathlib.Path(__file__).resolve().parents[2]
MULTI30K = REPO.parent / "shared" / "data" / "multi30k"
needs_data = pytest.mark.skipif(
    not (MULTI30K / "train.de.gz").is_file(),
    reason=f"Multi30k not found at {MULTI30K} (README, Data: clone github.com/multi30k/dataset)")


def load_config_module():
  spec = importlib.util.spec_from_file_location("multi30k_config", REPO / "configs" / "multi30k.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


multi30k = load_config_module()


def test_config_variants():
  config = multi30k.get_config()
  assert os.path.normpath(config.data.path) == os.path.normpath(MULTI30K)
  assert (config.data.src_lang, config.data.tgt_lang) == ("de", "en")
  assert tuple(config.data.splits) == ("train", "val", "test_2016_flickr")
  assert config.data.tokenizer == "moses" and config.data.lowercase and config.data.min_freq == 2
  assert (config.model.decoder, config.model.attention, config.model.cell) == (
      "bahdanau", "additive", "gru")
  assert config.model.bidirectional and config.train.best_metric == "bleu"
  assert 64 <= config.batching.batch_size <= 128 and config.model.hidden_dim <= 256
  none = multi30k.get_config("attention=false")
  assert (none.model.decoder, none.model.bridge) == ("none", "dense")
  en_de = multi30k.get_config("quick,src=en,tgt=de,attention=false")
  assert (en_de.data.src_lang, en_de.data.tgt_lang, en_de.model.decoder) == ("en", "de", "none")
  assert en_de.train.num_steps <= 10 and en_de.eval.max_examples == 30
  with pytest.raises(ValueError, match="unknown config argument 'big'"):
    multi30k.get_config("big")
  with pytest.raises(ValueError, match="src and tgt must be two of"):
    multi30k.get_config("src=en,tgt=en")


def test_config_validates_a_folder_path(tmp_path):
  config = multi30k.get_config("quick")
  config.data.path = str(tmp_path)
  validate(config)  # a folder is a valid data.path
  config.data.path = str(tmp_path / "nowhere")
  with pytest.raises(ValueError, match="config.data.path: no such file or folder"):
    validate(config)


@pytest.fixture(scope="module")
def task():
  return build_task(multi30k.get_config().data)


@needs_data
def test_official_splits_as_published(task):
  assert (len(task.train), len(task.valid), len(task.test)) == (29000, 1014, 1000)
  assert task.src_tokenizer == MosesTokenizer("de") and task.tgt_tokenizer == MosesTokenizer("en")
  assert task.test[0].src == ("ein", "mann", "mit", "einem", "orangefarbenen", "hut", ",",
                              "der", "etwas", "anstarrt", ".")
  assert task.tgt_tokenizer.detokenize(task.test[0].tgt) == (
      "a man in an orange hat starring at something.")
  # Words seen at least twice in train: close to the 7,853 / 5,893 types of the widely used
  # spaCy-tokenized setup.
  assert 7000 < len(task.src_vocab) < 8500 and 5000 < len(task.tgt_vocab) < 6500


@needs_data
@pytest.mark.slow
def test_quick_config_runs_through_main(tmp_path):
  env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
         "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}
  proc = subprocess.run(
      [sys.executable, "-m", "attnlab.main", "--config", f"{REPO / 'configs/multi30k.py'}:quick",
       "--workdir", str(tmp_path)], capture_output=True, text=True, env=env, cwd=REPO,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 6
  assert summary["test"]["num_examples"] == 30 and "bleu" in summary["test"]
