"""Early stopping: the stall count, its rebuild from metrics.jsonl, and a run that stops."""

import json

import pytest

from attnlab import training
from attnlab.config import ConfigError, base_config, validate
from attnlab.training import early_stopping


@pytest.mark.parametrize("values, mode, stalled", [
    ([], "max", 0),
    ([0.1, 0.5, 0.4, 0.5], "max", 2),  # a tie is no improvement: the first best counts
    ([0.1, 0.5, 0.6], "max", 0),
    ([3.0, 2.0, 2.5, 2.1], "min", 2),
    ([float("nan"), 0.2, float("nan")], "max", 1),
    ([float("nan")] * 3, "max", 3),
])
def test_stalled_evaluations(values, mode, stalled):
  assert early_stopping.stalled_evaluations(values, mode) == stalled


@pytest.mark.parametrize("values, mode, min_delta, stalled", [
    ([0.5, 0.6, 0.603, 0.604, 0.604], "max", 0.005, 3),  # creeping up: no real improvement
    ([0.5, 0.6, 0.603, 0.604, 0.605], "max", 0.0, 0),
    ([0.5, 0.6, 0.603, 0.607], "max", 0.005, 0),  # beats the best (0.6) by more than 0.005
    ([1.0, 0.95, 0.949, 0.90], "min", 0.01, 0),
    ([1.0, 0.995, 0.991], "min", 0.01, 2),
    ([float("nan"), 0.2, 0.201], "max", 0.01, 1),
])
def test_an_improvement_must_exceed_min_delta(values, mode, min_delta, stalled):
  assert early_stopping.stalled_evaluations(values, mode, min_delta) == stalled
  assert early_stopping.should_stop(values, mode, 2, min_delta) == (stalled >= 2)


@pytest.mark.parametrize("values, stalled", [
    ([0.0073, 0.0035, 0.0010, 0.00024], 0),  # a converging loss improves by > 5% each time
    ([0.1500, 0.1499, 0.1480, 0.1460], 3),  # creeping by < 5% of 0.15 is flat
    ([0.2, 0.15, 0.149, 0.14], 0),  # 0.15 -> 0.14 is 6.7%: an improvement
])
def test_a_relative_min_delta_scales_with_the_best(values, stalled):
  assert early_stopping.stalled_evaluations(values, "min", 0.0, 0.05) == stalled
  # An absolute 0.005 nats calls the last fall of the converging loss (0.0010 -> 0.00024,
  # 76%) flat.
  assert early_stopping.stalled_evaluations([0.0073, 0.0035, 0.0010, 0.00024], "min",
                                            0.005) == 1


def test_should_stop_needs_patience_evaluations_past_the_best():
  assert not early_stopping.should_stop([0.5, 0.4, 0.4], "max", 0)  # off
  assert not early_stopping.should_stop([0.5, 0.4], "max", 2)
  assert early_stopping.should_stop([0.5, 0.4, 0.4], "max", 2)
  assert not early_stopping.should_stop([0.5, 0.4, 0.6], "max", 2)
  assert not early_stopping.should_stop([0.5], "max", 1)


def test_valid_history_averages_seeds_and_stops_at_the_step(tmp_path):
  for k, values in enumerate([[0.2, 0.4, 0.6], [0.4, 0.6, 0.8]]):
    d = tmp_path / f"seed_{k}"
    d.mkdir()
    lines = [{"step": 10 * (i + 1), "split": split, "exact_match": v}
             for i, v in enumerate(values) for split in ("train", "valid")]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "{cut")
  dirs = [str(tmp_path / "seed_0"), str(tmp_path / "seed_1")]
  assert early_stopping.valid_history(dirs, "exact_match", 20) == pytest.approx([0.3, 0.5])
  assert early_stopping.valid_history(dirs, "exact_match", 99) == pytest.approx([0.3, 0.5, 0.7])
  assert early_stopping.valid_history([str(tmp_path / "none")], "exact_match", 99) == []


def _config(patience):
  c = base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, 4
  c.data.num_train, c.data.num_valid, c.data.num_test = 200, 20, 20
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 8, 32, 1
  c.model.emb_dim, c.model.hidden_dim = 8, 16
  c.train.num_steps = 400
  c.train.learning_rate = 1e-30  # finite, far too small to change the loss: no improvement
  c.train.warmup_steps = 0
  c.train.schedule = "constant"
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 5
  c.train.best_metric, c.train.best_mode = "loss", "min"
  c.train.early_stopping_patience = patience
  c.eval.num_heatmaps = 0
  return c


def test_a_run_stops_after_patience_flat_evaluations_and_a_rerun_is_a_no_op(tmp_path):
  config = _config(patience=2)
  summary = training.train_and_evaluate(config, str(tmp_path))
  # Evaluations at 5, 10, 15: the first is the best, two more without improvement; the test
  # sees the best checkpoint (the checkpointer's pick among the equal losses).
  assert summary["stopped_early"] and summary["step"] == 15
  assert summary["tested_step"] == summary["best_step"]
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in records if r["split"] == "valid"] == [5, 10, 15]
  assert [r["step"] for r in records if r["split"] == "test"] == [summary["best_step"]]
  before = (tmp_path / "metrics.jsonl").read_bytes()
  again = training.train_and_evaluate(config, str(tmp_path))
  assert again == summary and (tmp_path / "metrics.jsonl").read_bytes() == before


def test_without_patience_the_run_trains_every_step(tmp_path):
  config = _config(patience=0)
  config.train.num_steps = 15
  summary = training.train_and_evaluate(config, str(tmp_path))
  assert not summary["stopped_early"] and summary["step"] == 15


def test_a_run_that_trains_every_step_is_tested_at_its_best_checkpoint(tmp_path):
  config = _config(patience=0)
  config.train.num_steps = 15
  # Far too large a learning rate: the validation loss is lowest at the first evaluation and
  # grows after it, so the best checkpoint is step 5's, not the last step's.
  config.train.learning_rate = 3.0
  summary = training.train_and_evaluate(config, str(tmp_path))
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  valid = {r["step"]: r["loss"] for r in records if r["split"] == "valid"}
  assert valid[5] < min(valid[10], valid[15])
  assert not summary["stopped_early"] and summary["step"] == 15
  assert summary["best_step"] == summary["tested_step"] == 5
  assert [r["step"] for r in records if r["split"] == "test"] == [5]


def test_improvements_smaller_than_min_delta_do_not_keep_a_run_going(tmp_path):
  config = _config(patience=2)
  config.train.learning_rate = 1e-2  # the loss falls at every evaluation, by less than 100
  config.train.early_stopping_min_delta = 100.0
  summary = training.train_and_evaluate(config, str(tmp_path))
  assert summary["stopped_early"] and summary["step"] == 15


def test_negative_patience_is_a_config_error():
  config = _config(patience=-1)
  with pytest.raises(ConfigError, match="early_stopping_patience"):
    validate(config)


def test_negative_min_delta_is_a_config_error():
  config = _config(patience=2)
  config.train.early_stopping_min_delta = -0.01
  with pytest.raises(ConfigError, match="early_stopping_min_delta"):
    validate(config)
