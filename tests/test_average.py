"""Checkpoint averaging through the real entry points: ``python -m attnlab.average`` writes a
new self-contained workdir without touching the run's, and ``--average=last:K|best:K`` makes
eval and decode use the same average (issue 26, item 7)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, ENV, REPO, run_main  # noqa: E402
from test_main_daily_use import assert_one_line_error  # noqa: E402
from training.test_averaging import listing  # noqa: E402

DATE = f"{CONFIGS / 'date.py'}:quick"
LINES = "98-03-23\n01-12-05\n\n17-07-30\n"


def run_average(*args, check=True):
  proc = subprocess.run([sys.executable, "-m", "attnlab.average", *args], capture_output=True,
                        text=True, env=ENV, cwd=REPO, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
  return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A date:quick run of 20 steps with a validated checkpoint every 5 (all four kept)."""
  workdir = tmp_path_factory.mktemp("average") / "date"
  run_main("--config", DATE, "--workdir", str(workdir), "--config.train.checkpoint_every=5",
           "--config.train.eval_every=5", "--config.train.keep_checkpoints=4")
  assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["5", "10", "15", "20"]
  return workdir


def decode(workdir, *args):
  return run_main("--workdir", str(workdir), "--mode=decode", "--output_format=jsonl", *args,
                  stdin=LINES).stdout


def test_average_writes_a_new_workdir_that_decodes_as_the_average_option(trained, tmp_path):
  before = listing(trained)
  out = tmp_path / "last3"
  proc = run_average("--workdir", str(trained), "--last", "3", "--out", str(out))
  assert json.loads(proc.stdout)["steps"] == [20, 15, 10] and proc.stderr == ""
  assert listing(trained) == before  # the run's own files are only read
  assert sorted(os.listdir(out)) == ["averaged.json", "checkpoints", "config.json", "run.json",
                                     "vocab.json"]
  assert os.listdir(out / "checkpoints") == ["20"]
  record = json.loads((out / "averaged.json").read_text())
  assert record["steps"] == [20, 15, 10] and record["how"] == "last"
  averaged = decode(out)  # the new workdir alone
  assert averaged == decode(trained, "--average=last:3")
  assert averaged != decode(trained)  # the best (step 20) checkpoint alone decodes otherwise
  assert listing(trained) == before


def test_best_k_ranks_by_validation_loss(trained, tmp_path):
  rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
  losses = {r["step"]: r["loss"] for r in rows if r["split"] == "valid"}
  best = sorted(sorted(losses, key=lambda s: (losses[s], -s))[:2], reverse=True)
  proc = run_average("--workdir", str(trained), "--best=2", "--out", str(tmp_path / "best2"))
  assert json.loads(proc.stdout)["steps"] == best
  proc = run_main("--workdir", str(trained), "--mode=eval", "--average=best:2")
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["checkpoint"] == "best:2" and result["averaged_steps"] == best


@pytest.mark.parametrize("args,needle", [
    (["--last=9"], "last:9 needs 9 checkpoints; the run has 4"),
    (["--last=2", "--best=2"], "give one of --last=K"),
    ([], "give one of --last=K"),
    (["--last=0"], "--last"),
])
def test_average_mistakes_are_one_line(trained, tmp_path, args, needle):
  proc = run_average("--workdir", str(trained), "--out", str(tmp_path / "x"), *args, check=False)
  assert_one_line_error(proc, needle)
  assert not (tmp_path / "x").exists()


def test_average_never_writes_over_a_folder(trained, tmp_path):
  (tmp_path / "mine").mkdir()
  (tmp_path / "mine" / "notes.txt").write_text("keep")
  proc = run_average("--workdir", str(trained), "--last=2", "--out", str(tmp_path / "mine"),
                     check=False)
  assert_one_line_error(proc, "already exists")
  assert os.listdir(tmp_path / "mine") == ["notes.txt"]
  proc = run_main("--workdir", str(trained), "--mode=decode", "--average=last:5", stdin=LINES,
                  check=False)
  assert_one_line_error(proc, "last:5 needs 5 checkpoints")
