"""End to end through `python -m attnlab.main`, in subprocesses with tiny configs."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
# Subprocesses share one compilation cache (never the user's): identical programs compile once.
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
       "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}


def run_main(*args, stdin=None, check=True):
  proc = subprocess.run([sys.executable, "-m", "attnlab.main", *args], input=stdin,
                        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)
  if check and proc.returncode != 0:
    raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
  return proc


def metrics_steps(workdir, split):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r["step"] for r in map(json.loads, lines) if r["split"] == split]


@pytest.mark.slow
def test_date_train_resume_eval_decode(tmp_path):
  workdir = tmp_path / "date"
  config = f"{CONFIGS / 'date.py'}:quick"
  proc = run_main("--config", config, "--workdir", str(workdir),
                  "--config.train.num_steps=10", "--config.train.checkpoint_every=5")
  assert "step     10 | loss" in proc.stdout and "| prediction" in proc.stdout
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == 10
  assert 0.0 <= summary["test"]["exact_match"] <= 1.0
  for key in ("loss", "token_accuracy", "alignment_error_rate", "attention_entropy"):
    assert key in summary["test"]
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "5"]
  heatmaps = sorted(workdir.glob("attention_*.png"))
  assert len(heatmaps) == 3 and all(p.stat().st_size > 1000 for p in heatmaps)
  assert json.loads((workdir / "config.json").read_text())["model"]["attention"] == "general"
  assert list(workdir.glob("tensorboard/events.out.tfevents.*"))

  # The same command with more steps resumes at step 10, not from scratch.
  run_main("--config", config, "--workdir", str(workdir), "--config.train.num_steps=20",
           "--config.train.checkpoint_every=5")
  assert metrics_steps(workdir, "train") == [10, 20]
  assert json.loads((workdir / "summary.json").read_text())["step"] == 20

  proc = run_main("--config", config, "--workdir", str(workdir), "--mode=eval",
                  "--checkpoint=latest")
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  assert result["step"] == 20 and result["split"] == "test"
  assert (workdir / "eval_test.json").exists()

  inputs = tmp_path / "in.txt"
  inputs.write_text("98-03-23\n\n05-12-01\n")
  proc = run_main("--config", config, "--workdir", str(workdir), "--mode=decode",
                  f"--input={inputs}", f"--heatmaps={tmp_path / 'hm'}")
  lines = proc.stdout.splitlines()
  assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
  assert len(list((tmp_path / "hm").glob("*.png"))) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reverse", "copy", "toy_translation"])
def test_every_synthetic_task_trains(tmp_path, name):
  run_main("--config", f"{CONFIGS / name}.py:quick", "--workdir", str(tmp_path))
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 6 and "alignment_error_rate" in summary["test"]
  if name == "toy_translation":
    assert "bleu" in summary["test"]


@pytest.mark.slow
def test_corpus_task_on_a_small_file(tmp_path):
  corpus = tmp_path / "pairs.txt"
  corpus.write_text("".join(f"I see {i} cats.\tJe vois {i} chats.\tCC-BY\n" for i in range(80)),
                    encoding="utf-8")
  run_main("--config", f"{CONFIGS / 'mar_eng.py'}:quick", "--workdir", str(tmp_path / "w"),
           f"--config.data.path={corpus}", "--config.data.num_valid=10",
           "--config.data.num_test=10", "--config.data.min_freq=1")
  summary = json.loads((tmp_path / "w" / "summary.json").read_text())
  assert "bleu" in summary["test"] and summary["test"]["num_examples"] == 10


@pytest.mark.slow
def test_mar_eng_corpus(tmp_path):
  """configs/mar_eng.py reads the corpus shipped in data/mar-eng/: nothing beside the repo."""
  run_main("--config", f"{CONFIGS / 'mar_eng.py'}:quick", "--workdir", str(tmp_path))
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["test"]["num_examples"] == 30 and "bleu" in summary["test"]


@pytest.mark.parametrize("args,needle", [
    (["--config.model.attention=nope"], "config.model.attention: unknown value 'nope'; valid"),
    (["--config.model.cell=nope"], "valid choices: gru, lstm, rnn"),
    (["--config.data.task=nope"], "config.data.task"),
    (["--config.model.hidden_dim=0"], "config.model.hidden_dim"),
    (["--config.model.atention=dot"], "atention"),
    (["--config.data.path=/no/such/file.txt"], "config.data.path: no such file"),
    (["--config.train.num_steps=many"], "num_steps"),
])
def test_config_errors_exit_2_without_traceback(tmp_path, args, needle):
  name = "mar_eng" if any("data.path" in a for a in args) else "date"
  proc = run_main("--config", f"{CONFIGS / name}.py:quick", "--workdir", str(tmp_path),
                  *args, check=False)
  assert proc.returncode == 2, proc.stderr
  assert needle in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "checkpoints").exists()  # failed before anything was built


def test_eval_without_checkpoint_is_a_clear_error(tmp_path):
  proc = run_main("--config", f"{CONFIGS / 'date.py'}:quick", "--workdir", str(tmp_path),
                  "--mode=eval", check=False)
  assert proc.returncode == 2 and "no checkpoint" in proc.stderr


@pytest.mark.slow
def test_dirty_corpus_errors_or_skips_per_config(tmp_path):
  corpus = tmp_path / "dirty.txt"
  lines = [f"I see {i} cats.\tJe vois {i} chats." for i in range(60)]
  lines[7] = "no tab on this line"
  corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
  args = ["--config", f"{CONFIGS / 'mar_eng.py'}:quick", f"--config.data.path={corpus}",
          "--config.data.num_valid=5", "--config.data.num_test=5", "--config.data.min_freq=1"]
  proc = run_main(*args, "--workdir", str(tmp_path / "a"), check=False)
  assert proc.returncode == 2 and "dirty.txt:8:" in proc.stderr and "Traceback" not in proc.stderr
  proc = run_main(*args, "--workdir", str(tmp_path / "b"), "--config.data.on_bad_line=skip")
  assert "8" in proc.stderr  # the warning names the skipped line
  assert json.loads((tmp_path / "b" / "summary.json").read_text())["step"] == 6
  corpus.write_bytes(b"caf\xe9\tcafe\n")
  proc = run_main(*args, "--workdir", str(tmp_path / "c"), check=False)
  assert proc.returncode == 2 and "UTF-8" in proc.stderr and "Traceback" not in proc.stderr
