"""eval.test_beam_sizes: the final test evaluation decodes the test split again with each
beam, from the same trained model (summary "test_beam", test_outcomes_beam<k>.jsonl)."""

import json

import numpy as np
import pytest

from attnlab import training
from attnlab.config import ConfigError, base_config, validate

BY_LENGTH = ("exact_match_by_length", "bleu_by_length", "alignment_error_rate_by_length")


def _lines(path):
  return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_summary_holds_each_beams_test_metrics_and_outcomes(beam_run):
  workdir, summary = beam_run
  saved = json.loads((workdir / "summary.json").read_text())
  assert set(saved["test_beam"]) == {"2"}
  greedy, beam = saved["test"], saved["test_beam"]["2"]
  assert set(beam) == set(greedy)  # the same structure as "test", per length bucket too
  for key in BY_LENGTH:
    assert beam[key].keys() == greedy[key].keys()
    assert [c["count"] for c in beam[key].values()] == [c["count"] for c in greedy[key].values()]
  # Teacher-forced metrics do not depend on the decoding: one model, the same sentences.
  for key in ("loss", "token_accuracy", "attention_entropy", "alignment_error_rate"):
    assert beam[key] == pytest.approx(greedy[key], rel=1e-6), key
  outcomes = _lines(workdir / "test_outcomes.jsonl")
  beam_outcomes = _lines(workdir / "test_outcomes_beam2.jsonl")
  assert len(beam_outcomes) == beam["num_examples"] == len(outcomes)
  assert [r["src_length"] for r in beam_outcomes] == [r["src_length"] for r in outcomes]
  assert np.mean([r["exact_match"] for r in beam_outcomes]) == pytest.approx(beam["exact_match"])


def test_beam_results_equal_eval_mode_with_that_beam_on_the_checkpoint(beam_run):
  """What ``attnlab.main --mode=eval --checkpoint=latest --config.eval.beam_size=2`` runs."""
  workdir, summary = beam_run
  config = training.load_config(str(workdir))
  assert config.eval.test_beam_sizes == (2,)
  config.eval.beam_size = 2
  validate(config)
  result = training.evaluate_checkpoint(config, str(workdir), "latest")
  expected = summary["test_beam"]["2"]
  assert result["step"] == summary["step"]
  for key in ("exact_match", "bleu", "alignment_error_rate", "loss"):
    assert result[key] == pytest.approx(expected[key], rel=1e-6), key
  for key in BY_LENGTH:
    assert result[key].keys() == expected[key].keys()
    for bucket, cell in expected[key].items():
      assert result[key][bucket]["count"] == cell["count"]
      assert result[key][bucket]["mean"] == pytest.approx(cell["mean"], rel=1e-6), (key, bucket)


@pytest.mark.parametrize("sizes", [(0,), (-1,), (2, 2), (True,), (2.0,)])
def test_test_beam_sizes_are_distinct_positive_integers(sizes):
  config = base_config("reverse")
  config.eval.test_beam_sizes = (5,)
  validate(config)
  config.eval.test_beam_sizes = sizes
  with pytest.raises(ConfigError, match="eval.test_beam_sizes"):
    validate(config)


def test_greedy_as_an_extra_decoding_cannot_take_a_coverage_penalty():
  config = base_config("reverse")
  config.eval.beam_size, config.eval.coverage_penalty = 4, 0.2
  config.eval.test_beam_sizes = (4, 8)  # 4 is eval.beam_size's own: skipped, not an error
  validate(config)
  config.eval.test_beam_sizes = (1,)
  with pytest.raises(ConfigError, match="greedy"):
    validate(config)


def test_multi_seed_runs_decode_each_seed_with_each_beam(tmp_path):
  config = base_config("reverse")
  config.data.vocab_size, config.data.min_len, config.data.max_len = 6, 1, 6
  config.data.num_train, config.data.num_valid, config.data.num_test = 64, 8, 12
  config.batching.batch_size, config.batching.eval_batch_size = 8, 16
  config.batching.num_buckets = 1
  config.model.emb_dim, config.model.hidden_dim = 8, 16
  config.num_seeds = 2
  config.train.num_steps = config.train.log_every = config.train.eval_every = 2
  config.train.checkpoint_every = 2
  config.eval.num_heatmaps = 0
  config.eval.test_beam_sizes = (2,)
  validate(config)
  summary = training.train_and_evaluate(config, str(tmp_path))
  per_seed = [s["test_beam"]["2"] for s in summary["seeds"]]
  assert all(set(b) == set(s["test"]) for b, s in zip(per_seed, summary["seeds"]))
  for seed in summary["seeds"]:
    rows = _lines(tmp_path / seed["workdir"] / "test_outcomes_beam2.jsonl")
    assert len(rows) == seed["test_beam"]["2"]["num_examples"] == 12
  assert summary["test_beam"]["2"]["exact_match"] == pytest.approx(
      np.mean([b["exact_match"] for b in per_seed]))
  assert summary["test_beam_std"]["2"]["loss"] == pytest.approx(
      np.std([b["loss"] for b in per_seed]))
