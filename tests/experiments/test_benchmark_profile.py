"""experiments.benchmark_profile: where a train step's time goes (the loop's phases, the kernels
inside the compiled step), on the seed's small shape."""

import subprocess
import sys

import pytest

from experiments import benchmark_profile
from tests.experiments.test_benchmark import REPO


def test_own_time_leaves_out_the_events_nested_inside():
  events = [{"name": "while", "ts": 0, "dur": 10}, {"name": "dot", "ts": 1, "dur": 3},
            {"name": "fusion", "ts": 5, "dur": 4}, {"name": "copy", "ts": 12, "dur": 2}]
  assert sorted(benchmark_profile.self_times(events)) == [
      ("copy", 2), ("dot", 3), ("fusion", 4), ("while", 3)]


@pytest.mark.parametrize("name, kind", [
    ("ynn_fusion.21", "matmul"), ("dot.116", "matmul"), ("while.9", "loop control"),
    ("end: copy.363", "copies and slices"),
    ("bitcast_dynamic-update-slice_fusion.34", "copies and slices"),
    ("multiply_reduce_fusion.47", "elementwise and reductions"),
    ("ThunkExecutor::Execute", "runtime")])
def test_kind_of_an_xla_event(name, kind):
  assert benchmark_profile.kind_of(name) == kind


@pytest.mark.slow
def test_loop_phases_add_up():
  row = benchmark_profile.breakdown(steps_per_dispatch=2, steps=4)
  phases = [row[f"{p}_us"] for p in benchmark_profile.PHASES]
  assert min(phases) >= 0 and row["total_us"] == pytest.approx(sum(phases))
  assert row["pipelined_steps_per_s"] == pytest.approx(1e6 / row["pipelined_us"])
  assert row["compiles"] >= 1 and row["compile_s"] > 0  # the 2-step program, in the warm-up


@pytest.mark.slow
def test_ops_of_the_seeds_step():
  row = benchmark_profile.op_profile("date", "float32", steps=1)
  assert row["kernels_per_step"] > 100  # the scans' kernels, run once per time step
  assert row["us_per_step"]["matmul"] > 0 and row["untraced_ms"] > 0
  assert set(row["us_per_step"]) == set(benchmark_profile.KINDS)


def test_bad_part_is_one_line_and_exit_2():
  result = subprocess.run([sys.executable, "-m", "experiments.benchmark_profile", "--parts",
                           "nope"], cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 2, result.stderr
  assert result.stderr.startswith("error: valid --parts") and len(result.stderr.splitlines()) == 1
