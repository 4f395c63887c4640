"""attnlab.training.multiseed: N seeds vmapped in one program equal N separate runs."""

import json

import jax
import numpy as np
import pytest

from attnlab import training
from attnlab.training import multiseed
from attnlab.config import ConfigError, base_config, validate


def tiny_config(num_seeds=2, num_steps=4):
  c = base_config("reverse")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 6, 1, 8
  c.data.num_train, c.data.num_valid, c.data.num_test = 120, 16, 16
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 8, 16, 2
  c.model.emb_dim, c.model.hidden_dim = 8, 16
  c.model.dropout_rate = 0.1  # dropout keys must match too
  c.num_seeds = num_seeds
  c.seed = 3
  c.train.num_steps = num_steps
  c.train.warmup_steps = 1
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = num_steps
  c.eval.num_heatmaps = 1
  return c


def separate_run(config, seed, prepared, steps):
  """What training.train_and_evaluate does for `seed`, step by step: (initial, final, losses)."""
  single = config.copy_and_resolve_references()
  single.seed, single.num_seeds = seed, 1
  state = training.init_state(single, prepared)
  initial = jax.tree.map(np.array, state.params)  # train_step donates (deletes) its input
  batches = multiseed.seed_batches(single, prepared)[0]
  rng = jax.random.fold_in(jax.random.key(seed), 1)
  losses = []
  for step in range(steps):
    batch = batches.batch(step)
    batch.pop("index")
    state, metrics = training.train_step(state, batch, rng, label_smoothing=0.0,
                                      on_nonfinite="skip")
    losses.append(float(metrics["loss"]))
  return initial, state, losses


def assert_trees_close(a, b, **tolerance):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def test_vmapped_seeds_equal_separate_runs():
  config = tiny_config(num_seeds=2)
  prepared = training.prepare(config)
  assert multiseed.seed_values(config) == [3, 4]
  steps = 4
  separate = [separate_run(config, seed, prepared, steps)
              for seed in multiseed.seed_values(config)]
  states = multiseed.init_states(config, prepared)
  for s, (initial, _, _) in enumerate(separate):  # the same initial parameters, bitwise
    assert_trees_close(multiseed.unstack(states, s).params, initial, rtol=0, atol=0)
  batches = multiseed.seed_batches(config, prepared)
  rngs = multiseed.dropout_keys(config)
  # The two seeds' data orders put them in different buckets at some step, so the
  # one-call-per-bucket masking is exercised, not only the all-in-one-bucket case.
  shapes = [{b.batch(step)["src"].shape for b in batches} for step in range(steps)]
  assert any(len(s) > 1 for s in shapes), shapes
  losses = []
  for step in range(steps):
    states, metrics = multiseed.step_all(states, batches, step, rngs, config.train)
    losses.append([float(metrics[s]["loss"][s]) for s in range(2)])
  for s, (_, state, separate_losses) in enumerate(separate):
    mine = multiseed.unstack(states, s)
    assert int(mine.step) == int(state.step) == steps
    np.testing.assert_allclose([l[s] for l in losses], separate_losses, rtol=1e-5)
    assert_trees_close(mine.params, state.params, rtol=1e-4, atol=1e-6)
    assert_trees_close(mine.opt_state, state.opt_state, rtol=1e-4, atol=1e-6)
  # Different seeds really are different runs.
  first, second = (multiseed.unstack(states, s).params for s in range(2))
  assert not np.allclose(jax.tree.leaves(first)[0], jax.tree.leaves(second)[0])


@pytest.mark.slow
def test_train_and_evaluate_reports_every_seed(tmp_path):
  config = tiny_config(num_seeds=2, num_steps=3)
  config.batching.num_buckets = 1  # one shape: fewer compilations
  summary = training.train_and_evaluate(config, str(tmp_path / "both"))
  assert summary["num_seeds"] == 2 and summary["step"] == 3
  assert [s["seed"] for s in summary["seeds"]] == [3, 4]
  saved = json.loads((tmp_path / "both" / "summary.json").read_text())
  assert saved["seeds"][1]["test"]["exact_match_by_length"]
  for entry in saved["seeds"]:
    seed_dir = tmp_path / "both" / entry["workdir"]
    steps = [json.loads(line)["step"] for line in (seed_dir / "metrics.jsonl").open()]
    assert steps == [3, 3, 3]  # train, valid, test
    assert all((tmp_path / "both" / p).exists() for p in entry["heatmaps"])
    assert entry["longest_test_example"]["attention"]
  means = [s["test"]["loss"] for s in summary["seeds"]]
  assert summary["test"]["loss"] == pytest.approx(np.mean(means))

  # Seed 4 alone, as its own run: the same test results.
  alone = config.copy_and_resolve_references()
  alone.seed, alone.num_seeds = 4, 1
  single = training.train_and_evaluate(alone, str(tmp_path / "alone"))
  mine = summary["seeds"][1]["test"]
  assert mine["exact_match"] == single["test"]["exact_match"]
  assert mine["loss"] == pytest.approx(single["test"]["loss"], rel=1e-5)
  assert mine["alignment_error_rate"] == pytest.approx(single["test"]["alignment_error_rate"])

  # Eval / decode modes restore one model: a multi-seed workdir is refused clearly.
  with pytest.raises(ConfigError, match="num_seeds"):
    training.restore_for_inference(config, str(tmp_path / "both"))


def test_num_seeds_is_validated():
  config = tiny_config()
  config.num_seeds = 0
  with pytest.raises(ConfigError, match="num_seeds"):
    validate(config)
