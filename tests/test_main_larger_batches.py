"""Token-based batches, gradient accumulation and the schedules, end to end through
`python -m attnlab.main --config configs/date.py:quick` (issue 26, item 6)."""

import json
import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, run_main  # noqa: E402

QUICK = f"{CONFIGS / 'date.py'}:quick"  # 20 steps, lr 1e-2, log/eval/checkpoint every 10


def records(path, split="train"):
  return [r for r in map(json.loads, path.read_text().splitlines()) if r["split"] == split]


@pytest.mark.slow
def test_token_batches_with_vmapped_seeds(tmp_path):
  # date's quick padded shape is (8, 10): 100 tokens hold 10 rows.
  run_main("--config", QUICK, "--workdir", str(tmp_path), "--config.batching.max_tokens=100",
           "--config.num_seeds=2")
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 20 and summary["num_seeds"] == 2
  for seed in (0, 1):
    train = records(tmp_path / f"seed_{seed}" / "metrics.jsonl")
    assert [r["step"] for r in train] == [10, 20]
    # Target tokens of a 10-row batch of dates (EOS included), never more than the budget.
    assert all(0 < r["tokens"] <= 100 for r in train)


@pytest.mark.slow
def test_gradient_accumulation_with_inverse_sqrt_resumes(tmp_path):
  args = ["--config", QUICK, "--workdir", str(tmp_path), "--config.train.grad_accum_steps=2",
          "--config.train.schedule=inverse_sqrt", "--config.train.warmup_steps=4"]
  run_main(*args, "--config.train.num_steps=10")
  run_main(*args)  # resumes at step 10 and trains on to 20
  train = records(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in train] == [10, 20]
  # Steps count micro-batches (2 per update): the schedule is read at the training step.
  for r in train:
    assert r["learning_rate"] == pytest.approx(1e-2 * math.sqrt(4 / r["step"]), rel=1e-5)
  assert json.loads((tmp_path / "summary.json").read_text())["step"] == 20


@pytest.mark.slow
def test_reduce_on_plateau_logs_the_scaled_learning_rate(tmp_path):
  run_main("--config", QUICK, "--workdir", str(tmp_path),
           "--config.train.schedule=reduce_on_plateau", "--config.train.warmup_steps=0",
           "--config.train.plateau_window=2", "--config.train.plateau_patience=1",
           "--config.train.plateau_factor=0.5")
  train = records(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in train] == [10, 20]
  for r in train:
    scale = r["learning_rate_scale"]
    assert scale in [0.5 ** n for n in range(11)]  # halved at most once a window
    assert r["learning_rate"] == pytest.approx(1e-2 * scale)
