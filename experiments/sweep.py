"""Runs every trial of a sweep: ``python -m experiments.sweep --sweep FILE[:ARG] --root DIR``.

A sweep file is an experiment config (``get_config(arg)``, the base config of every trial)
that also defines ``get_sweep(arg)``: the grid's axes, in order, each a dict from a value's
label to the dotted config overrides it stands for (big_vision keeps its sweeps the same way,
in the config file they sweep)::

    def get_sweep(arg=None):
      return {
          "variant": {"none": {"model.decoder": "none"}, "dot": {"model.attention": "dot"}},
          "train_len": {"20": {"data.train_max_src_len": 20}},
      }

The trials are the product of the axes. A trial is named by its labels
(``variant=dot,train_len=20``); its workdir is ``ROOT/<name>`` and it runs as its own process,
``python -m attnlab.main --config FILE:ARG --workdir ROOT/<name> --config.KEY=VALUE ...``
(extra ``--config.KEY=VALUE`` and ``--jax_cache_dir=DIR`` flags go to every trial).
An optional ``get_report(arg)`` returns defaults for ``experiments.report`` (e.g. which axis is
the x axis); they are recorded in ``ROOT/sweep.json`` with the trials.

Rerunning the same command skips trials that finished (``summary.json`` in their workdir) and
resumes unfinished ones from their checkpoints. A trial's ``status.json`` says ``running``
with its PID and host while it runs, then its outcome (return code, stderr tail unless ok);
a trial that fails is recorded and the others go on. A trial that another launcher on this
host is still running, or whose workdir the trainer finds locked by another run, is reported
as ``already running`` and not started twice.

SIGTERM or SIGINT (Ctrl-C) stops the launcher cleanly: it starts no more trials, passes the
signal on to the running ones (each checkpoints and exits, as ``attnlab.main`` does on
SIGTERM), waits for them and exits with 128 + the signal number (143, 130); the same signal
again kills them. Exit status otherwise: 0 all selected trials ok or complete, 1 some failed,
were stopped or run elsewhere, 2 bad flags or sweep file.

``--launcher=ray`` submits the same commands as Ray tasks to a local Ray instance or to a
cluster (``--ray_address``), each asking for ``--cpus_per_trial`` CPUs and
``--gpus_per_trial`` GPUs (default: one GPU on a cluster that has them, since Ray hides every
GPU from a task that asks for none); a trial runs XLA with at most ``--cpus_per_trial``
compute threads (``trial_env``); ``--max_parallel`` defaults to what the cluster holds at
once. Workers run the trials with their own Python (``sys.executable`` on the worker) and need
this checkout and ROOT at the same paths as the driver (a shared filesystem). A stopped
launcher cancels its Ray tasks; each worker passes SIGTERM on to its trial and waits for it.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import itertools
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from absl import flags

from attnlab.defaults import load_config_file
from experiments import cli

REPO = pathlib.Path(__file__).resolve().parents[1]
STDERR_TAIL_CHARS = 4000


# ---------------------------------------------------------------- the grid

def load_sweep_module(path: str):
  """Imports a sweep file by path; it must define ``get_sweep``."""
  module = load_config_file(path)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep(arg): it is a config, not a sweep")
  return module


def split_spec(spec: str) -> tuple[str, str | None]:
  """``FILE[:ARG]`` -> (FILE, ARG or None)."""
  path, _, arg = spec.partition(":")
  return path, (arg or None)


def _format_value(value) -> str:
  """A config value as a command-line override (what config_flags parses back)."""
  if isinstance(value, (list, tuple)):
    return ",".join(_format_value(v) for v in value)
  return str(value)


def trial_name(labels: Mapping[str, str]) -> str:
  """``axis=label`` pairs joined by commas, in axis order: a workdir name for the trial."""
  name = ",".join(f"{axis}={label}" for axis, label in labels.items())
  bad = set(name) & set("/ \t\n'\"\\*?$`")
  if bad or not name:
    raise ValueError(f"trial name {name!r} has characters unfit for a folder name: {sorted(bad)}")
  return name


def expand(axes: Mapping[str, Mapping[str, Mapping]]) -> list[dict]:
  """The trials of a grid: the product of the axes, the first axis varying slowest.

  Args:
    axes: {axis: {label: {dotted key: value}}}, as ``get_sweep`` returns.

  Returns:
    [{"name": str, "labels": {axis: label}, "overrides": {dotted key: value}}, ...]
  """
  if not axes:
    raise ValueError("a sweep needs at least one axis")
  for axis, values in axes.items():
    if not values:
      raise ValueError(f"sweep axis {axis!r} has no values")
  trials = []
  for combination in itertools.product(*(list(values.items()) for values in axes.values())):
    labels, overrides = {}, {}
    for axis, (label, settings) in zip(axes, combination):
      labels[axis] = str(label)
      for key, value in settings.items():
        if key in overrides and overrides[key] != value:
          raise ValueError(f"axes set {key} twice, to {overrides[key]!r} and {value!r}")
        overrides[key] = value
    trials.append({"name": trial_name(labels), "labels": labels, "overrides": overrides})
  names = [t["name"] for t in trials]
  if len(set(names)) != len(names):
    raise ValueError("two trials have the same name: labels must differ within an axis")
  return trials


def trial_command(config_spec: str, workdir: str | os.PathLike,
                  overrides: Mapping, extra_flags: Iterable[str] = ()) -> list[str]:
  """The ``attnlab.main`` command line of one trial."""
  return [sys.executable, "-m", "attnlab.main", "--config", config_spec,
          "--workdir", os.fspath(workdir),
          *(f"--config.{key}={_format_value(value)}" for key, value in overrides.items()),
          *extra_flags]


def plan(sweep_spec: str, root: str | os.PathLike, extra_flags: Iterable[str] = ()) -> dict:
  """Expands a sweep file into ``ROOT/sweep.json``'s content: the trials and their commands."""
  path, arg = split_spec(sweep_spec)
  module = load_sweep_module(path)
  config_spec = os.path.abspath(path) + (f":{arg}" if arg else "")
  trials = expand(module.get_sweep(arg))
  root = pathlib.Path(root).resolve()
  for trial in trials:
    trial["workdir"] = os.fspath(root / trial["name"])
    trial["command"] = trial_command(config_spec, trial["workdir"], trial["overrides"],
                                     extra_flags)
  report = module.get_report(arg) if hasattr(module, "get_report") else {}
  return {"sweep": sweep_spec, "config": config_spec, "root": os.fspath(root),
          "axes": list(trials[0]["labels"]), "report": report, "trials": trials}


