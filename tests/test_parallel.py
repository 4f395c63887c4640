"""Data parallelism (attnlab.parallel) on 8 emulated CPU devices, in subprocesses.

``XLA_FLAGS=--xla_force_host_platform_device_count=8`` must be set before JAX starts, so the
multi-device runs happen in a child interpreter; the parent (one device) restores what they
saved.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap

import jax
import numpy as np
import pytest

from attnlab import parallel, training
from attnlab.config import ConfigError

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
       "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
       "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}

# Three runs of one tiny date config in one 8-device process: the whole mesh, one device, and
# the whole mesh with 3 optimizer steps per dispatch. Each prints its training losses.
SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    from configs.date import get_config
    from attnlab import training
    assert jax.device_count() == 8, jax.devices()
    import numpy as np
    from attnlab import parallel
    mesh = parallel.make_mesh()
    rows = parallel.shard_batch({"x": np.arange(48).reshape(16, 3)}, mesh)["x"]
    assert rows.sharding.spec == jax.sharding.PartitionSpec("data")
    assert [s.data.shape for s in rows.addressable_shards] == [(2, 3)] * 8
    steps = parallel.shard_batch({"x": np.zeros((3, 16, 3))}, mesh, stacked=True)["x"]
    assert [s.data.shape for s in steps.addressable_shards] == [(3, 2, 3)] * 8
    out = {}
    for name, devices, per_dispatch in (("mesh8", 0, 1), ("mesh1", 1, 1), ("mesh8_x3", 8, 3)):
      config = get_config("quick")
      config.batching.batch_size = 16
      config.train.num_steps = 6
      config.train.log_every = 1
      config.train.eval_every = config.train.checkpoint_every = 6
      config.train.steps_per_dispatch = per_dispatch
      config.eval.num_heatmaps = 0
      config.parallel.num_devices = devices
      workdir = sys.argv[1] + "/" + name
      summary = training.train_and_evaluate(config, workdir)
      losses = [r["loss"] for r in map(json.loads, open(workdir + "/metrics.jsonl"))
                if r["split"] == "train"]
      out[name] = {"losses": losses, "test_loss": summary["test"]["loss"]}
    print("RESULT " + json.dumps(out))
""")


def _run_eight_devices(workdir):
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(workdir)], capture_output=True,
                        text=True, env=ENV, cwd=REPO, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_eight_devices_match_one_and_checkpoint_restores_on_one(tmp_path):
  result = _run_eight_devices(tmp_path)
  one, eight, grouped = result["mesh1"], result["mesh8"], result["mesh8_x3"]
  assert len(one["losses"]) == 6
  # Same global batch on 8 devices: the same losses, to float summation order.
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=2e-5)
  np.testing.assert_allclose(grouped["losses"], one["losses"], rtol=2e-5)
  # Training changed the model (the comparison above is not of constants).
  assert one["losses"][-1] < one["losses"][0]

  # The checkpoint written by the 8-device run restores here, on one device, and evaluates
  # to what the 8-device run measured.
  assert jax.device_count() == 1
  from configs.date import get_config
  config = get_config("quick")
  config.batching.batch_size = 16
  state, _, step = training.restore_for_inference(config, str(tmp_path / "mesh8"), "latest")
  assert step == 6
  assert all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(state.params))
  result = training.evaluate_checkpoint(config, str(tmp_path / "mesh8"), "latest")
  np.testing.assert_allclose(result["loss"], eight["test_loss"], rtol=1e-5)


def test_batch_that_does_not_split_over_devices_is_a_config_error():
  mesh = parallel.make_mesh()
  parallel.check_divisible(8 * mesh.devices.size, mesh)
  fake = type("FakeMesh", (), {"devices": np.empty(8)})()
  with pytest.raises(ValueError, match=r"12 rows do not divide by the 8 devices.*8 or 16"):
    parallel.check_divisible(12, fake)


def test_eight_device_cli_rejects_an_odd_batch(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "attnlab.main", "--config", "configs/date.py:quick", "--workdir",
       str(tmp_path), "--config.batching.batch_size=12"],
      capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "config.batching.batch_size: 12 rows do not divide by the 8 devices" in proc.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_too_many_devices_is_a_config_error():
  config = __import__("configs.date", fromlist=["get_config"]).get_config("quick")
  config.parallel.num_devices = jax.device_count() + 1
  with pytest.raises(ConfigError, match="parallel.num_devices"):
    training.data_parallel_mesh(config)


def test_one_device_mesh_places_batches_on_the_device():
  # One device: plain placement, not a 1-device NamedSharding (parallel._one_device says why).
  mesh = parallel.make_mesh(1)
  batch = {"src": np.arange(24).reshape(8, 3)}
  sharded = parallel.shard_batch(batch, mesh)
  np.testing.assert_array_equal(np.asarray(sharded["src"]), batch["src"])
  assert sharded["src"].sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0])
  stacked = parallel.shard_batch({"src": np.stack([batch["src"]] * 2)}, mesh, stacked=True)
  assert stacked["src"].shape == (2, 8, 3)


# Two JAX processes of two CPU devices each, joined by jax.distributed (config.parallel):
# the multi-host path (each process feeds its own rows; process 0 writes the outputs).
MULTI_PROCESS_SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_disable_most_optimizations", True)
    from attnlab import parallel, training
    sys.path.insert(0, "tests")
    from test_parallel import tiny_date_config
    process_id, port, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = tiny_date_config()
    config.parallel.distributed = True
    config.parallel.coordinator_address = "localhost:" + port
    config.parallel.num_processes = 2
    config.parallel.process_id = process_id
    parallel.initialize(config)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    summary = training.train_and_evaluate(config, workdir)
    print("RESULT " + json.dumps({"test_loss": summary["test"]["loss"]}))
""")


def tiny_date_config():
  """4 steps of the date task at batch 16, logging every step."""
  from configs.date import get_config
  config = get_config("quick")
  config.batching.batch_size = 16
  config.train.num_steps = 4
  config.train.log_every = 1
  config.train.eval_every = config.train.checkpoint_every = 4
  config.eval.num_heatmaps = 1
  return config


def _free_port():
  import socket
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return str(s.getsockname()[1])


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
  env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  port, workdir = _free_port(), tmp_path / "distributed"
  procs = [subprocess.Popen([sys.executable, "-c", MULTI_PROCESS_SCRIPT, str(i), port,
                             str(workdir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO) for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-4000:]
  results = [json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
             for out, _ in outputs]
  assert results[0] == results[1]  # both processes evaluated the same (replicated) model

  # The same config in this one-device process: the same losses and test loss.
  summary = training.train_and_evaluate(tiny_date_config(), str(tmp_path / "single"))
  losses = lambda d: [r["loss"] for r in map(json.loads, (d / "metrics.jsonl").open())  # noqa: E731
                      if r["split"] == "train"]
  assert len(losses(workdir)) == 4  # written once, by process 0
  np.testing.assert_allclose(losses(workdir), losses(tmp_path / "single"), rtol=2e-5)
  np.testing.assert_allclose(results[0]["test_loss"], summary["test"]["loss"], rtol=1e-5)
  assert (workdir / "summary.json").exists() and list(workdir.glob("attention_*.png"))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["4"]
