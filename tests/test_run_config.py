"""attnlab.run_config: a run's config.json read back with today's keys (``upgrade_config``).

The records under tests/golden/old_records/ are what older attnlab versions wrote as a run's
config.json, made by those versions' own code (``git archive <commit>``, then
``configs/<name>.py:quick``'s ``get_config().to_dict()`` written as their training loop wrote
it): ``date`` and ``mar_eng`` from the first commit (4441508), ``copy`` from 7a3f192. The
corpus record's ``data.path`` (a path of the machine that wrote it) reads ``CORPUS``.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import ml_collections
import pytest

from attnlab import run_config, run_record
from attnlab.config import ConfigError, build_model, validate
from attnlab.defaults import base_config

REPO = pathlib.Path(__file__).resolve().parents[1]
OLD_RECORDS = sorted((REPO / "tests" / "golden" / "old_records").glob("*.json"))
# Every config.json committed under docs/ (a sweep root's trials, a run's workdir).
DOCS_RECORDS = sorted((REPO / "docs").rglob("config.json"))
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
       "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}


def flat_keys(tree: dict, prefix: str = "") -> set[str]:
  keys = set()
  for key, value in tree.items():
    keys |= flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
  return keys


def read_record(path: pathlib.Path, corpus: pathlib.Path) -> dict:
  record = json.loads(path.read_text())
  if record["data"].get("path") == "CORPUS":
    record["data"]["path"] = str(corpus)
  return record


@pytest.fixture
def corpus(tmp_path):
  path = tmp_path / "pairs.txt"
  path.write_text("".join(f"I see {i} cats.\tJe vois {i} chats.\n" for i in range(80)),
                  encoding="utf-8")
  return path


@pytest.mark.parametrize("path", OLD_RECORDS, ids=lambda p: p.stem)
def test_an_old_record_gets_every_key_of_today_and_builds_its_model(path, corpus):
  record = read_record(path, corpus)
  task = record["data"]["task"]
  today = flat_keys(base_config(task).to_dict())
  assert today - flat_keys(record), "the old record already has every key"
  untouched = json.loads(json.dumps(record))
  upgraded = run_config.upgrade_config(record)
  assert record == untouched  # the record itself is left as it was
  assert today <= flat_keys(upgraded)
  assert run_config.upgrade_config(upgraded) == upgraded  # idempotent
  assert run_config.upgrade_config(json.loads(json.dumps(upgraded))) == upgraded
  for key in flat_keys(record):  # what the record says stays said
    section, *rest = key.split(".")
    old, new = record[section], upgraded[section]
    for part in rest:
      old, new = old[part], new[part]
    assert new == old, key
  config = run_config.from_json(record)
  validate(config)
  model = build_model(config, src_vocab_size=12, tgt_vocab_size=14, max_src_len=9)
  assert model.options.max_src_len == 9 and model.options.attention_dim == 0


def test_an_old_corpus_record_keeps_the_tokenizer_and_lengths_it_was_trained_with(corpus):
  record = read_record(REPO / "tests/golden/old_records/mar_eng_4441508.json", corpus)
  data = run_config.upgrade_config(record)["data"]
  # Before the options: punctuation tokens, no cap on held-out lengths (today: moses, 400).
  assert data["tokenizer"] == "punctuation" and data["length_limit"] is None
  assert data["splits"] == ["train", "valid", "test"] and data["spm_model_type"] == "unigram"


def test_nulls_of_an_older_encoding_become_todays():
  record = base_config("date").to_dict()
  record["model"]["attention_dim"] = record["model"]["max_src_len"] = None
  record["eval"]["length_boundaries"] = None
  upgraded = run_config.upgrade_config(record)
  assert upgraded["model"]["attention_dim"] == upgraded["model"]["max_src_len"] == 0
  assert upgraded["eval"]["length_boundaries"] == []
  # A null that means something today is kept (the corpus task's "no cap").
  corpus = base_config("corpus").to_dict()
  corpus["data"]["max_src_len"] = None
  assert run_config.upgrade_config(corpus)["data"]["max_src_len"] is None


def test_a_plug_ins_keys_are_kept():
  record = base_config("date").to_dict()
  record["model"]["my_scale"] = 2.0  # an extra option of a score registered outside attnlab
  record["my_section"] = {"a": [1, 2]}
  upgraded = run_config.upgrade_config(record)
  assert upgraded["model"]["my_scale"] == 2.0 and upgraded["my_section"] == {"a": [1, 2]}
  assert run_config.from_json(record).model.my_scale == 2.0


def test_a_task_not_registered_here_gets_the_shared_data_fields():
  record = json.loads((REPO / "tests/golden/old_records/date_4441508.json").read_text())
  record["data"] = {"task": "my_task", "seed": 3, "my_field": 1}
  data = run_config.upgrade_config(record)["data"]
  assert data == {"task": "my_task", "seed": 3, "train_max_src_len": 0, "my_field": 1}


def test_from_json_gives_tuples_where_configs_hold_tuples():
  config = run_config.from_json(json.loads(json.dumps(base_config("corpus").to_dict())))
  assert config.imports == () and config.eval.test_beam_sizes == ()
  assert config.batching.bucket_boundaries == () and config.data.splits == (
      "train", "valid", "test")


def test_a_record_that_is_not_an_object_is_a_record_error():
  with pytest.raises(run_record.RecordError, match="one object, got list"):
    run_config.upgrade_config([1, 2])


def test_validate_names_a_key_a_config_lacks():
  values = base_config("date").to_dict()
  del values["train"]["grad_accum_steps"]
  with pytest.raises(ConfigError, match="config.train.grad_accum_steps: is missing"):
    validate(ml_collections.ConfigDict(values))
  validate(run_config.from_json(values))


@pytest.mark.parametrize("path", DOCS_RECORDS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_record_under_docs_upgrades_and_validates(path):
  config = run_config.get_config(str(path.parent))
  assert flat_keys(base_config(config.data.task).to_dict()) <= flat_keys(config.to_dict())
  if config.data.task != "corpus" or os.path.exists(config.data.path):
    validate(config)


def run_main(*args):
  proc = subprocess.run([sys.executable, "-m", "attnlab.main", *args], capture_output=True,
                        text=True, env=ENV, cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr
  return proc.stdout


def pruned(tree: dict, shape: dict) -> dict:
  """``tree`` with only the keys ``shape`` has (nested)."""
  return {k: pruned(v, shape[k]) if isinstance(v, dict) else v
          for k, v in tree.items() if k in shape}


@pytest.mark.slow
def test_eval_and_decode_of_a_workdir_whose_config_json_is_old(tmp_path):
  """A run trained today, its config.json cut to the oldest record's keys: eval and decode
  from --workdir alone give what they gave with the whole file."""
  workdir = tmp_path / "run"
  run_main("--config", f"{REPO / 'configs' / 'date.py'}:quick", "--workdir", str(workdir))
  evaluate = ("--workdir", str(workdir), "--mode=eval", "--split=valid")
  whole = json.loads(run_main(*evaluate).splitlines()[-1])
  path = workdir / "config.json"
  oldest = json.loads((REPO / "tests/golden/old_records/date_4441508.json").read_text())
  config = json.loads(path.read_text())
  old = pruned(config, oldest)
  assert flat_keys(config) - flat_keys(old) >= {"imports", "num_seeds", "train.grad_accum_steps",
                                                "batching.max_tokens", "model.dtype"}
  path.write_text(json.dumps(old, indent=2))
  assert json.loads(run_main(*evaluate).splitlines()[-1]) == whole
  inputs = tmp_path / "in.txt"
  inputs.write_text("98-03-23\n")
  # --config.* overrides with --workdir alone: applied to the upgraded config (run_config).
  decoded = run_main("--workdir", str(workdir), "--mode=decode", f"--input={inputs}",
                     "--config.eval.test_beam_sizes=(2,)")
  assert len(decoded.splitlines()) == 1 and decoded.strip()
  assert json.loads(path.read_text()) == old  # the record is read, never rewritten
