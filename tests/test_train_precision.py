"""bfloat16 training (config.model.dtype) learns the date task as float32 does."""

import jax
import numpy as np
import pytest

from attnlab import training
from attnlab.data import TrainBatches, eval_batches


def _token_accuracy_after_training(dtype: str, steps: int = 300) -> float:
  from configs.date import get_config
  config = get_config()
  config.data.num_train, config.data.num_valid = 2000, 200
  config.batching.batch_size, config.batching.num_buckets = 32, 1
  config.train.num_steps = steps
  config.model.dtype = dtype
  prepared = training.prepare(config)
  task = prepared.task
  state = training.init_state(config, prepared)
  batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 32, prepared.buckets,
                         config.seed)
  rng = jax.random.key(1)
  for step in range(steps):
    batch = batches.batch(step)
    batch.pop("index")
    state, _ = training.train_step(state, batch, rng)
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
  correct = tokens = 0
  for batch in eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 200, prepared.buckets):
    batch.pop("index")
    out = training.eval_step(state, batch)
    correct, tokens = correct + int(out["correct"]), tokens + int(out["tokens"])
  return correct / tokens


@pytest.mark.slow
def test_bfloat16_matches_float32_on_the_date_task():
  f32 = _token_accuracy_after_training("float32")
  bf16 = _token_accuracy_after_training("bfloat16")
  assert f32 > 0.95, f32  # the comparison is between two models that learned the task
  assert abs(bf16 - f32) < 0.02, (bf16, f32)
