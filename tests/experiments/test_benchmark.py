"""experiments.benchmark --quick: every part runs and its JSON holds real, consistent figures,
written where --out says (by default into the temporary directory, never the current one)."""

import json
import pathlib
import subprocess
import sys
import tempfile

import pytest

from experiments import benchmark

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_writes_consistent_figures(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(tmp_path)  # where a user runs it from: nothing may land here
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
  (tmp_path / "temp").mkdir()
  result = benchmark.main(["--quick"])
  (out,) = (tmp_path / "temp").glob("attnlab-benchmark-*.json")
  assert json.loads(out.read_text())["backend"] == result["backend"]
  assert [p.name for p in tmp_path.iterdir()] == ["temp"]
  printed = capsys.readouterr().out
  assert "steps/dispatch" in printed and "peak training memory vs source length" in printed
  assert f"wrote {out}" in printed and "XLA compiled" in printed

  date = result["date"]
  assert [r["steps_per_dispatch"] for r in date["train"]] == [1]
  for row in date["train"]:
    assert row["steps_per_s"] > 0 and row["target_tokens_per_s"] > row["steps_per_s"]
    # Warm-up compiled each bucket's program once; timing compiled nothing more.
    assert row["compiles"] >= row["buckets"] and row["compiles_after_warmup"] == 0
  assert [r["beam_size"] for r in date["decode"]] == [1, 4]
  assert all(r["sentences_per_s"] > 0 for r in date["decode"])

  # One train-step compilation per length bucket, over two epochs; two buckets when quick.
  assert result["buckets"]["buckets"] == 2
  assert result["buckets"]["train_compiles"] == result["buckets"]["buckets"]

  grid = result["grid"]
  assert [r["src_len"] for r in grid] == [10, 20, 40]
  assert all(r["steps_per_s"] > 0 and r["compile_s"] > 0 for r in grid)
  assert not any("peak_mb_remat" in r for r in grid)  # quick: no second compilation per row
  # Memory grows with the source length.
  peaks = [r["peak_mb"] for r in grid]
  assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
  fit = [f for f in result["memory_fits"] if f["memory"] == "peak_mb"][0]
  assert fit["mb_per_src_position"] > 0 and 0.9 < fit["r2"] <= 1.0
  # What the time went on, said at the end: almost all of it compiling.
  assert 0 < result["compilation"]["compile_s"] < result["compilation"]["wall_s"]


def test_out_is_never_overwritten_and_fails_before_measuring(tmp_path):
  """Through the entry point: an existing --out, or one in a missing folder, is one error line
  and exit status 2 at once, and the file is left as it was."""
  kept = tmp_path / "bench.json"
  kept.write_text("{\"mine\": 1}")
  for out, needle in ((kept, "exists"), (tmp_path / "no" / "b.json", "no such folder")):
    proc = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--quick",
                           f"--out={out}"], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert needle in line and "Traceback" not in proc.stderr
  assert kept.read_text() == "{\"mine\": 1}"


def test_default_out_is_a_new_file_in_the_temporary_directory(tmp_path, monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
  first, second = benchmark.out_path(""), benchmark.out_path("")
  assert first != second and all(p.startswith(str(tmp_path)) for p in (first, second))
