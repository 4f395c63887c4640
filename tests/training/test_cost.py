"""A run's training cost in summary.json (attnlab.training.cost): train steps per second
always, the train step's XLA memory with ``train.measure_memory``, for one model and for
vmapped seeds; the memory grows with the batch and the source length."""

import pytest

from attnlab import training
from attnlab.config import ConfigError, base_config, validate
from attnlab.training import cost, loop, preparation


def test_timer_leaves_out_the_first_window_which_holds_compilation():
  timer = cost.TrainTimer(0)
  assert timer.steps_per_second() == (None, 0)
  timer.windows = [(10, 5.0)]  # the only window: reported, compilation included
  assert timer.steps_per_second() == (2.0, 0)
  timer.windows = [(10, 5.0), (10, 0.1), (10, 0.2), (5, 0.01)]
  assert timer.steps_per_second() == (100.0, 3)  # median of 100, 50, 500


def test_timer_times_only_between_stop_and_start():
  timer = cost.TrainTimer(0)
  timer.stop(4, {"loss": 1.0})
  timer.start(4)
  timer.stop(4, None)  # no steps since: no window
  assert [steps for steps, _ in timer.windows] == [4]
  assert all(seconds > 0 for _, seconds in timer.windows)


def _config(num_seeds=1, batch_size=8, max_len=4):
  c = base_config("reverse")
  c.num_seeds = num_seeds
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, max_len
  c.data.num_train, c.data.num_valid, c.data.num_test = 200, 20, 20
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = batch_size, 32, 1
  c.model.emb_dim, c.model.hidden_dim, c.model.cell = 8, 16, "rnn"
  c.train.num_steps = 12
  c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 3, 6, 12
  c.eval.num_heatmaps = 0
  return c


def test_measure_memory_is_off_by_default_and_must_be_a_bool():
  assert base_config("date").train.measure_memory is False
  config = _config()
  config.train.measure_memory = None  # (ConfigDict itself refuses an int for a bool)
  with pytest.raises(ConfigError, match="config.train.measure_memory: must be True or False"):
    validate(config)


@pytest.mark.slow
@pytest.mark.parametrize("num_seeds", [1, 2])
def test_summary_records_the_cost_of_training(tmp_path, num_seeds):
  config = _config(num_seeds=num_seeds)
  config.train.measure_memory = True
  summary = training.train_and_evaluate(config, str(tmp_path))
  c = summary["cost"]
  assert set(c) == {"train_steps_per_second", "train_timing_windows", "train_step_memory_bytes",
                    "train_step_temp_bytes", "peak_memory_source"}
  assert c["train_steps_per_second"] > 0
  assert c["train_timing_windows"] == 3  # windows end at steps 3, 6, 9, 12; the first left out
  assert c["train_step_memory_bytes"] > c["train_step_temp_bytes"] > 0
  assert "memory_analysis" in c["peak_memory_source"]
  assert (f"{num_seeds} seeds vmapped" if num_seeds > 1 else "one model") in (
      c["peak_memory_source"])


@pytest.mark.slow
def test_without_measure_memory_only_the_rate_is_recorded(tmp_path):
  summary = training.train_and_evaluate(_config(), str(tmp_path))
  assert summary["cost"]["train_steps_per_second"] > 0
  assert summary["cost"]["train_step_memory_bytes"] is None
  assert "not measured" in summary["cost"]["peak_memory_source"]


def _memory(config) -> dict:
  prepared = preparation.prepare(config)
  return cost.train_step_memory(loop.make_stepper(config, prepared))


@pytest.mark.slow
def test_memory_grows_with_batch_size_and_source_length():
  small = _memory(_config(batch_size=8, max_len=4))
  wider = _memory(_config(batch_size=32, max_len=4))
  longer = _memory(_config(batch_size=8, max_len=12))
  for key in ("train_step_memory_bytes", "train_step_temp_bytes"):
    assert wider[key] > small[key] and longer[key] > small[key], key
  assert "batch 32" in wider["peak_memory_source"]
  assert "src_len 12" in longer["peak_memory_source"]
