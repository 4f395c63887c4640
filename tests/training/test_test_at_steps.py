"""``eval.test_at_steps``: the test split evaluated at fixed training steps (matched-step
comparisons), through the real training loop, with several steps per dispatch and with vmapped
seeds."""

import json

import pytest

from attnlab import training
from attnlab.config import ConfigError, validate
from attnlab.defaults import base_config


def _config():
  c = base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, 4
  c.data.num_train, c.data.num_valid, c.data.num_test = 200, 20, 20
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 8, 32, 1
  c.model.emb_dim, c.model.hidden_dim = 8, 16
  c.train.num_steps = 12
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 6
  c.train.steps_per_dispatch = 4  # step 3 falls inside a dispatch unless the loop stops there
  c.eval.test_at_steps = (3, 6)
  c.eval.num_heatmaps = 0
  return c


def _records(path):
  return [json.loads(line) for line in open(path)]


@pytest.mark.slow
def test_the_test_split_is_evaluated_at_each_listed_step(tmp_path):
  summary = training.train_and_evaluate(_config(), str(tmp_path))
  records = _records(tmp_path / "metrics.jsonl")
  at_step = [r for r in records if r["split"] == "test_at_step"]
  assert [r["step"] for r in at_step] == [3, 6]
  assert all(r["num_examples"] == 20 for r in at_step)
  for step in (3, 6):
    assert len(_records(tmp_path / f"test_outcomes_step{step}.jsonl")) == 20
  # The final test is the best checkpoint's, apart from the matched-step ones.
  assert [r["step"] for r in records if r["split"] == "test"] == [summary["tested_step"]]


@pytest.mark.slow
def test_vmapped_seeds_write_each_seeds_matched_step_outcomes(tmp_path):
  config = _config()
  config.num_seeds = 2
  config.train.steps_per_dispatch = 1
  training.train_and_evaluate(config, str(tmp_path))
  for seed in ("seed_0", "seed_1"):
    records = _records(tmp_path / seed / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "test_at_step"] == [3, 6]
    assert (tmp_path / seed / "test_outcomes_step3.jsonl").is_file()


@pytest.mark.parametrize("value", [(0,), (3, 3), (-1,), (2.5,), (True,)])
def test_bad_steps_are_a_config_error(value):
  config = _config()
  config.eval.test_at_steps = value
  with pytest.raises(ConfigError, match="eval.test_at_steps"):
    validate(config)
