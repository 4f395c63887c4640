"""Trials as Ray tasks: ``experiments.sweep --launcher=ray``.

The same commands as the local launcher, each run by ``run_trial_on_worker`` in a Ray task on
a local Ray instance or a cluster (``--ray_address``), through the launchers' one queue
(``experiments.launch.run_queue``, with ``RayRunner``). Each task asks for
``--cpus_per_trial`` CPUs and ``--gpus_per_trial`` GPUs (default: one GPU on a cluster that
has them, since Ray hides every GPU from a task that asks for none); a trial runs XLA with at
most ``--cpus_per_trial`` compute threads (``trial_env``); ``--max_parallel`` defaults to what
the cluster holds at once (``ray_capacity``). Workers run the trials with their own Python
(``sys.executable`` on the worker) and need this checkout and ROOT at the same paths as the
driver (a shared filesystem). A stopped launcher cancels its Ray tasks; each worker passes
SIGTERM on to its trial and waits for it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from attnlab import run_record
from experiments import cli
from experiments.launch import (REPO, STDERR_TAIL_CHARS, StopSignals, run_queue, run_trial,
                                signal_name)


def check_trial_resources(cpus_per_trial: float, gpus_per_trial: float | None) -> None:
  """What Ray accepts: CPUs > 0; GPUs >= 0, fractional only below 1 (trials sharing a GPU)."""
  if not cpus_per_trial > 0:
    raise cli.UsageError(f"--cpus_per_trial={cpus_per_trial:g}: must be > 0")
  if gpus_per_trial is not None and (
      gpus_per_trial < 0 or (gpus_per_trial > 1 and not float(gpus_per_trial).is_integer())):
    raise cli.UsageError(f"--gpus_per_trial={gpus_per_trial:g}: must be 0, a fraction of "
                          "one GPU (trials sharing it) or a whole number")


def resolve_gpus_per_trial(gpus_per_trial: float | None, resources: Mapping[str, float]) -> float:
  """GPUs each trial asks Ray for. Unset: one on a cluster with GPUs, else none; Ray hides
  every GPU from a task that asks for none (``CUDA_VISIBLE_DEVICES=""``)."""
  available = float(resources.get("GPU", 0))
  if gpus_per_trial is None:
    return 1.0 if available >= 1 else 0.0
  if gpus_per_trial > available:
    raise cli.UsageError(f"--gpus_per_trial={gpus_per_trial:g}: the Ray cluster has "
                          f"{available:g} GPU(s)")
  return float(gpus_per_trial)


def ray_capacity(resources: Mapping[str, float], cpus_per_trial: float,
                 gpus_per_trial: float = 0.0) -> int:
  """Trials the cluster runs at once: ``CPU // cpus_per_trial``, and ``GPU // gpus_per_trial``
  when trials take GPUs (``ray.cluster_resources()`` now; an autoscaling cluster can grow)."""
  capacity = resources.get("CPU", 0) // cpus_per_trial
  if gpus_per_trial > 0:
    capacity = min(capacity, resources.get("GPU", 0) // gpus_per_trial)
  if capacity < 1:
    raise cli.UsageError(
        f"one trial needs {cpus_per_trial:g} CPU(s) and {gpus_per_trial:g} GPU(s); the Ray "
        f"cluster has {resources.get('CPU', 0):g} CPU(s) and {resources.get('GPU', 0):g} GPU(s)")
  return int(capacity)


def ray_task_options(cpus_per_trial: float, gpus_per_trial: float) -> dict:
  """``.options()`` of one trial's Ray task: its CPUs and GPUs (Ray points the task's
  ``CUDA_VISIBLE_DEVICES`` at the GPUs it assigns), no retries (a rerun resumes instead)."""
  return {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial, "max_retries": 0}


def trial_threads(cpus_per_trial: float) -> int:
  """The compute threads a trial given ``cpus_per_trial`` CPUs may run: the whole CPUs, at
  least one (a fraction of a CPU still needs a thread)."""
  return max(1, int(cpus_per_trial))


def trial_env(cpus_per_trial: float, gpus_per_trial: float) -> dict[str, str]:
  """Environment of a Ray trial's process, so that it uses what it asked Ray for.

  CPUs: Ray's ``num_cpus`` only schedules; XLA's CPU client sizes its compute thread pools
  (``tf_XLAEigen``, the intra-op pool) from ``NPROC`` when set, else from every core this
  process may run on, so without it each trial runs as many threads as the host has cores.
  ``NPROC=trial_threads(cpus_per_trial)`` bounds them (measured: 1 thread with ``NPROC=1``, 2
  on a 2-core host without; ``--xla_cpu_multi_thread_eigen=false`` changes neither). Threads,
  not pinned cores: Ray does not say which cores a task holds, so pinning would stack trials
  on the same cores, while the OS spreads bounded threads over free ones.
  GPUs: trials sharing one (a fraction each) must not preallocate: JAX would otherwise take
  75% of its memory in the first trial and leave the others none.
  """
  env = {"NPROC": str(trial_threads(cpus_per_trial))}
  if 0 < gpus_per_trial < 1:
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  return env


def worker_command(command: Sequence[str]) -> list[str]:
  """A trial's command as a Ray worker runs it: with the worker's own Python
  (``sys.executable`` where this runs), not the driver's path, which other hosts may lack."""
  return [sys.executable, *command[1:]]