# ---------------------------------------------------------------- running trials

def is_complete(workdir: str | os.PathLike) -> bool:
  return (pathlib.Path(workdir) / "summary.json").exists()


def _write_json(path: pathlib.Path, obj) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
  os.replace(tmp, path)


class StopSignals:
  """Records SIGTERM and SIGINT while installed (the main thread's handlers) instead of dying,
  so the launcher can pass them on to its trials and wait for them, as the trainer itself
  checkpoints before it exits. ``received`` lists the signal numbers, first first."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: list[int] = []
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame) -> None:  # noqa: ARG002
    self.received.append(signum)

  def install(self) -> "StopSignals":
    """(Re)installs the handlers; a no-op off the main thread. Installing again (after
    ``ray.init``, which sets its own) keeps the handlers of before the first install."""
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        previous = signal.signal(sig, self._handle)
        self._previous.setdefault(sig, previous)
    return self

  def restore(self) -> None:
    for sig, previous in self._previous.items():
      signal.signal(sig, previous)
    self._previous.clear()

  def __enter__(self) -> "StopSignals":
    return self.install()

  def __exit__(self, *exc) -> None:
    self.restore()


def _signal_name(signum: int) -> str:
  return signal.Signals(signum).name


# Runs a trial's command (argv[2:]) after asking the kernel for SIGTERM when the launcher
# (PID argv[1]) dies, even by SIGKILL (Linux), so a killed launcher leaves no trial running:
# each checkpoints and exits. A small exec-ing wrapper, not a preexec_fn: the launcher has JAX
# loaded (sweep files import attnlab), and forking a multithreaded process to run Python in
# the child is what JAX warns against.
_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
try:
  ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
  pass
if os.getppid() != int(sys.argv[1]):  # the launcher died before that took effect
  sys.exit(128 + signal.SIGTERM)
try:
  os.execvp(sys.argv[2], sys.argv[2:])
except OSError as e:  # the trial's interpreter itself could not start
  sys.exit(f"{type(e).__name__}: {e}: {sys.argv[2]}")
"""


