"""Running a sweep's trials: one process per trial, a queue that runs them a few at a time,
and the signals that stop it.

``run_queue`` is the one loop every launcher shares: it starts queued trials while fewer than
``max_parallel`` run, collects finished ones, and once SIGTERM or SIGINT arrives
(``StopSignals``) starts no more, passes the signal on to the running ones and waits for them
(a second signal kills them). What "start", "pass on" and "wait" mean is the launcher's:
``LocalRunner`` here (each trial a child process, ``TrialProcess``), ``RayRunner`` in
``experiments.ray_launch`` (each trial a Ray task running ``run_trial`` on a worker).

Each trial's outputs are its workdir's (``attnlab.run_record``): ``stdout.txt``, ``stderr.txt``
and ``status.json``, which says ``running`` with its PID and host while it runs, then its
outcome: ``ok``, ``failed``, ``stopped`` (rerun to resume) or ``already running``
(``experiments.locks``). A trial resumed after a stop or a failure keeps count of its runs:
``runs`` and ``total_wall_time_s`` add this run to the earlier ones (``earlier_runs``), so a
sweep spread over several sessions still says what each trial cost; a run whose launcher died
before recording its end is counted in ``untimed_runs``.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from attnlab import run_record
from experiments import locks, parent_death

REPO = pathlib.Path(__file__).resolve().parents[1]  # the trials' working directory
STDERR_TAIL_CHARS = 4000


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


def signal_name(signum: int) -> str:
  return signal.Signals(signum).name


def stopped_by_signal(returncode: int | None) -> int | None:
  """The stop signal a return code reports (killed by it, or exited 128 + it), else None."""
  for signum in StopSignals.SIGNALS:
    if returncode in (-signum, 128 + signum):
      return signum
  return None


def earlier_runs(status: Mapping | None) -> dict:
  """{"runs", "wall_time_s", "untimed_runs"}: the earlier runs of a trial being started again,
  from its ``status.json`` as the last run left it. A stopped or failed run (resumed now) adds
  its own counts; a ``running`` one whose launcher died before recording the end adds one
  untimed run; a finished (``ok``) trial started again, or no status, starts the count
  afresh."""
  none = {"runs": 0, "wall_time_s": 0.0, "untimed_runs": 0}
  if not isinstance(status, Mapping):
    return none
  if status.get("status") == "running":
    before = status.get("earlier_runs") or none
    return {**before, "runs": before["runs"] + 1, "untimed_runs": before["untimed_runs"] + 1}
  if status.get("status") not in ("stopped", "failed") or "wall_time_s" not in status:
    return none
  return {"runs": status.get("runs", 1),
          "wall_time_s": float(status.get("total_wall_time_s", status["wall_time_s"])),
          "untimed_runs": status.get("untimed_runs", 0)}


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
    self.earlier = earlier_runs(run_record.read_status(self.workdir))
    self.start = time.time()
    self._out = open(self.workdir / run_record.STDOUT, "w", encoding="utf-8")
    self._err = open(self.workdir / run_record.STDERR, "w", encoding="utf-8")
    self.returncode: int | None = None
    command = trial["command"]
    try:
      self.proc = subprocess.Popen(
          parent_death.command(command) if parent_death_signal else command,
          stdout=self._out, stderr=self._err, cwd=cwd,
          env={**os.environ, **env} if env else None, start_new_session=True)
    except OSError as e:  # the interpreter itself could not start
      self._err.write(f"{type(e).__name__}: {e}\n")
      self._err.flush()
      self.proc, self.returncode = None, -1
      return
    run_record.write_status(self.workdir, {
        "name": trial["name"], "status": "running", "pid": self.proc.pid,
        "host": socket.gethostname(), "launcher_pid": os.getpid(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.start)),
        "command": trial["command"], "earlier_runs": self.earlier})

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
    directly: rerun to resume), ``already running`` (another run holds its workdir:
    ``locks.locked_by``) or ``failed``; the return code, wall time and, unless ok, the stderr
    tail."""
    returncode = self.returncode if self.proc is None else self.proc.wait()
    self._out.close()
    self._err.close()
    wall_time = round(time.time() - self.start, 2)
    status = {"name": self.trial["name"], "returncode": returncode, "wall_time_s": wall_time,
              "runs": self.earlier["runs"] + 1,
              "total_wall_time_s": round(self.earlier["wall_time_s"] + wall_time, 2),
              "command": self.trial["command"]}
    if self.earlier["untimed_runs"]:
      status["untimed_runs"] = self.earlier["untimed_runs"]
    if returncode != 0:
      status["stderr_tail"] = (self.workdir / run_record.STDERR).read_text(
          encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
    locked = locks.locked_by(self.workdir, returncode)
    signum = stopped_by or stopped_by_signal(returncode)
    if returncode == 0:
      status["status"] = "ok"
    elif signum is not None:
      status["status"], status["stopped_by"] = "stopped", signal_name(signum)
    elif locked:
      status["status"], status["reason"] = locks.ALREADY_RUNNING, locked
    else:
      status["status"] = "failed"
    run_record.write_status(self.workdir, status)
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


# ---------------------------------------------------------------- the queue

class Runner(Protocol):
  """How a launcher starts, stops and waits for trials (``run_queue``)."""

  def start(self, trial: Mapping) -> object:
    """A handle of the started trial, or its status (a dict) when it was not started."""

  def signal(self, handles: Sequence[object], signum: int, again: bool) -> None:
    """Passes a stop signal on to running trials; ``again``: a second one, stop them now."""

  def wait(self, running: Mapping[int, object],
           stopped_by: int | None) -> list[tuple[int, dict]]:
    """(index, status) of the running trials that ended, waiting briefly for one."""


def announce_stop(signum: int, running: int, queued: int) -> None:
  print(f"{signal_name(signum)}: stopping {running} running trial(s) (they checkpoint and exit; "
        f"{signal_name(signum)} again kills them), not starting {queued}", flush=True)


def not_started(trial: Mapping) -> dict:
  return {"name": trial["name"], "status": "not started"}


def run_queue(trials: Sequence[Mapping], max_parallel: int, runner: Runner,
              stop: StopSignals | None = None,
              on_done: Callable[[dict], None] = lambda status: None) -> list[dict]:
  """Runs ``trials`` with ``runner``, at most ``max_parallel`` at once; statuses in order.

  Once ``stop`` has received a signal, no more trials start (``not started``) and the running
  ones get it (``runner.signal``) and are waited for; a further signal stops them by force.
  ``on_done`` gets each status as it comes.
  """
  stop = stop or StopSignals()
  queued, running = list(enumerate(trials)), {}
  results: list[dict] = [{}] * len(trials)
  forwarded = 0
  while queued or running:
    if len(stop.received) > forwarded:
      if not forwarded:
        announce_stop(stop.received[0], len(running), len(queued))
      runner.signal(list(running.values()), stop.received[0], again=bool(forwarded))
      forwarded = len(stop.received)
      for i, trial in queued:
        results[i] = not_started(trial)
      queued = []
    while queued and len(running) < max(1, max_parallel):
      i, trial = queued.pop(0)
      started = runner.start(trial)
      if isinstance(started, dict):
        results[i] = started
        on_done(started)
      else:
        running[i] = started
    if running:
      for i, status in runner.wait(running, stop.received[0] if stop.received else None):
        del running[i]
        results[i] = status
        on_done(status)
  return results


class LocalRunner:
  """Trials as child processes of this one (``TrialProcess``), each with the parent-death
  signal (Linux), so a launcher that dies without passing a signal on leaves none running."""

  def __init__(self, poll_s: float = 0.1):
    self.poll_s = poll_s

  def start(self, trial: Mapping) -> TrialProcess | dict:
    holder = locks.running_elsewhere(trial["workdir"])
    if holder:
      return locks.already_running(trial, holder)
    return TrialProcess(trial, parent_death_signal=True)

  def signal(self, handles: Sequence[TrialProcess], signum: int, again: bool) -> None:
    for process in handles:
      process.send(signal.SIGKILL if again else signum)

  def wait(self, running: Mapping[int, TrialProcess],
           stopped_by: int | None) -> list[tuple[int, dict]]:
    done = [(i, process.finish(stopped_by)) for i, process in running.items()
            if process.poll() is not None]
    if not done:
      time.sleep(self.poll_s)
    return done


def launch_local(trials: Sequence[Mapping], max_parallel: int,
                 on_done: Callable[[dict], None] = lambda status: None,
                 stop: StopSignals | None = None, poll_s: float = 0.1) -> list[dict]:
  """Runs trials as local processes, at most ``max_parallel`` at once; statuses in order.

  Once ``stop`` has received a signal, no more trials start, the running ones get that signal
  (their process groups do) and are waited for; a second signal kills them (SIGKILL). Each
  trial's process also gets SIGTERM if the launcher dies without passing it on (Linux).
  """
  return run_queue(trials, max_parallel, LocalRunner(poll_s), stop, on_done)
