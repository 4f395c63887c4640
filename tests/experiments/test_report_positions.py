"""experiments.report_positions through experiments.report: the matched-step ``checkpoint``
axis and the position tables and figures, on two tiny trained trials."""

import csv
import json

import pytest

from attnlab.config import validate
from attnlab.defaults import load_config_file
from attnlab.training import train_and_evaluate
from experiments import report, report_positions
from tests.conftest import CONFIGS


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """Two variants, 2 vmapped seeds each, 4 steps, also tested at step 2."""
  root = tmp_path_factory.mktemp("positions")
  for variant, overrides in (("none", {"decoder": "none"}), ("additive", {})):
    config = load_config_file(str(CONFIGS / "sweeps" / "long_sentence.py")).get_config("tiny")
    config.eval.test_at_steps = (2,)
    config.train.eval_every = 2
    for key, value in overrides.items():
      config.model[key] = value
    validate(config)
    train_and_evaluate(config, str(root / f"variant={variant}"))
  return root


@pytest.fixture(scope="module")
def written(root, tmp_path_factory):
  return report.write_report(root, tmp_path_factory.mktemp("report"))


def test_matched_steps_are_a_checkpoint_axis(root, written):
  rows = list(csv.DictReader(open(written["csv"])))
  assert {r["checkpoint"] for r in rows} == {"best", "step2"}
  # The step-2 row is the step-2 test record's value, the mean over the seeds.
  records = [[json.loads(line) for line in open(root / "variant=none" / seed / "metrics.jsonl")]
             for seed in ("seed_0", "seed_1")]
  at_step = [next(r for r in rs if r["split"] == "test_at_step") for rs in records]
  row = next(r for r in rows if r["variant"] == "none" and r["checkpoint"] == "step2"
             and r["metric"] == "exact_match" and r["bucket"] == "all")
  assert float(row["mean"]) == pytest.approx(sum(r["exact_match"] for r in at_step) / 2)
  assert row["num_seeds"] == "2"
  # Learning curves do not depend on the checkpoint tested: one per training, seeds pooled.
  curves = list(csv.DictReader(open(written["learning_curves"])))
  assert "checkpoint" not in curves[0] and {r["num_seeds"] for r in curves} == {"2"}
  assert [p.name for p in written["figures"] if p.name.startswith("learning_curves")] == [
      "learning_curves.png"]


def test_positions_csv_matches_the_runs_summaries(root, written):
  rows = list(csv.DictReader(open(written["positions"])))
  assert {r["metric"] for r in rows} == {"token_accuracy", "first_error_share"}
  summary = json.loads((root / "variant=additive" / "summary.json").read_text())
  seeds = [s["test"]["token_accuracy_by_position"] for s in summary["seeds"]]
  for label in seeds[0]:
    row = next(r for r in rows if r["variant"] == "additive" and r["checkpoint"] == "best"
               and r["metric"] == "token_accuracy" and r["position"] == label)
    assert float(row["mean"]) == pytest.approx(sum(s[label]["mean"] for s in seeds) / 2)
    assert float(row["low"]) <= float(row["mean"]) <= float(row["high"])
  # Shares of sentences: with the exact ones, every sentence once.
  for s in summary["seeds"]:
    counts = s["test"]["first_error_by_position"]
    assert sum(counts.values()) == s["test"]["num_examples"]
  assert all(p.exists() for p in written["figures"])
  assert any("token_accuracy_vs_position" in p.name for p in written["figures"])
  assert "Where outputs go wrong" in written["markdown"].read_text()


@pytest.mark.parametrize("label, x", [("1-10", 5.5), ("7", 7.0), (">60", 65.0)])
def test_position_x(label, x):
  assert report_positions.position_x(label) == x
