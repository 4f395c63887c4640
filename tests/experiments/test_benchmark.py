"""experiments.benchmark --quick: every part runs and its JSON holds real, consistent figures."""

import json

import pytest

from experiments import benchmark


@pytest.mark.slow
def test_quick_benchmark_writes_consistent_figures(tmp_path, capsys):
  out = tmp_path / "bench.json"
  result = benchmark.main(["--quick", "--out", str(out)])
  assert json.loads(out.read_text())["backend"] == result["backend"]
  printed = capsys.readouterr().out
  assert "steps/dispatch" in printed and "peak training memory vs source length" in printed

  date = result["date"]
  assert [r["steps_per_dispatch"] for r in date["train"]] == [1]
  for row in date["train"]:
    assert row["steps_per_s"] > 0 and row["target_tokens_per_s"] > row["steps_per_s"]
    # Warm-up compiled each bucket's program once; timing compiled nothing more.
    assert row["compiles"] >= row["buckets"] and row["compiles_after_warmup"] == 0
  assert [r["beam_size"] for r in date["decode"]] == [1, 4]
  assert all(r["sentences_per_s"] > 0 for r in date["decode"])

  # One train-step compilation per length bucket, over two epochs.
  assert result["buckets"]["buckets"] > 1
  assert result["buckets"]["train_compiles"] == result["buckets"]["buckets"]

  grid = result["grid"]
  assert [r["src_len"] for r in grid] == [10, 20, 40]
  assert all(r["steps_per_s"] > 0 and r["compile_s"] > 0 for r in grid)
  # Memory grows with the source length, and remat keeps less of it.
  peaks = [r["peak_mb"] for r in grid]
  assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
  assert grid[-1]["peak_mb_remat"] < grid[-1]["peak_mb"]
  fit = [f for f in result["memory_fits"] if f["memory"] == "peak_mb"][0]
  assert fit["mb_per_src_position"] > 0 and 0.9 < fit["r2"] <= 1.0
