"""configs/sweeps/mechanisms.py: every mechanism with the score fixed, on long inputs, and its
tiny profile run for real through the launcher (accuracy and AER per length, and cost)."""

import json
import os
import pathlib

import pytest

from attnlab.attention import mechanism_names
from experiments import grid, sweep

SWEEPS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "sweeps"


def test_the_sweep_compares_every_mechanism_with_the_score_fixed():
  module = grid.load_sweep_module(str(SWEEPS / "mechanisms.py"))
  assert sorted(module.MECHANISMS) == sorted(mechanism_names())
  assert len(set(module.MECHANISMS)) == len(module.MECHANISMS)
  for profile in ("small", "full"):
    axis = module.get_sweep(profile)["mechanism"]
    assert list(axis) == [*module.MECHANISMS, "hard_gumbel"]
    assert axis["hard_gumbel"] == {"model.mechanism": "hard", "model.hard_estimator": "gumbel"}
    config = module.get_config(profile)
    assert (config.model.decoder, config.model.attention) == ("luong", "general")
    assert config.model.local_window == 10  # Luong et al.'s D
    assert config.data.max_len == 50 and config.train.measure_memory
    # Each trial stops on its own validation curve; at least 15 evaluations up to the cap.
    assert config.train.early_stopping_patience > 0 and config.train.best_metric == "loss"
    assert config.train.eval_every <= config.train.num_steps // 15
  assert module.get_report() == {"line": "mechanism", "x": "length"}
  assert module.get_config("small").model.hard_estimator == "reinforce"
  assert module.get_config("small,steps=50").train.early_stopping_patience == 0
  with pytest.raises(ValueError, match="unknown"):
    module.get_config("small,hard=gumbel")


@pytest.mark.slow
def test_tiny_profile_runs_and_reports_accuracy_alignment_and_cost(tmp_path):
  saved = os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS")
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"  # trials compile fast, as in conftest
  try:
    exit_code = sweep.main(["--sweep", str(SWEEPS / "mechanisms.py:tiny"), "--root",
                            str(tmp_path), "--max_parallel", "2"])
  finally:
    if saved is None:
      del os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"]
    else:
      os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = saved
  assert exit_code == 0
  for name in ("local_p", "hard"):
    summary = json.loads((tmp_path / f"mechanism={name}" / "summary.json").read_text())
    seed = summary["seeds"][0]["test"]
    assert set(seed["exact_match_by_length"]) == {"1-4", "5-6", ">6"}
    assert 0 <= summary["test"]["alignment_error_rate"] <= 1
    assert "alignment_error_rate_by_length" in seed
    cost = summary["cost"]
    assert cost["train_steps_per_second"] > 0 and cost["train_step_memory_bytes"] > 0
    config = json.loads((tmp_path / f"mechanism={name}" / "config.json").read_text())
    assert config["model"]["mechanism"] == name
