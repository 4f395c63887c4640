"""Where outputs go wrong: first error positions and accuracy by target position, against
hand-worked answers and through the real evaluation path."""

import json

import numpy as np
import pytest

from attnlab import position_metrics


@pytest.mark.parametrize("prediction, reference, expected", [
    ([1, 2, 3], [1, 2, 3], None),
    ([1, 9, 3], [1, 2, 3], 2),
    ([9], [1, 2, 3], 1),
    ([1, 2], [1, 2, 3], 3),  # stopped early: wrong where the reference goes on
    ([1, 2, 3, 4], [1, 2, 3], 4),  # went on: wrong where it should have ended
    ([], [1], 1),
])
def test_first_error(prediction, reference, expected):
  assert position_metrics.first_error(prediction, reference) == expected


def test_accuracy_by_position_pools_tokens_of_every_sentence_per_bucket():
  correct = [[1, 1, 0], [1, 0, 0, 0, 1]]  # positions 1..3 and 1..5
  result = position_metrics.accuracy_by_position(correct, [2, 4])
  assert result == {"1-2": {"count": 4, "mean": 0.75}, "3-4": {"count": 3, "mean": 0.0},
                    ">4": {"count": 1, "mean": 1.0}}
  assert position_metrics.accuracy_by_position([], [2]) == {}


def test_first_errors_by_position_counts_every_sentence_once():
  result = position_metrics.first_errors_by_position([None, 1, 3, 12, None, 2], [2, 10])
  assert result == {"none": 2, "1-2": 2, "3-10": 1, ">10": 1}
  assert sum(result.values()) == 6


def test_position_boundaries():
  assert position_metrics.position_boundaries(7) == [7]
  assert position_metrics.position_boundaries(35) == [10, 20, 30, 35]


@pytest.mark.slow
def test_evaluation_reports_positions_consistent_with_its_records(beam_run):
  workdir, summary = beam_run
  test = summary["test"]
  rows = [json.loads(line) for line in open(workdir / "test_outcomes.jsonl")]
  # first_error is None exactly for the sentences decoded exactly.
  assert [r["first_error"] is None for r in rows] == [bool(r["exact_match"]) for r in rows]
  assert test["first_error_by_position"]["none"] == sum(r["exact_match"] for r in rows)
  assert sum(test["first_error_by_position"].values()) == len(rows)
  # One teacher-forced flag per target token and EOS; pooled they give token accuracy.
  assert [len(r["forced_correct"]) for r in rows] == [r["tgt_length"] + 1 for r in rows]
  flags = np.concatenate([r["forced_correct"] for r in rows])
  assert flags.mean() == pytest.approx(test["token_accuracy"])
  by_position = test["token_accuracy_by_position"]
  assert sum(b["count"] for b in by_position.values()) == flags.size
  assert sum(b["mean"] * b["count"] for b in by_position.values()) == pytest.approx(flags.sum())
