"""The command line under a user's mistakes, reruns, two processes and broken checkpoints:
one line and exit status 2 for a mistake (no traceback), nothing lost, nothing duplicated."""

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, ENV, REPO, run_main  # noqa: E402

DATE = f"{CONFIGS / 'date.py'}:quick"


def assert_one_line_error(proc, needle):
  assert proc.returncode == 2, (proc.returncode, proc.stderr)
  assert "Traceback" not in proc.stderr, proc.stderr
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished date:quick run (checkpoints at 10 and 20)."""
  workdir = tmp_path_factory.mktemp("trained") / "date"
  run_main("--config", DATE, "--workdir", str(workdir))
  return workdir


def copy_run(trained, tmp_path, name="copy"):
  target = tmp_path / name
  shutil.copytree(trained, target)
  return target


@pytest.mark.parametrize("args,needle", [
    (["--config.eval.length_boundaries=abc"], "config.eval.length_boundaries: must be"),
    (["--config.train.best_metric=exact_mtch"], "config.train.best_metric: unknown value"),
    (["--config.train.best_metric=loss"], "config.train.best_mode: 'loss' is better"),
    (["--config.train.best_metric=bleu"], "does not report 'bleu'"),
    (["--config.eval.coverage_penalty=0.5"], "config.eval.coverage_penalty: re-ranks beam"),
    (["--config.train.learning_rate=nan"], "config.train.learning_rate: must be a finite"),
    (["--config.train.learning_rate=inf"], "config.train.learning_rate: must be a finite"),
    (["--config.train.learning_rate=0"], "config.train.learning_rate: must be a finite"),
])
def test_config_mistakes_fail_before_training(tmp_path, args, needle):
  proc = run_main("--config", DATE, "--workdir", str(tmp_path / "w"), *args, check=False)
  assert_one_line_error(proc, needle)
  assert not (tmp_path / "w" / "checkpoints").exists()


@pytest.mark.parametrize("source,needle", [
    ("def get_config(:\n", "bad.py:1: invalid syntax"),
    ("def get_config(arg=None):\n  raise ValueError('boom')\n", "ValueError: boom"),
    ("x = 1 / 0\n", "ZeroDivisionError"),
])
def test_broken_config_files(tmp_path, source, needle):
  (tmp_path / "bad.py").write_text(source)
  proc = run_main("--config", str(tmp_path / "bad.py"), "--workdir", str(tmp_path / "w"),
                  check=False)
  assert_one_line_error(proc, needle)


def test_unusable_workdirs(tmp_path):
  file = tmp_path / "file"
  file.write_text("not a folder")
  assert_one_line_error(run_main("--config", DATE, "--workdir", str(file), check=False),
                        "is a file")
  assert_one_line_error(run_main("--config", DATE, "--workdir", str(file / "sub"),
                                 check=False), "cannot create --workdir")
  for mode in ("eval", "decode"):
    proc = run_main("--config", DATE, "--workdir", str(tmp_path / "none"), f"--mode={mode}",
                    stdin="98-03-23\n", check=False)
    assert_one_line_error(proc, "does not exist")
    assert not (tmp_path / "none").exists()  # decoding creates nothing


def test_decode_path_mistakes_fail_before_decoding(trained, tmp_path):
  proc = run_main("--config", DATE, "--workdir", str(trained), "--mode=decode",
                  f"--input={tmp_path}", check=False)
  assert_one_line_error(proc, "is not a file")
  (tmp_path / "hm").write_text("a file")
  proc = run_main("--config", DATE, "--workdir", str(trained), "--mode=decode",
                  f"--heatmaps={tmp_path / 'hm'}", stdin="98-03-23\n", check=False)
  assert_one_line_error(proc, "--heatmaps")
  assert proc.stdout == ""


def test_eval_and_decode_of_another_models_run(trained, tmp_path):
  for mode in ("eval", "decode"):
    proc = run_main("--config", DATE, "--workdir", str(trained), f"--mode={mode}",
                    "--config.model.hidden_dim=24", stdin="98-03-23\n", check=False)
    assert_one_line_error(proc, "model.hidden_dim (32 in the workdir, 24 now)")
  multiseed = copy_run(trained, tmp_path)
  config = json.loads((multiseed / "config.json").read_text())
  config["num_seeds"] = 2
  (multiseed / "config.json").write_text(json.dumps(config))
  proc = run_main("--config", DATE, "--workdir", str(multiseed), "--mode=eval", check=False)
  assert_one_line_error(proc, "num_seeds (2 in the workdir, 1 now)")


def test_rerunning_a_finished_run_is_a_no_op_that_says_so(trained):
  before = {name: (trained / name).read_bytes() for name in ("metrics.jsonl", "summary.json")}
  proc = run_main("--config", DATE, "--workdir", str(trained))
  assert "already complete at step 20" in proc.stderr
  assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 20
  for name, content in before.items():
    assert (trained / name).read_bytes() == content


def test_a_run_stopped_before_its_summary_evaluates_once(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  (workdir / "summary.json").unlink()
  run_main("--config", DATE, "--workdir", str(workdir))
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if r["split"] == "test"] == [20]
  assert (workdir / "summary.json").exists()


def test_a_second_trainer_on_a_busy_workdir_exits_2_naming_the_holder(tmp_path):
  workdir = tmp_path / "busy"
  first = subprocess.Popen([sys.executable, "-m", "attnlab.main", "--config", DATE,
                            "--workdir", str(workdir), "--config.train.num_steps=200",
                            "--config.train.checkpoint_every=100"],
                           env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
  deadline = time.time() + 120
  while not (workdir / "config.json").exists():  # written while holding the lock
    assert first.poll() is None and time.time() < deadline, first.communicate()
    time.sleep(0.05)
  for mode in ("train", "eval"):
    second = run_main("--config", DATE, "--workdir", str(workdir), f"--mode={mode}",
                      "--config.train.num_steps=200", "--config.train.checkpoint_every=100",
                      check=False)
    assert_one_line_error(second, f"is in use by PID {first.pid} on host")
  assert first.wait(timeout=300) == 0, first.communicate()
  assert json.loads((workdir / "summary.json").read_text())["step"] == 200


def _corrupt(step_dir: pathlib.Path) -> None:
  for path in step_dir.rglob("*"):
    if path.is_file() and path.stat().st_size > 0:
      path.write_bytes(b"\0garbage")


def test_eval_and_decode_fall_back_past_corrupted_checkpoints(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  _corrupt(workdir / "checkpoints" / "20")
  proc = run_main("--config", DATE, "--workdir", str(workdir), "--mode=eval")
  assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 10
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert "checkpoints/20 is corrupted" in proc.stderr
  _corrupt(workdir / "checkpoints" / "10")
  proc = run_main("--config", DATE, "--workdir", str(workdir), "--mode=decode",
                  stdin="98-03-23\n", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "Event loop is closed" not in proc.stderr
  assert "no checkpoint in" in proc.stderr and len(proc.stderr.splitlines()) <= 3
  assert len(list((tmp_path / "copy" / "checkpoints_corrupted").iterdir())) == 2


def test_training_with_every_checkpoint_corrupted_starts_over_in_a_few_lines(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  (workdir / "summary.json").unlink()
  for step in ("10", "20"):
    _corrupt(workdir / "checkpoints" / step)
  proc = run_main("--config", DATE, "--workdir", str(workdir))
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert len(proc.stderr.splitlines()) <= 6, proc.stderr
  assert proc.stderr.count("is corrupted or partial") == 2
  assert json.loads((workdir / "summary.json").read_text())["step"] == 20


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path):
  # --verbosity=0 logs "JAX process 0/1, devices: ..." once main has imported JAX and checked
  # the config: Ctrl-C goes in right after that line (building the task, compiling), however
  # slow the machine, never during the interpreter's own imports (a fixed sleep did).
  # The child starts with Ctrl-C's default action, as from a terminal: a suite started in the
  # background by a shell (`pytest &`) inherits SIGINT ignored, and Python keeps it ignored
  # until the training loop installs its handler.
  proc = subprocess.Popen([sys.executable, "-m", "attnlab.main", "--config", DATE,
                           "--workdir", str(tmp_path / "w"), "--verbosity=0"], env=ENV,
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  seen = []
  for line in proc.stderr:  # ends early (EOF) only if the process does
    seen.append(line)
    if "JAX process" in line:
      break
  proc.send_signal(signal.SIGINT)
  _, stderr = proc.communicate(timeout=300)
  stderr = "".join(seen) + stderr
  assert any("JAX process" in line for line in seen), stderr
  assert proc.returncode == 130, stderr
  assert "Traceback" not in stderr, stderr


def test_eval_and_decode_from_the_workdir_alone(trained, tmp_path):
  proc = run_main("--workdir", str(trained), "--mode=decode", stdin="98-03-23\n")
  assert proc.stdout.strip() and "Traceback" not in proc.stderr
  with_config = run_main("--config", DATE, "--workdir", str(trained), "--mode=decode",
                         stdin="98-03-23\n")
  assert proc.stdout == with_config.stdout
  workdir = copy_run(trained, tmp_path)
  proc = run_main("--workdir", str(workdir), "--mode=eval")
  assert json.loads(proc.stdout.strip().splitlines()[-1])["num_examples"] == 50
  assert_one_line_error(run_main("--workdir", str(tmp_path), check=False),
                        "--config is required for --mode=train")
  assert_one_line_error(run_main("--workdir", str(tmp_path), "--mode=decode", stdin="x\n",
                                 check=False), "config.json does not exist")


def test_decoding_builds_no_dataset(trained, monkeypatch):
  from attnlab import training
  from attnlab.training import preparation as prepare

  def no_dataset(data_config):
    raise AssertionError("decoding built the dataset")

  monkeypatch.setattr(prepare, "build_task", no_dataset)
  config = training.load_config(str(trained))
  assert training.decode_lines(config, str(trained), ["98-03-23", ""])[1] == ""
