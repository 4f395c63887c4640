"""The training loop in-process: resume is exact, steps learn, schedules, decode mode."""

import jax
import numpy as np
import pytest

from attnlab import training
from attnlab.data import TrainBatches
from attnlab.config import base_config


def tiny_config(num_steps=6, **model):
  c = base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, 5
  c.data.num_train, c.data.num_valid, c.data.num_test = 200, 20, 20
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 8, 32, 2
  c.model.emb_dim, c.model.hidden_dim = 8, 16
  c.model.dropout_rate = 0.1  # so the resume test covers dropout randomness too
  for k, v in model.items():
    c.model[k] = v
  c.train.num_steps = num_steps
  c.train.warmup_steps = 2
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = 3
  c.eval.num_heatmaps = 1
  return c


def test_train_steps_reduce_the_loss_on_a_fixed_batch():
  config = tiny_config(num_steps=1000)
  prepared = training.prepare(config)
  state = training.init_state(config, prepared)
  batches = TrainBatches(prepared.task.train, prepared.task.src_vocab,
                               prepared.task.tgt_vocab, 8, prepared.buckets, 0)
  batch = batches.batch(0)
  batch.pop("index")
  rng = jax.random.key(0)
  losses = []
  for _ in range(80):
    state, m = training.train_step(state, batch, rng)
    losses.append(float(m["loss"]))
  assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
  assert int(state.step) == 80


def test_schedule_warms_up_then_decays():
  c = base_config("date").train
  c.learning_rate, c.warmup_steps, c.num_steps = 1.0, 10, 110
  schedule = training.make_schedule(c)
  assert float(schedule(0)) == 0.0
  assert float(schedule(5)) == pytest.approx(0.5)
  assert float(schedule(10)) == pytest.approx(1.0)
  assert float(schedule(110)) == pytest.approx(0.1)
  c.schedule = "constant"
  assert float(training.make_schedule(c)(60)) == pytest.approx(1.0)


def test_each_task_owns_its_text():
  """Training, evaluation and decode tokenize through the task: no branch on task names."""
  from attnlab.data import build_task
  date = base_config("date").data
  date.num_train, date.num_valid, date.num_test = 20, 5, 5
  task = build_task(date)
  assert task.src_tokenizer.tokenize(" 98-03-23 ") == tuple("98-03-23")
  assert task.tgt_tokenizer.detokenize(["23", "/", "Mar", "/"]) == "23/Mar/"
  reverse = build_task(base_config("reverse").data)
  assert reverse.src_tokenizer.tokenize("a b  c") == ("a", "b", "c")
  assert reverse.tgt_tokenizer.detokenize(["a", "b"]) == "a b"


@pytest.mark.slow
def test_decode_lines_unknowns_empty_lines_and_too_long_inputs(tmp_path):
  config = tiny_config(num_steps=3)
  training.train_and_evaluate(config, str(tmp_path))
  outputs = training.decode_lines(config, str(tmp_path), ["a b", "", "zz a"])
  assert len(outputs) == 3 and outputs[1] == ""
  assert all(t in training.prepare(config).task.tgt_vocab.tokens for t in outputs[0].split())
  with pytest.raises(ValueError, match="line 2 has 9 tokens"):
    training.decode_lines(config, str(tmp_path), ["a", "a " * 9])
  config.eval.on_long_input = "truncate"
  long_line = "a b c d e f a b c"
  max_src_len = training.prepare(config).max_src_len
  truncated = " ".join(long_line.split()[:max_src_len])
  assert training.decode_lines(config, str(tmp_path), [long_line]) == \
      training.decode_lines(config, str(tmp_path), [truncated])
