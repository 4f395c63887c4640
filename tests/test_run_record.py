"""attnlab.run_record: the one home of what a run and a sweep write."""

import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from attnlab import run_record


def test_json_is_strict_and_written_atomically(tmp_path):
  path = tmp_path / "summary.json"
  run_record.write_json(path, {"loss": float("nan"), "x": np.float32(0.5), "v": np.arange(2)})
  text = path.read_text()
  assert json.loads(text, parse_constant=pytest.fail) == {"loss": None, "x": 0.5, "v": [0, 1]}
  assert os.listdir(tmp_path) == ["summary.json"]  # no temporary file left
  assert run_record.read_json(path)["loss"] is None


def test_older_records_with_bare_nan_still_load(tmp_path):
  path = tmp_path / "sweep.json"
  path.write_text('{"wall_time_s": NaN}')  # what json.dumps wrote before the record was strict
  assert math.isnan(run_record.read_json(path)["wall_time_s"])


@pytest.mark.parametrize("content,needle", [(None, "cannot read"), ("{", "is damaged")])
def test_a_missing_or_damaged_file_is_one_line(tmp_path, content, needle):
  path = tmp_path / "config.json"
  if content is not None:
    path.write_text(content)
  with pytest.raises(run_record.RecordError, match=needle) as info:
    run_record.read_json(path)
  assert "\n" not in str(info.value) and str(path) in str(info.value)
  assert run_record.read_json_or_none(path) is None


def test_jsonl_round_trip_skips_torn_lines(tmp_path):
  path = tmp_path / "test_outcomes.jsonl"
  run_record.write_jsonl(path, [{"index": 0, "bleu": float("inf")}, {"index": 1}])
  assert run_record.read_jsonl(path) == [{"index": 0, "bleu": None}, {"index": 1}]
  path.write_bytes(path.read_bytes() + b'{"index": 2, "tor')
  assert len(run_record.read_jsonl(path)) == 2
  assert run_record.read_jsonl(tmp_path / "missing.jsonl") == []


def test_seed_folders_and_model_dirs(tmp_path):
  assert run_record.seed_folder(3) == "seed_3"
  assert run_record.seed_of_folder(tmp_path / "seed_3") == 3
  assert run_record.seed_of_folder(tmp_path / "seed_x") is None
  multi = {"seeds": [{"seed": 0, "workdir": "seed_0", "test": {"loss": 1.0}},
                     {"seed": 1, "test": {"loss": 2.0}}]}  # an older entry names no folder
  assert [(label, folder.name, entry["test"]["loss"])
          for label, folder, entry in run_record.model_dirs(tmp_path, multi)] == [
              ("seed 0", "seed_0", 1.0), ("seed 1", "seed_1", 2.0)]
  ((label, folder, entry),) = run_record.model_dirs(tmp_path, {"test": {"loss": 3.0}})
  assert (label, folder, entry["test"]) == ("run", tmp_path, {"loss": 3.0})


def test_decoding_and_outcomes_names(tmp_path):
  assert [run_record.decoding_name(k) for k in (1, 5)] == ["greedy", "beam5"]
  assert run_record.outcomes_file() == "test_outcomes.jsonl"
  assert run_record.outcomes_file(run_record.decoding_name(5)) == "test_outcomes_beam5.jsonl"
  assert run_record.outcomes_file(run_record.step_name(400)) == "test_outcomes_step400.jsonl"
  assert run_record.read_outcomes(tmp_path) is None
  run_record.write_jsonl(tmp_path / "test_outcomes_beam5.jsonl", [{"index": 0}])
  assert run_record.read_outcomes(tmp_path, "beam5") == [{"index": 0}]


def test_the_lock_file_names_its_live_holder(tmp_path):
  assert run_record.read_holder(tmp_path) is None  # never locked
  (tmp_path / ".lock").write_text("")  # released: its holder emptied it
  assert run_record.read_holder(tmp_path) is None
  (tmp_path / ".lock").write_text(json.dumps(run_record.holder()))
  assert run_record.live_holder(tmp_path) == {"pid": os.getpid(), "host": socket.gethostname()}
  assert run_record.describe_holder(run_record.holder()) == (
      f"PID {os.getpid()} on host {socket.gethostname()}")
  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  (tmp_path / ".lock").write_text(json.dumps({"pid": int(gone.stdout), "host":
                                              socket.gethostname()}))
  assert run_record.live_holder(tmp_path) is None  # killed without releasing: the lock is free
  (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "another-host"}))
  assert run_record.live_holder(tmp_path) == {"pid": 1, "host": "another-host"}  # trusted
  assert run_record.describe_holder({"host": "h"}) == "another process"


def test_a_sweeps_trial_status(tmp_path):
  assert run_record.read_status(tmp_path / "t") is None
  run_record.write_status(tmp_path / "t", {"name": "t", "status": "ok"})
  assert run_record.read_status(tmp_path / "t") == {"name": "t", "status": "ok"}
  assert not run_record.is_finished(tmp_path / "t")
  run_record.write_json(tmp_path / "t" / run_record.SUMMARY, {})
  assert run_record.is_finished(tmp_path / "t")


def test_reading_records_and_results_imports_no_jax():
  script = ("import sys\nfrom attnlab import results, run_record\n"
            "heavy = [m for m in ('jax', 'flax', 'matplotlib', 'altair') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr
