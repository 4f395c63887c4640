"""Crashes, signals, corrupted checkpoints and non-finite losses lose nothing.

The kill and terminate cases run `python -m attnlab.main` in subprocesses and
send real signals.
"""

import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import checkpointing, training
from attnlab.data import TrainBatches

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_train import tiny_config  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
# Subprocesses share one compilation cache (never the user's): identical programs compile once.
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
       "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}
STEPS = 300
ARGS = [f"--config={REPO / 'configs' / 'reverse.py'}:quick", f"--config.train.num_steps={STEPS}",
        "--config.train.checkpoint_every=100", "--config.train.log_every=100",
        f"--config.train.eval_every={STEPS}", "--config.model.dropout_rate=0.1"]


def command(workdir):
  return [sys.executable, "-m", "attnlab.main", f"--workdir={workdir}", *ARGS]


def _reverse_config():
  spec = importlib.util.spec_from_file_location("reverse_config", REPO / "configs" / "reverse.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("quick")
  config.train.num_steps, config.train.checkpoint_every = STEPS, 100
  config.train.log_every, config.train.eval_every = 100, STEPS
  config.model.dropout_rate = 0.1
  return config


def final_state(workdir):
  """Parameters of the latest checkpoint (restored in this process), by leaf."""
  state, _, step = training.restore_for_inference(_reverse_config(), str(workdir), "latest")
  assert step == STEPS
  return {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(state.params))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of the same command."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  subprocess.run(command(workdir), env=ENV, cwd=REPO, check=True, capture_output=True,
                 timeout=600)
  return workdir, final_state(workdir), json.loads((workdir / "summary.json").read_text())


def start_and_signal(workdir, sig):
  """Starts training and sends `sig` once the first checkpoint exists; returns the process."""
  proc = subprocess.Popen(command(workdir), env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while not (workdir / "checkpoints" / "100").exists():
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.02)
  proc.send_signal(sig)
  proc.wait(timeout=120)
  return proc


def assert_same_run(workdir, reference):
  _, ref_state, ref_summary = reference
  state = final_state(workdir)
  assert state.keys() == ref_state.keys()
  for key in ref_state:
    np.testing.assert_array_equal(state[key], ref_state[key], err_msg=key)
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["step"] == STEPS
  assert summary["test"] == ref_summary["test"]


@pytest.mark.slow
def test_kill_9_then_rerun_equals_uninterrupted_run(tmp_path, reference):
  proc = start_and_signal(tmp_path, signal.SIGKILL)
  assert proc.returncode == -signal.SIGKILL
  assert not (tmp_path / "summary.json").exists()
  subprocess.run(command(tmp_path), env=ENV, cwd=REPO, check=True, capture_output=True,
                 timeout=600)
  assert_same_run(tmp_path, reference)
  steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()
           if json.loads(line)["split"] == "train"]
  assert steps == list(range(100, STEPS + 1, 100))  # no duplicates from the killed run


@pytest.mark.slow
def test_sigterm_saves_then_exits_cleanly_and_the_rerun_resumes(tmp_path, reference):
  proc = start_and_signal(tmp_path, signal.SIGTERM)
  _, stderr = proc.communicate()
  assert proc.returncode == 128 + signal.SIGTERM, stderr
  assert "stopped by SIGTERM at step" in stderr and "Traceback" not in stderr
  stopped_at = int(stderr.split("at step ")[1].split(";")[0])
  assert stopped_at >= 100 and (tmp_path / "checkpoints" / str(stopped_at)).exists()
  subprocess.run(command(tmp_path), env=ENV, cwd=REPO, check=True, capture_output=True,
                 timeout=600)
  assert_same_run(tmp_path, reference)


@pytest.mark.slow
def test_sigint_saves_then_exits_cleanly(tmp_path):
  proc = start_and_signal(tmp_path, signal.SIGINT)
  _, stderr = proc.communicate()
  assert proc.returncode == 128 + signal.SIGINT, stderr
  assert "stopped by SIGINT at step" in stderr and "Traceback" not in stderr
  stopped_at = int(stderr.split("at step ")[1].split(";")[0])
  assert (tmp_path / "checkpoints" / str(stopped_at)).exists()
  assert not (tmp_path / "summary.json").exists()


def _corrupt(step_dir: pathlib.Path) -> None:
  for path in step_dir.rglob("*"):
    if path.is_file() and path.stat().st_size > 0:
      path.write_bytes(b"\0garbage")


@pytest.mark.slow
def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
  config = tiny_config(num_steps=6)
  training.train_and_evaluate(config, str(tmp_path / "straight"))
  workdir = tmp_path / "corrupted"
  training.train_and_evaluate(config, str(workdir))
  _corrupt(workdir / "checkpoints" / "6")
  ckpt = training.checkpointer(str(workdir), config)
  state = ckpt.restore_latest(training.init_state(config, training.prepare(config)))
  ckpt.close()
  assert int(state.step) == 3
  assert "corrupted or partial" in caplog.text
  assert len(list((workdir / "checkpoints_corrupted").iterdir())) == 1
  # A partial checkpoint (files missing) is detected the same way.
  for path in (workdir / "checkpoints" / "3").rglob("*"):
    if path.is_file() and path.name != "_CHECKPOINT_METADATA":
      path.unlink()
  # Nothing restores: training starts from scratch, the broken ones kept aside.
  ckpt = training.checkpointer(str(workdir), config)
  try:
    assert ckpt.restore_latest(training.init_state(config, training.prepare(config))) is None
  finally:
    ckpt.close()
  assert len(list((workdir / "checkpoints_corrupted").iterdir())) == 2