def with_parent_death_signal(command: Sequence[str]) -> list[str]:
  """``command`` as a process that gets SIGTERM when this process dies (Linux only; the same
  command elsewhere)."""
  if not sys.platform.startswith("linux"):
    return list(command)
  return [sys.executable, "-c", _PARENT_DEATH_SIGNAL, str(os.getpid()), *command]


# A trainer that finds its workdir locked by another run exits 2 with "error: --workdir
# 'DIR' is in use by PID N on host H: ..." (attnlab.training.workdir.lock).
_LOCKED = re.compile(r"\b(is in use by|locked by|already running)\b", re.IGNORECASE)


def _locked_message(returncode: int | None, stderr_tail: str) -> str | None:
  """The trainer's "workdir in use by PID N on host H" line, if that is why it exited 2."""
  if returncode != 2:
    return None
  for line in reversed(stderr_tail.strip().splitlines()):
    if _LOCKED.search(line):
      return line.strip()
  return None


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def running_elsewhere(workdir: str | os.PathLike) -> str | None:
  """"PID N on HOST" when ``workdir/status.json`` says a launcher started the trial on this
  host and that process still runs it (another launcher's; PID reuse is ruled out by its
  command line where /proc has it), else None. Records from other hosts cannot be checked
  from here: the trainer's own workdir lock answers for those."""
  path = pathlib.Path(workdir) / "status.json"
  try:
    status = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return None
  pid = status.get("pid")
  if (status.get("status") != "running" or not isinstance(pid, int)
      or status.get("host") != socket.gethostname() or not _pid_alive(pid)):
    return None
  try:
    cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
  except OSError:
    cmdline = None  # no /proc: trust the PID
  if cmdline is not None and os.fsencode(os.fspath(workdir)) not in cmdline:
    return None
  return f"PID {pid} on {status['host']}"


