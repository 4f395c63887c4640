"""experiments.benchmark_limits: a train step's FLOPs, achieved throughput and the matmul limit,
on the seed's small shape (the real-text shapes take minutes; nothing here times anything)."""

import json
import subprocess
import sys

import pytest

from experiments import benchmark_limits
from tests.experiments.test_benchmark import REPO


def test_a_rows_figures_are_consistent():
  row = benchmark_limits.bench_shape("date", "float32", steps=1, rounds=1)
  assert row["steps_per_s"] > 0 and row["gflop"] > 0 and row["limit_gflop_per_s"] > 0
  assert row["gflop_per_s"] == pytest.approx(row["gflop"] * row["steps_per_s"])
  assert row["of_limit"] == pytest.approx(row["gflop_per_s"] / row["limit_gflop_per_s"])
  # XLA's count is at least the forward and backward output projection's 3 x 2 m k n.
  m, k, n = row["batch"] * row["tgt_len"], 32, row["tgt_vocab"]
  assert row["gflop"] * 1e9 >= 6 * m * k * n


def test_the_step_trains_as_its_config_does(monkeypatch):
  # The loss is the config's (configs/multi30k.py smooths labels, as the PyTorch twin does),
  # and so is the non-finite guard: the benchmarked step is the one training runs.
  from attnlab import training
  seen = {}
  real = training.steps.train_step_fn

  def spy(*args, **kwargs):
    seen.update(kwargs)
    return real(*args, **kwargs)

  monkeypatch.setattr(training.steps, "train_step_fn", spy)
  monkeypatch.setitem(benchmark_limits.SHAPES, "multi30k_small",
                      benchmark_limits.SHAPES["multi30k"][:2] + (4, 3, 3, 20, 20))
  monkeypatch.setattr(benchmark_limits, "config_of", _small(benchmark_limits.config_of))
  step = benchmark_limits.train_step("multi30k_small", "float32")
  assert step.config.train.label_smoothing == 0.1
  assert seen == {"label_smoothing": 0.1, "on_nonfinite": step.config.train.on_nonfinite}


def _small(config_of):
  """config_of, its model shrunk (the multi30k config, 8 units wide)."""
  def small(name, dtype):
    config = config_of("multi30k" if name == "multi30k_small" else name, dtype)
    config.model.emb_dim = config.model.hidden_dim = 8
    return config
  return small


def test_matmul_limit_is_positive_for_both_dtypes():
  for dtype in ("float32", "bfloat16"):
    assert benchmark_limits.matmul_limit(64, 32, 48, dtype, rounds=1, reps=2) > 0


def test_every_shape_names_a_config_that_builds():
  for name in benchmark_limits.SHAPES:
    config = benchmark_limits.config_of(name, "float32")
    assert config.model.hidden_dim > 0


def test_unknown_shape_is_one_line_and_exit_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "experiments.benchmark_limits",
                           "--shapes", "nope"], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.strip().startswith("error:") and len(result.stderr.splitlines()) == 1
  assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_command_writes_its_json(tmp_path):
  out = tmp_path / "limits.json"
  subprocess.run([sys.executable, "-m", "experiments.benchmark_limits", "--shapes", "date",
                  "--dtypes", "float32", "--steps", "1", "--rounds", "1", "--out", str(out)],
                 cwd=REPO, check=True, capture_output=True)
  result = json.loads(out.read_text())
  assert [r["shape"] for r in result["rows"]] == ["date"] and result["matmul"]