def _poisoned(state):
  """The state with a NaN output bias: every loss and gradient is non-finite."""
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x.at[0].set(jnp.nan) if "'output']['bias" in jax.tree_util.keystr(path)
      else x, state.params)
  return state.replace(params=params)


@pytest.mark.parametrize("mode", ["skip", "stop"])
def test_nonfinite_updates_never_reach_the_parameters(mode):
  config = tiny_config()
  config.train.schedule, config.train.warmup_steps = "constant", 0  # lr > 0 from step 0
  prepared = training.prepare(config)
  good = training.init_state(config, prepared)
  batches = TrainBatches(prepared.task.train, prepared.task.src_vocab,
                               prepared.task.tgt_vocab, 8, prepared.buckets, 0)
  batch = batches.batch(0)
  batch.pop("index")
  copy = lambda tree: jax.tree.map(jnp.copy, tree)  # noqa: E731  (train_step donates its state)
  bad = copy(_poisoned(good))
  before = jax.tree.map(np.asarray, bad.params)
  state, metrics = training.train_step(bad, batch, jax.random.key(0), on_nonfinite=mode)
  assert not np.isfinite(float(metrics["loss"]))
  for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(x, np.asarray(y))
  good_params = jax.tree.map(np.asarray, good.params)
  assert int(state.step) == 1 and int(state.nonfinite_steps) == 1
  assert int(state.first_nonfinite_step) == 0
  # After a non-finite step, 'skip' goes on updating with good numbers; 'stop' freezes.
  state = state.replace(params=copy(good.params))
  state, _ = training.train_step(state, batch, jax.random.key(0), on_nonfinite=mode)
  changed = any(not np.array_equal(np.asarray(a), np.asarray(b))
                for a, b in zip(jax.tree.leaves(good_params), jax.tree.leaves(state.params)))
  assert changed == (mode == "skip")


@pytest.mark.slow
def test_stop_mode_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  config = tiny_config(num_steps=9)
  training.train_and_evaluate(tiny_config(num_steps=3), str(tmp_path))  # good checkpoint at 3
  config.train.on_nonfinite = "stop"
  real_restore = checkpointing.Checkpointer.restore_latest
  monkeypatch.setattr(checkpointing.Checkpointer, "restore_latest",
                      lambda self, target: _poisoned(real_restore(self, target)))
  with pytest.raises(training.NonFiniteError, match="at step 4"):
    training.train_and_evaluate(config, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


@pytest.mark.slow
def test_skip_mode_counts_and_finishes(tmp_path, monkeypatch):
  monkeypatch.setattr(training.loop, "init_state", lambda c, p, real=training.init_state: _poisoned(real(c, p)))
  summary = training.train_and_evaluate(tiny_config(num_steps=6), str(tmp_path))
  assert summary["nonfinite_steps"] == 6 and summary["step"] == 6


@jax.custom_vjp
def _nan_gradient(x):
  return x


_nan_gradient.defvjp(lambda x: (x, None), lambda _, g: (jnp.full_like(g, jnp.nan),))


def _one_batch(config, prepared):
  batches = TrainBatches(prepared.task.train, prepared.task.src_vocab,
                               prepared.task.tgt_vocab, 8, prepared.buckets, 0)
  batch = batches.batch(0)
  batch.pop("index")
  return batch


@pytest.mark.parametrize("poison", ["nan_gradient", "nan_learning_rate"])
def test_skipped_updates_keep_parameters_and_optimizer_state_bitwise(poison):
  """A finite loss with a NaN gradient, or finite gradients with a NaN learning rate (the
  update itself is NaN): the skip policy keeps parameters and optimizer state exactly."""
  import optax
  config = tiny_config()
  config.train.schedule, config.train.warmup_steps = "constant", 0
  prepared = training.prepare(config)
  state = training.init_state(config, prepared)
  if poison == "nan_learning_rate":
    tx = optax.adam(float("nan"))
    state = state.replace(tx=tx, opt_state=tx.init(state.params))
  else:
    def apply_fn(variables, *args, **kwargs):
      out = prepared.model.apply(variables, *args, **kwargs)
      if kwargs.get("method") is None and kwargs.get("mutable"):  # the training forward pass
        (logits, attention), sown = out
        return (_nan_gradient(logits), attention), sown
      return out
    state = state.replace(apply_fn=apply_fn)
  before = jax.tree.map(np.asarray, (state.params, state.opt_state))
  new_state, metrics = training.train_step(jax.tree.map(jnp.copy, state),
                                        _one_batch(config, prepared), jax.random.key(0))
  assert np.isfinite(float(metrics["loss"]))
  assert int(new_state.nonfinite_steps) == 1 and int(new_state.step) == 1
  after = jax.tree.map(np.asarray, (new_state.params, new_state.opt_state))
  for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
    np.testing.assert_array_equal(x, y)
