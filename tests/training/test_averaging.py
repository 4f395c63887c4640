"""Checkpoint averaging: the mean of parameter trees, which checkpoints last:K and best:K
name, and the average read back from a workdir's checkpoints without touching them."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab.checkpointing import Checkpointer
from attnlab.training import averaging
from attnlab.training.steps import TrainState
from attnlab.training.workdir import WorkdirError


def tree(seed):
  """A parameter tree of two levels: {"encoder": {"kernel", "bias"}, "output": ...}."""
  rng = np.random.default_rng(seed)
  return {"encoder": {"kernel": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32),
                      "bias": jnp.asarray(rng.standard_normal(4), jnp.float32)},
          "output": jnp.asarray(rng.standard_normal((4, 2)), jnp.float32)}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_the_mean_of_k_identical_trees_is_that_tree_exactly(k):
  same = tree(0)
  mean = averaging.mean_tree([same] * k)
  for got, want in zip(jax.tree.leaves(mean), jax.tree.leaves(same)):
    np.testing.assert_array_equal(got, want)


def test_the_mean_of_two_known_trees():
  a = {"w": jnp.array([1.0, 2.0, -4.0]), "b": {"c": jnp.array([[0.5]])}}
  b = {"w": jnp.array([3.0, 0.0, 4.0]), "b": {"c": jnp.array([[1.5]])}}
  mean = averaging.mean_tree([a, b])
  np.testing.assert_allclose(mean["w"], [2.0, 1.0, 0.0])
  np.testing.assert_allclose(mean["b"]["c"], [[1.0]])
  three = averaging.mean_tree([tree(0), tree(1), tree(2)])
  np.testing.assert_allclose(three["output"], (tree(0)["output"] + tree(1)["output"] +
                                               tree(2)["output"]) / 3, rtol=1e-6, atol=1e-6)


def test_parse_choice():
  assert averaging.parse_choice("last:5") == averaging.Choice("last", 5)
  assert averaging.parse_choice("best:1") == averaging.Choice("best", 1)
  for bad in ("last", "last:0", "first:2", "best:x", "best:-1", ""):
    with pytest.raises(WorkdirError, match="use last:K or best:K"):
      averaging.parse_choice(bad)


def test_select_steps_newest_or_lowest_validation_loss():
  steps = [10, 20, 30, 40]
  losses = {10: 3.0, 20: 1.0, 30: 2.0, 40: 1.0, 50: 0.1}  # 50: no checkpoint left
  assert averaging.select_steps(steps, losses, averaging.Choice("last", 2)) == [40, 30]
  # best: the lowest losses (a tie goes to the newer), listed newest first
  assert averaging.select_steps(steps, losses, averaging.Choice("best", 2)) == [40, 20]
  assert averaging.select_steps(steps, losses, averaging.Choice("best", 3)) == [40, 30, 20]
  with pytest.raises(WorkdirError, match="last:5 needs 5 checkpoints; the run has 4"):
    averaging.select_steps(steps, losses, averaging.Choice("last", 5))
  with pytest.raises(WorkdirError, match="has 2 checkpoints with a validation loss"):
    averaging.select_steps(steps, {10: 1.0, 20: 2.0}, averaging.Choice("best", 3))


def test_validation_losses_read_metrics_jsonl(tmp_path):
  rows = [{"step": 5, "split": "train", "loss": 9.0}, {"step": 5, "split": "valid", "loss": 3.0},
          {"step": 10, "split": "valid", "loss": 2.0}, {"step": 10, "split": "valid", "loss": 1.5}]
  text = "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 15, "spl'  # cut by a crash
  (tmp_path / "metrics.jsonl").write_text(text)
  assert averaging.validation_losses(str(tmp_path)) == {5: 3.0, 10: 1.5}


def saved_states(workdir, params_by_step):
  """Checkpoints of TrainStates holding ``params_by_step`` under ``workdir/checkpoints``."""
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=10)
  state = None
  for step, params in params_by_step.items():
    state = TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1)).replace(
        step=jnp.asarray(step))
    ckpt.save(step, state)
  ckpt.close()
  return state


def listing(folder):
  """Every file under ``folder`` with its size and modification time."""
  paths = [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files]
  return sorted((os.path.relpath(p, folder), os.stat(p).st_size, os.stat(p).st_mtime_ns)
                for p in paths)


def test_restore_average_of_identical_checkpoints_gives_the_same_parameters(tmp_path):
  same = tree(0)
  target = saved_states(tmp_path, {1: same, 2: same, 3: same})
  before = listing(tmp_path)
  steps = averaging.chosen_steps(str(tmp_path), averaging.Choice("last", 3))
  state = averaging.restore_average(str(tmp_path), steps, target)
  assert steps == [3, 2, 1] and int(state.step) == 3
  for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(same)):
    np.testing.assert_array_equal(got, want)
  assert listing(tmp_path) == before  # read only: nothing created, moved or rewritten


def test_restore_average_of_the_last_two(tmp_path):
  target = saved_states(tmp_path, {1: tree(1), 2: tree(2), 3: tree(3)})
  steps = averaging.chosen_steps(str(tmp_path), averaging.Choice("last", 2))
  state = averaging.restore_average(str(tmp_path), steps, target)
  assert steps == [3, 2]
  np.testing.assert_allclose(state.params["output"], (tree(2)["output"] + tree(3)["output"]) / 2,
                             rtol=1e-6)


def test_a_new_folder_is_never_written_over(tmp_path):
  (tmp_path / "used").mkdir()
  (tmp_path / "used" / "notes.txt").write_text("mine")
  (tmp_path / "empty").mkdir()
  averaging.check_new_folder(str(tmp_path / "new"), str(tmp_path / "run"))
  averaging.check_new_folder(str(tmp_path / "empty"), str(tmp_path / "run"))
  for out, needle in ((tmp_path / "used", "already exists"), (tmp_path / "run", "is --workdir"),
                      (tmp_path / "run" / "checkpoints" / "x", "inside the run's checkpoints"),
                      (tmp_path / "no" / "such", "parent folder does not exist")):
    with pytest.raises(WorkdirError, match=needle):
      averaging.check_new_folder(str(out), str(tmp_path / "run"))
  assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
