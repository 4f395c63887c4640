"""attnlab.training.steps: schedules, gradient accumulation (optax.MultiSteps) and
reduce-on-plateau, in-process."""

import pathlib
import shutil
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import training
from attnlab.data import TrainBatches
from attnlab.defaults import base_config
from attnlab.training import multiseed, steps

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from test_multiseed import assert_trees_close, separate_run  # noqa: E402
from test_multiseed import tiny_config as multiseed_config  # noqa: E402


def _train_config(**changes):
  c = base_config("date").train
  c.learning_rate, c.warmup_steps, c.num_steps = 1.0, 4, 100
  for key, value in changes.items():
    c[key] = value
  return c


@pytest.mark.parametrize("schedule,values", [
    # step: learning rate (peak 1, warmup 4, num_steps 100)
    ("cosine", {0: 0.0, 2: 0.5, 4: 1.0, 52: 0.55, 100: 0.1}),
    ("constant", {0: 0.0, 2: 0.5, 4: 1.0, 60: 1.0}),
    # Vaswani et al. (2017): peak * sqrt(warmup / step) after the warmup.
    ("inverse_sqrt", {0: 0.0, 2: 0.5, 4: 1.0, 16: 0.5, 64: 0.25, 100: 0.2}),
    ("reduce_on_plateau", {0: 0.0, 2: 0.5, 4: 1.0, 99: 1.0}),  # times the plateau scale
])
def test_each_schedule_at_known_steps(schedule, values):
  lr = steps.make_schedule(_train_config(schedule=schedule))
  for step, expected in values.items():
    assert float(lr(step)) == pytest.approx(expected, abs=1e-6), step


def test_inverse_sqrt_without_warmup_starts_at_the_peak():
  lr = steps.make_schedule(_train_config(schedule="inverse_sqrt", warmup_steps=0))
  assert [float(lr(s)) for s in (0, 1, 4, 100)] == pytest.approx([1.0, 1.0, 0.5, 0.1])


def test_reduce_on_plateau_lowers_the_rate_after_patience_windows_without_improvement():
  c = _train_config(schedule="reduce_on_plateau", warmup_steps=0, plateau_window=2,
                    plateau_patience=2, plateau_factor=0.5)
  tx = steps.make_optimizer(c)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  assert steps.learning_rate_scale(steps.make_optimizer(_train_config()).init(params)) is None
  scales = []
  for loss in [4, 3, 2, 1] + [1] * 10:  # window means 3.5, 1.5, then 1 for ever
    _, state = tx.update(params, state, params, value=jnp.float32(loss))
    scales.append(float(steps.learning_rate_scale(state)))
  # Windows end at steps 1, 3, 5, ...; the window ending at 5 is the last improvement, those
  # ending at 7 and 9 are not: the scale halves at 9, and again two windows later, at 13.
  assert scales == [1.0] * 9 + [0.5] * 4 + [0.25]


def _fixed_length_config(**train):
  """A reverse task whose targets all have 4 tokens (+ EOS): micro-batches of equal row counts
  hold equal token counts, so averaging their mean losses is the big batch's mean loss."""
  c = base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 4, 4
  c.data.num_train, c.data.num_valid, c.data.num_test = 64, 8, 8
  c.batching.num_buckets = 1
  c.model.emb_dim, c.model.hidden_dim = 8, 16  # dropout_rate 0: micro-steps are deterministic
  c.train.warmup_steps, c.train.num_steps = 2, 12
  for key, value in train.items():
    c.train[key] = value
  return c


def test_k_micro_batches_of_b_equal_one_step_of_batch_k_times_b():
  k, b, updates = 4, 4, 3
  big_config = _fixed_length_config(num_steps=12, warmup_steps=2)
  # num_steps and warmup_steps count micro-batches: k times the big run's.
  accum_config = _fixed_length_config(num_steps=12 * k, warmup_steps=2 * k, grad_accum_steps=k)
  prepared = training.prepare(big_config)
  task = prepared.task
  big = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, k * b, prepared.buckets, 0)
  big_state = training.init_state(big_config, prepared)
  accum_state = training.init_state(accum_config, prepared)
  rng = jax.random.key(0)
  for update in range(updates):
    batch = big.batch(update)
    batch.pop("index")
    assert batch["example_mask"].all()
    before = jax.tree.map(np.array, accum_state.params)
    for i in range(k):
      micro = {key: value[i * b:(i + 1) * b] for key, value in batch.items()}
      accum_state, _ = training.train_step(accum_state, micro, rng)
      if i < k - 1:  # no update before the k-th micro-batch
        assert_trees_close(accum_state.params, before, rtol=0, atol=0)
    big_state, _ = training.train_step(big_state, batch, rng)
    assert int(accum_state.step) == k * (update + 1)
    assert_trees_close(accum_state.params, big_state.params, rtol=1e-5, atol=1e-6)


def test_a_run_resumed_between_two_accumulated_updates_equals_an_uninterrupted_one(tmp_path):
  config = _fixed_length_config(num_steps=12, grad_accum_steps=4)
  config.batching.batch_size = 8
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 6
  config.train.keep_checkpoints = 3
  config.eval.num_heatmaps = 0
  straight, resumed = str(tmp_path / "straight"), tmp_path / "resumed"
  training.train_and_evaluate(config, straight)
  training.train_and_evaluate(config, str(resumed))
  # As if killed after saving step 6, mid-accumulation (6 % 4 == 2 micro-batches held in the
  # optimizer state), before step 12.
  shutil.rmtree(resumed / "checkpoints" / "12")
  (resumed / "summary.json").unlink()
  training.train_and_evaluate(config, str(resumed))
  final = [training.restore_for_inference(config, path, "latest")[0]
           for path in (straight, str(resumed))]
  assert_trees_close(final[0].params, final[1].params, rtol=0, atol=0)


def test_vmapped_seeds_with_token_batches_and_accumulation_equal_separate_runs():
  config = multiseed_config(num_seeds=2)
  config.batching.max_tokens = 40
  config.train.grad_accum_steps = 2
  prepared = training.prepare(config)
  separate = [separate_run(config, seed, prepared, 4) for seed in multiseed.seed_values(config)]
  states = multiseed.init_states(config, prepared)
  batches = multiseed.seed_batches(config, prepared)
  # Rows differ by bucket, and the seeds' batches differ in shape at some step.
  assert len(set(batches[0].rows)) > 1
  assert any(len({b.batch(s)["src"].shape for b in batches}) > 1 for s in range(4))
  rngs = multiseed.dropout_keys(config)
  for step in range(4):
    states, _ = multiseed.step_all(states, batches, step, rngs, config.train)
  for s, (_, state, _) in enumerate(separate):
    assert_trees_close(multiseed.unstack(states, s).params, state.params, rtol=1e-4, atol=1e-6)
    assert_trees_close(multiseed.unstack(states, s).opt_state, state.opt_state, rtol=1e-4,
                       atol=1e-6)