def run_trial_on_worker(trial: Mapping, cwd: str, env: Mapping[str, str]) -> dict:
  """The body of a trial's Ray task, on the worker (``launch.run_trial`` with the worker's
  Python)."""
  return run_trial({**trial, "command": worker_command(trial["command"])}, cwd, env)


class RayRunner:
  """Trials as Ray tasks (``launch.run_queue``): started by submitting ``run_trial_on_worker``,
  stopped by ``ray.cancel`` (the worker passes SIGTERM on to the trial and waits for it; by
  force when asked again), waited for with ``ray.wait``."""

  def __init__(self, ray, remote, env: Mapping[str, str]):
    self.ray, self.remote, self.env = ray, remote, dict(env)
    self.trials: dict[object, Mapping] = {}

  def start(self, trial: Mapping):
    ref = self.remote.remote(trial, os.fspath(REPO), self.env)
    self.trials[ref] = trial
    return ref

  def signal(self, handles: Sequence, signum: int, again: bool) -> None:  # noqa: ARG002
    for ref in handles:
      self.ray.cancel(ref, force=again)

  def wait(self, running: Mapping[int, object], stopped_by: int | None) -> list[tuple[int, dict]]:
    index = {ref: i for i, ref in running.items()}
    done, _ = self.ray.wait(list(index), num_returns=1, timeout=0.5)
    return [(index[ref], self.result(ref, stopped_by)) for ref in done]

  def result(self, ref, stopped_by: int | None) -> dict:
    """A finished task's status; a cancelled one's is what its worker recorded (shared
    filesystem), a dead worker's is written here."""
    trial = self.trials.pop(ref)
    try:
      return self.ray.get(ref)
    except self.ray.exceptions.TaskCancelledError:
      recorded = run_record.read_status(trial["workdir"]) or {}
      if recorded.get("status") == "stopped":
        return recorded
      status = {"name": trial["name"], "status": "stopped", "returncode": None,
                "stopped_by": signal_name(stopped_by) if stopped_by else None}
    except Exception as e:  # noqa: BLE001  (the worker died: record it like a failure)
      status = {"name": trial["name"], "status": "stopped" if stopped_by else "failed",
                "returncode": None,
                "stderr_tail": f"Ray task failed: {type(e).__name__}: {e}"[-STDERR_TAIL_CHARS:]}
    run_record.write_status(trial["workdir"], status)
    return status


def launch_ray(trials: list[dict], max_parallel: int, address: str | None,
               cpus_per_trial: float = 1.0, gpus_per_trial: float | None = None,
               on_done: Callable[[dict], None] = lambda status: None,
               stop: StopSignals | None = None) -> list[dict]:
  """Runs trials as Ray tasks (one process each, as locally); at most ``max_parallel`` in
  flight (0: as many as the cluster's CPUs and GPUs hold, ``ray_capacity``).

  address: a running cluster (``ray://host:10001`` or ``auto``); None starts a local Ray.
  Once ``stop`` has received a signal, no more tasks are submitted and the running ones are
  cancelled (``ray.cancel``: the worker passes SIGTERM on to the trial and waits for it);
  a second signal cancels them by force.
  """
  try:
    import ray  # optional: pip install -e '.[ray]'
  except ImportError:
    raise cli.UsageError("--launcher=ray needs Ray: pip install -e '.[ray]'") from None
  check_trial_resources(cpus_per_trial, gpus_per_trial)
  stop = stop or StopSignals()
  started_here = not ray.is_initialized()
  if started_here:
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.fspath(REPO)}})
    stop.install()  # ray.init installs handlers of its own
  try:
    resources = ray.cluster_resources()
    gpus = resolve_gpus_per_trial(gpus_per_trial, resources)
    capacity = ray_capacity(resources, cpus_per_trial, gpus)
    max_parallel = max_parallel or capacity
    print(f"Ray cluster: {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s); "
          f"{cpus_per_trial:g} CPU(s) and {gpus:g} GPU(s) per trial: room for {capacity}, "
          f"running at most {max_parallel} at once", flush=True)
    # By reference (experiments.ray_launch on the workers' PYTHONPATH).
    remote = ray.remote(run_trial_on_worker).options(**ray_task_options(cpus_per_trial, gpus))
    runner = RayRunner(ray, remote, trial_env(cpus_per_trial, gpus))
    return run_queue(trials, max_parallel, runner, stop, on_done)
  finally:
    if started_here:
      ray.shutdown()