class TrialProcess:
  """One trial's command as a process (stdout/stderr to files in its workdir).

  It gets a session (and process group) of its own: the launcher's terminal's Ctrl-C reaches
  the launcher only, which passes signals on to each trial's whole group (``send``).
  ``workdir/status.json`` says ``running`` with its PID and host while it runs; ``finish``
  replaces that with the outcome.
  """

  def __init__(self, trial: Mapping, cwd: str | os.PathLike = REPO,
               env: Mapping[str, str] | None = None, parent_death_signal: bool = False):
    self.trial = trial
    self.workdir = pathlib.Path(trial["workdir"])
    self.workdir.mkdir(parents=True, exist_ok=True)
    self.start = time.time()
    self._out = open(self.workdir / "stdout.txt", "w", encoding="utf-8")
    self._err = open(self.workdir / "stderr.txt", "w", encoding="utf-8")
    self.returncode: int | None = None
    command = trial["command"]
    try:
      self.proc = subprocess.Popen(
          with_parent_death_signal(command) if parent_death_signal else command,
          stdout=self._out, stderr=self._err, cwd=cwd,
          env={**os.environ, **env} if env else None, start_new_session=True)
    except OSError as e:  # the interpreter itself could not start
      self._err.write(f"{type(e).__name__}: {e}\n")
      self._err.flush()
      self.proc, self.returncode = None, -1
      return
    _write_json(self.workdir / "status.json", {
        "name": trial["name"], "status": "running", "pid": self.proc.pid,
        "host": socket.gethostname(), "launcher_pid": os.getpid(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.start)),
        "command": trial["command"]})

  @property
  def pid(self) -> int | None:
    return self.proc.pid if self.proc else None

  def poll(self) -> int | None:
    if self.returncode is None and self.proc is not None:
      self.returncode = self.proc.poll()
    return self.returncode

  def send(self, signum: int) -> None:
    """Sends ``signum`` to the trial's process group (the trial and anything it started)."""
    if self.proc is None or self.poll() is not None:
      return
    try:
      os.killpg(self.proc.pid, signum)
    except (ProcessLookupError, PermissionError):
      pass

  def finish(self, stopped_by: int | None = None) -> dict:
    """Its status once it ended (also written to ``workdir/status.json``): ``ok``,
    ``stopped`` (by ``stopped_by``, the launcher's signal, or a signal sent to the trial
    directly: rerun to resume), ``already running`` (the trainer found its workdir locked by
    another run) or ``failed``; the return code, wall time and, unless ok, the stderr tail."""
    returncode = self.returncode if self.proc is None else self.proc.wait()
    self._out.close()
    self._err.close()
    status = {"name": self.trial["name"], "returncode": returncode,
              "wall_time_s": round(time.time() - self.start, 2),
              "command": self.trial["command"]}
    tail = ""
    if returncode != 0:
      tail = (self.workdir / "stderr.txt").read_text(
          encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
      status["stderr_tail"] = tail
    by_signal = {-s for s in StopSignals.SIGNALS} | {128 + s for s in StopSignals.SIGNALS}
    locked = _locked_message(returncode, tail)
    if returncode == 0:
      status["status"] = "ok"
    elif stopped_by is not None or returncode in by_signal:
      status["status"] = "stopped"
      signum = stopped_by or abs(returncode) % 128
      status["stopped_by"] = _signal_name(signum)
    elif locked:
      status["status"], status["reason"] = "already running", locked
    else:
      status["status"] = "failed"
    _write_json(self.workdir / "status.json", status)
    return status


def run_trial(trial: Mapping, cwd: str | os.PathLike = REPO,
              env: Mapping[str, str] | None = None) -> dict:
  """Runs one trial's command to completion; returns its status (``TrialProcess.finish``).

  Importable by Ray workers: it needs nothing but the trial dict. A ``KeyboardInterrupt``
  while it waits (what ``ray.cancel`` raises in a running task) is passed on to the trial as
  SIGTERM; it waits for the trial to checkpoint and exit, records it as stopped, and re-raises.
  """
  process = TrialProcess(trial, cwd, env,
                         parent_death_signal=threading.current_thread() is threading.main_thread())
  try:
    while process.poll() is None:
      time.sleep(0.2)  # not a blocking wait: an interrupt must get through
  except KeyboardInterrupt:
    process.send(signal.SIGTERM)
    try:
      process.proc.wait()
    except KeyboardInterrupt:  # asked again: do not wait for the checkpoint
      process.send(signal.SIGKILL)
    process.finish(stopped_by=signal.SIGTERM)
    raise
  return process.finish()


def _not_started(trial: Mapping) -> dict:
  return {"name": trial["name"], "status": "not started"}


def _already_running(trial: Mapping, holder: str) -> dict:
  return {"name": trial["name"], "status": "already running", "returncode": None,
          "reason": f"{trial['workdir']} is being run by {holder} (status.json)"}


def _announce_stop(signum: int, running: int, queued: int) -> None:
  print(f"{_signal_name(signum)}: stopping {running} running trial(s) (they checkpoint and exit; "
        f"{_signal_name(signum)} again kills them), not starting {queued}", flush=True)


def launch_local(trials: list[dict], max_parallel: int,
                 on_done: Callable[[dict], None] = lambda status: None,
                 stop: StopSignals | None = None, poll_s: float = 0.1) -> list[dict]:
  """Runs trials as local processes, at most ``max_parallel`` at once; statuses in order.

  Once ``stop`` has received a signal, no more trials start, the running ones get that signal
  (their process groups do) and are waited for; a second signal kills them (SIGKILL). Each
  trial's process also gets SIGTERM if the launcher dies without passing it on (Linux).
  """
  stop = stop or StopSignals()
  queued, running = list(enumerate(trials)), {}
  results: list[dict] = [{}] * len(trials)
  forwarded = 0
  while queued or running:
    if len(stop.received) > forwarded:
      if not forwarded:
        _announce_stop(stop.received[0], len(running), len(queued))
      signum = stop.received[0] if not forwarded else signal.SIGKILL
      for process in running.values():
        process.send(signum)
      forwarded = len(stop.received)
      for i, trial in queued:
        results[i] = _not_started(trial)
      queued = []
    while queued and len(running) < max(1, max_parallel):
      i, trial = queued.pop(0)
      holder = running_elsewhere(trial["workdir"])
      if holder:
        results[i] = _already_running(trial, holder)
        on_done(results[i])
        continue
      running[i] = TrialProcess(trial, parent_death_signal=True)
    for i, process in list(running.items()):
      if process.poll() is not None:
        del running[i]
        results[i] = process.finish(stop.received[0] if stop.received else None)
        on_done(results[i])
    if running:
      time.sleep(poll_s)
  return results


# ---------------------------------------------------------------- Ray

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


def _run_trial_on_worker(trial: Mapping, cwd: str, env: Mapping[str, str]) -> dict:
  """The body of a trial's Ray task, on the worker."""
  return run_trial({**trial, "command": worker_command(trial["command"])}, cwd, env)


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
    # By reference (experiments.sweep on the workers' PYTHONPATH), even when this module
    # runs as __main__.
    body = importlib.import_module("experiments.sweep")._run_trial_on_worker  # noqa: SLF001
    remote = ray.remote(body).options(**ray_task_options(cpus_per_trial, gpus))
    env = trial_env(cpus_per_trial, gpus)
    pending, queued, results = {}, list(enumerate(trials)), [{}] * len(trials)
    cancelled = 0
    while queued or pending:
      if len(stop.received) > cancelled:
        if not cancelled:
          _announce_stop(stop.received[0], len(pending), len(queued))
        for ref in pending:
          ray.cancel(ref, force=bool(cancelled))
        cancelled = len(stop.received)
        for i, trial in queued:
          results[i] = _not_started(trial)
        queued = []
      while queued and len(pending) < max(1, max_parallel):
        i, trial = queued.pop(0)
        pending[remote.remote(trial, os.fspath(REPO), env)] = i
      if not pending:
        break
      done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
      for ref in done:
        i = pending.pop(ref)
        results[i] = _ray_result(ray, ref, trials[i], stop)
        on_done(results[i])
  finally:
    if started_here:
      ray.shutdown()
  return results


def _ray_result(ray, ref, trial: Mapping, stop: StopSignals) -> dict:
  """A finished task's status; a cancelled one's is what its worker recorded (shared
  filesystem), a dead worker's is written here."""
  try:
    return ray.get(ref)
  except ray.exceptions.TaskCancelledError:
    recorded = {}
    try:
      recorded = json.loads((pathlib.Path(trial["workdir"]) / "status.json").read_text())
    except (OSError, ValueError):
      pass
    if recorded.get("status") == "stopped":
      return recorded
    status = {"name": trial["name"], "status": "stopped", "returncode": None,
              "stopped_by": _signal_name(stop.received[0]) if stop.received else None}
  except Exception as e:  # noqa: BLE001  (the worker died: record it like a failure)
    status = {"name": trial["name"], "status": "stopped" if stop.received else "failed",
              "returncode": None,
              "stderr_tail": f"Ray task failed: {type(e).__name__}: {e}"[-STDERR_TAIL_CHARS:]}
  workdir = pathlib.Path(trial["workdir"])
  workdir.mkdir(parents=True, exist_ok=True)
  _write_json(workdir / "status.json", status)
  return status


# ---------------------------------------------------------------- the sweep

def select(trials: list[dict], patterns: Iterable[str] | None) -> list[dict]:
  """The trials whose names match one of the fnmatch ``patterns`` (all when None), in the
  order of the first pattern each matches, then sweep order."""
  if not patterns:
    return list(trials)
  patterns = list(patterns)
  rank = {}
  for trial in trials:
    hits = [i for i, p in enumerate(patterns) if fnmatch.fnmatchcase(trial["name"], p)]
    if hits:
      rank[trial["name"]] = hits[0]
  return sorted((t for t in trials if t["name"] in rank), key=lambda t: rank[t["name"]])


def _plan_or_fail(sweep_spec: str, root, extra_flags) -> dict:
  """``plan``, with a bad sweep file (missing, no get_sweep, a bad grid or argument) as a
  ``UsageError``."""
  try:
    return plan(sweep_spec, root, extra_flags)
  except (OSError, ValueError) as e:
    raise cli.UsageError(f"--sweep {sweep_spec}: {e}") from e


NOT_DONE = ("failed", "stopped", "already running", "not started")


def run_sweep(sweep_spec: str, root: str | os.PathLike, launcher: str = "local",
              max_parallel: int = 0, ray_address: str | None = None,
              extra_flags: Iterable[str] = (), only: Iterable[str] | None = None,
              cpus_per_trial: float = 1.0, gpus_per_trial: float | None = None) -> dict:
  """Plans, skips finished trials, launches the rest (those matching ``only``, if given);
  returns ``ROOT/sweep.json``'s content.

  ``max_parallel`` 0: one at a time locally, the cluster's capacity under Ray. SIGTERM or
  SIGINT (when called from the main thread) stops the launch: the running trials get the
  signal and are waited for, and ``stopped_by`` in the result names it.
  """
  root = pathlib.Path(root)
  sweep = _plan_or_fail(sweep_spec, root, extra_flags)
  root.mkdir(parents=True, exist_ok=True)
  chosen = select(sweep["trials"], only)
  todo = [t for t in chosen if not is_complete(t["workdir"])]
  for trial in sweep["trials"]:
    trial["status"] = ("skipped (complete)" if is_complete(trial["workdir"]) else
                       "pending" if trial in todo else "not selected (--only)")
  _write_json(root / "sweep.json", sweep)
  complete = sum(is_complete(t["workdir"]) for t in sweep["trials"])
  unselected = len(sweep["trials"]) - len(chosen)
  at_once = max_parallel or (1 if launcher == "local" else "the cluster's capacity")
  print(f"{len(sweep['trials'])} trials, {complete} already complete, "
        + (f"{unselected} not selected, " if only else "")
        + f"running {len(todo)} ({launcher}, at most {at_once} at once) under {root.resolve()}",
        flush=True)

  def report(status: dict) -> None:
    line = f"{status['status']:7s} {status['name']}"
    if status.get("wall_time_s") is not None:
      line += f"  ({status['wall_time_s']:.0f} s)"
    if status["status"] == "stopped":
      line += f"  by {status.get('stopped_by')}: rerun to resume"
    elif status["status"] == "already running":
      line += f": {status.get('reason', '')}"
    elif status["status"] != "ok":
      tail = status.get("stderr_tail", "").strip().splitlines()
      line += f"  returncode {status.get('returncode')}: {tail[-1] if tail else ''}"
    print(line, flush=True)

  start = time.time()
  with StopSignals() as stop:
    if launcher == "ray":
      statuses = launch_ray(todo, max_parallel, ray_address, cpus_per_trial, gpus_per_trial,
                            on_done=report, stop=stop)
    else:
      statuses = launch_local(todo, max_parallel or 1, on_done=report, stop=stop)
  by_name = {s["name"]: s for s in statuses}
  for trial in sweep["trials"]:
    if trial["name"] in by_name:
      trial["status"] = by_name[trial["name"]]["status"]
  sweep["wall_time_s"] = round(time.time() - start, 1)
  if stop.received:
    sweep["stopped_by"] = _signal_name(stop.received[0])
  _write_json(root / "sweep.json", sweep)
  return sweep


# ---------------------------------------------------------------- command line

# attnlab.main flags that a sweep passes on to every trial, beside --config.KEY=VALUE.
TRIAL_FLAGS = ("jax_cache_dir", "verbosity")


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("sweep", None, "Sweep file, FILE.py[:ARG] (required).", flag_values=fv)
  flags.DEFINE_string("root", None, "Folder holding one workdir per trial (required).",
                      flag_values=fv)
  flags.DEFINE_enum("launcher", "local", ["local", "ray"],
                    "Run trials as local processes or as Ray tasks.", flag_values=fv)
  flags.DEFINE_integer("max_parallel", 0, "Trials running at once; 0: 1 locally, the Ray "
                       "cluster's capacity (CPUs // --cpus_per_trial, GPUs // "
                       "--gpus_per_trial) with --launcher=ray.", lower_bound=0, flag_values=fv)
  flags.DEFINE_float("cpus_per_trial", 1.0, "--launcher=ray: CPUs each trial's task asks for; "
                     "its XLA runs at most that many compute threads.", flag_values=fv)
  flags.DEFINE_float("gpus_per_trial", None, "--launcher=ray: GPUs each trial's task asks for "
                     "(a fraction below 1 to share one); default: 1 when the cluster has GPUs, "
                     "else 0. Ray hides the GPUs from a task that asks for none.",
                     flag_values=fv)
  flags.DEFINE_string("ray_address", None, "Ray cluster to submit to (ray://HOST:10001 or "
                      "auto; default: start a local Ray).", flag_values=fv)
  flags.DEFINE_multi_string("only", None, "Run only the trials whose names match these fnmatch "
                            "patterns, in pattern order (e.g. 'variant=dot,*'); several may also "
                            "follow one --only", flag_values=fv)
  flags.DEFINE_boolean("dry_run", False, "Print the trial commands only.", flag_values=fv)


def _only_values(argv: Sequence[str]) -> list[str]:
  """``--only A B C`` (several patterns after one flag, as the README writes it) ->
  ``--only=A --only=B --only=C``; patterns hold commas, so absl's list flags cannot."""
  out, argv, i = [], list(argv), 0
  while i < len(argv):
    if argv[i] in ("--only", "-only"):
      i += 1
      while i < len(argv) and not argv[i].startswith("-"):
        out.append(f"--only={argv[i]}")
        i += 1
      continue
    out.append(argv[i])
    i += 1
  return out


def _trial_flags(extra: Sequence[str]) -> list[str]:
  """The flags ``main`` does not know: --config.KEY=VALUE and TRIAL_FLAGS, for every trial."""
  for arg in extra:
    name = arg.lstrip("-").partition("=")[0]
    if not arg.startswith("--"):
      raise cli.UsageError(f"unexpected argument {arg!r} (trial flags take the form "
                            "--config.KEY=VALUE)")
    if not (name.startswith("config.") or name in TRIAL_FLAGS):
      raise cli.UsageError(f"unknown flag {arg.partition('=')[0]} (--help lists the flags; "
                            "--config.KEY=VALUE and --jax_cache_dir=DIR go to every trial)")
    if "=" not in arg:
      raise cli.UsageError(f"{arg} needs a value: {arg}=VALUE")
  return list(extra)


def parse_flags(argv: Sequence[str] | None = None) -> tuple[flags.FlagValues, list[str]]:
  """(this launcher's flags, the flags for every trial); bad flags exit 2 with one line."""
  argv = sys.argv[1:] if argv is None else argv
  fv, extra = cli.parse(define_flags, _only_values(argv), __doc__, known_only=True)
  try:
    extra = _trial_flags(extra)
  except cli.UsageError as e:
    cli.fail(e)
  cli.require(fv, ("sweep", "root"))
  return fv, extra


def main(argv: Sequence[str] | None = None) -> int:
  """Exit status: 0 every selected trial ok or complete; 1 some failed, were stopped or run
  elsewhere; 2 bad flags or sweep file; 128 + N stopped by signal N (SIGTERM 143, SIGINT 130)."""
  fv, extra = parse_flags(argv)
  try:
    if fv.launcher == "local":
      for name in ("cpus_per_trial", "gpus_per_trial", "ray_address"):
        if fv[name].present:
          raise cli.UsageError(f"--{name} is for --launcher=ray")
    else:
      check_trial_resources(fv.cpus_per_trial, fv.gpus_per_trial)
    if fv.dry_run:
      for trial in select(_plan_or_fail(fv.sweep, fv.root, extra)["trials"], fv.only):
        print(" ".join(trial["command"]))
      return 0
    sweep = run_sweep(fv.sweep, fv.root, fv.launcher, fv.max_parallel, fv.ray_address, extra,
                      fv.only, fv.cpus_per_trial, fv.gpus_per_trial)
  except cli.UsageError as e:
    cli.fail(e)
  counts = {s: [t["name"] for t in sweep["trials"] if t["status"] == s] for s in NOT_DONE}
  done = sum(t["status"] in ("ok", "skipped (complete)") for t in sweep["trials"])
  print(f"done in {sweep['wall_time_s']:.0f} s: {done} ok or complete"
        + "".join(f", {len(names)} {status}" + (f": {', '.join(names)}" if status != "not started"
                                                 else "")
                  for status, names in counts.items() if names), flush=True)
  if "stopped_by" in sweep:
    print(f"stopped by {sweep['stopped_by']}: rerun the same command to resume", flush=True)
    return 128 + signal.Signals[sweep["stopped_by"]].value
  return 1 if any(counts.values()) else 0


if __name__ == "__main__":
  cli.run(main)
