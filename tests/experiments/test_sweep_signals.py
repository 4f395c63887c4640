"""experiments.sweep when stopped: signals passed on to the trials, no trial left running, no
trial started twice; the Ray launcher's resources and worker command."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from experiments import cli, grid, launch, locks, ray_launch, sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
SWEEPS = REPO / "configs" / "sweeps"

# A trial stand-in: records that it runs, exits 128 + N on SIGTERM / SIGINT (as attnlab.main
# does after checkpointing), or ignores SIGTERM with IGNORE=1.
SLEEPER = textwrap.dedent("""
    import os, pathlib, signal, sys, time
    stop = lambda signum, frame: sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE") else stop)
    signal.signal(signal.SIGINT, stop)
    pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
    time.sleep(120)
""")


def _alive(pid: int) -> bool:
  """Whether ``pid`` is a live process (a zombie nobody reaped yet counts as gone)."""
  try:
    state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
  except OSError:
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    return True
  return state not in ("Z", "X")


def _processes_mentioning(text: str) -> list[int]:
  """PIDs of live processes whose command line contains ``text`` (what ``ps`` would show)."""
  pids = []
  for proc in pathlib.Path("/proc").glob("[0-9]*"):
    try:
      if text.encode() in (proc / "cmdline").read_bytes() and _alive(int(proc.name)):
        pids.append(int(proc.name))
    except OSError:
      continue
  return pids


def _wait_until(condition, timeout: float, what: str) -> None:
  deadline = time.time() + timeout
  while not condition():
    if time.time() > deadline:
      raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    time.sleep(0.05)


def _sleepers(tmp_path, count: int) -> list[dict]:
  return [{"name": f"t{i}", "workdir": str(tmp_path / f"t{i}"),
           "command": [sys.executable, "-c", SLEEPER, str(tmp_path / f"ready{i}")]}
          for i in range(count)]


def _signal_when_ready(stop: launch.StopSignals, ready: list[pathlib.Path], signums) -> None:
  """Appends ``signums`` to ``stop`` (as its handler would) once every ``ready`` file exists."""

  def wait_and_signal():
    _wait_until(lambda: all(p.exists() for p in ready), 60, "the trials to start")
    for signum in signums:
      stop.received.append(signum)
      time.sleep(0.5)

  thread = threading.Thread(target=wait_and_signal, daemon=True)
  thread.start()
  return thread

def test_a_resumed_trial_counts_its_runs_and_their_wall_time(tmp_path):
  def trial(code: int) -> dict:
    return {"name": "t", "workdir": str(tmp_path / "t"),
            "command": [sys.executable, "-c", f"import time; time.sleep(0.3); raise SystemExit({code})"]}

  first = launch.run_trial(trial(1))
  assert first["status"] == "failed" and first["runs"] == 1
  assert first["total_wall_time_s"] == first["wall_time_s"] >= 0.3
  second = launch.run_trial(trial(0))  # resumed: this run's time, and the total of both
  assert second["status"] == "ok" and second["runs"] == 2 and "untimed_runs" not in second
  assert second["total_wall_time_s"] == pytest.approx(
      first["wall_time_s"] + second["wall_time_s"], abs=0.02)
  # A finished trial started again counts afresh.
  assert launch.run_trial(trial(0))["runs"] == 1
  # A launcher that died mid-run left "running": that run is counted, untimed.
  status = json.loads((tmp_path / "t" / "status.json").read_text())
  (tmp_path / "t" / "status.json").write_text(json.dumps({
      "name": "t", "status": "running", "pid": 2 ** 22 + 1, "host": socket.gethostname(),
      "earlier_runs": {"runs": 2, "wall_time_s": 5.0, "untimed_runs": 0}}))
  third = launch.run_trial(trial(0))
  assert third["runs"] == 4 and third["untimed_runs"] == 1
  assert third["total_wall_time_s"] == pytest.approx(5.0 + third["wall_time_s"], abs=0.02)
  assert status["runs"] == 1



@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_reaches_the_running_trials_and_nothing_more_starts(tmp_path, signum):
  trials = _sleepers(tmp_path, 3)
  stop = launch.StopSignals()
  _signal_when_ready(stop, [tmp_path / "ready0", tmp_path / "ready1"], [signum])
  start = time.time()
  statuses = launch.launch_local(trials, max_parallel=2, stop=stop)
  assert time.time() - start < 60  # not the sleepers' 120 s
  assert [s["status"] for s in statuses] == ["stopped", "stopped", "not started"]
  for status, ready in zip(statuses[:2], ("ready0", "ready1")):
    assert status["returncode"] == 128 + signum  # the trial got the signal and exited itself
    assert status["stopped_by"] == signal.Signals(signum).name
    assert not _alive(int((tmp_path / ready).read_text()))
    recorded = json.loads((tmp_path / status["name"] / "status.json").read_text())
    assert recorded["status"] == "stopped"
  assert not (tmp_path / "t2").exists()  # never started


def test_a_second_signal_kills_trials_that_ignore_the_first(tmp_path):
  trials = _sleepers(tmp_path, 1)
  os.environ["IGNORE"] = "1"  # inherited by the trial: it ignores SIGTERM
  try:
    stop = launch.StopSignals()
    _signal_when_ready(stop, [tmp_path / "ready0"], [signal.SIGTERM, signal.SIGTERM])
    statuses = launch.launch_local(trials, max_parallel=1, stop=stop)
  finally:
    del os.environ["IGNORE"]
  assert statuses[0]["status"] == "stopped"
  assert statuses[0]["returncode"] == -signal.SIGKILL


def test_the_trial_records_its_pid_while_it_runs(tmp_path):
  trials = _sleepers(tmp_path, 1)
  stop = launch.StopSignals()
  seen = {}

  def look():
    _wait_until(lambda: (tmp_path / "ready0").exists(), 60, "the trial")
    seen.update(json.loads((tmp_path / "t0" / "status.json").read_text()))
    stop.received.append(signal.SIGTERM)

  threading.Thread(target=look, daemon=True).start()
  launch.launch_local(trials, max_parallel=1, stop=stop)
  assert seen["status"] == "running"
  assert seen["pid"] == int((tmp_path / "ready0").read_text())
  assert seen["host"] and seen["launcher_pid"] == os.getpid()


def test_a_killed_launcher_takes_its_trials_with_it(tmp_path):
  """SIGKILL cannot be passed on: each trial asked the kernel for SIGTERM when its launcher
  dies (Linux), so none is left running to collide with a rerun."""
  if not sys.platform.startswith("linux"):
    pytest.skip("parent-death signal is Linux-only")
  script = textwrap.dedent(f"""
      import sys
      from experiments import launch
      trials = [{{"name": "t0", "workdir": {str(tmp_path / 't0')!r},
                 "command": [sys.executable, "-c", {SLEEPER!r}, {str(tmp_path / 'ready0')!r}]}}]
      launch.launch_local(trials, max_parallel=1)
  """)
  launcher = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)  # this checkout's sweep
  try:
    _wait_until(lambda: (tmp_path / "ready0").exists(), 60, "the trial to start")
    trial_pid = int((tmp_path / "ready0").read_text())
    launcher.kill()
    launcher.wait(30)
    _wait_until(lambda: not _alive(trial_pid), 20, f"trial {trial_pid} to exit")
  finally:
    if launcher.poll() is None:
      launcher.kill()
    if (tmp_path / "ready0").exists() and _alive(int((tmp_path / "ready0").read_text())):
      os.kill(int((tmp_path / "ready0").read_text()), signal.SIGKILL)


# ---------------------------------------------------------------- never twice

def _held_by(pid: int, host: str, exit_code: int = 2) -> str:
  """A trainer stand-in whose workdir (its --workdir, argv[-1]) another run holds: the lock
  file records that holder, and it exits ``exit_code`` with a message in any wording."""
  return (f"import json, pathlib, sys; pathlib.Path(sys.argv[-1], '.lock').write_text("
          f"json.dumps({{'pid': {pid}, 'host': {host!r}}})); "
          f"print('error: some wording', file=sys.stderr); sys.exit({exit_code})")


def _trial(tmp_path, name: str, code: str) -> dict:
  workdir = tmp_path / name
  return {"name": name, "workdir": str(workdir),
          "command": [sys.executable, "-c", code, "--workdir", str(workdir)]}


def test_a_trial_whose_workdir_is_locked_is_reported_already_running(tmp_path):
  """The trainer exits 2 while the workdir's lock file names another run: the record says so,
  not the wording of its message."""
  trials = [_trial(tmp_path, "locked", _held_by(4242, "gpu7"))]
  statuses = launch.launch_local(trials, max_parallel=1)
  assert statuses[0]["status"] == "already running"
  assert "PID 4242 on host gpu7" in statuses[0]["reason"]
  recorded = json.loads((tmp_path / "locked" / "status.json").read_text())
  assert recorded["status"] == "already running" and recorded["returncode"] == 2


@pytest.mark.parametrize("code", [
    _held_by(4242, "gpu7", exit_code=1),  # a crash, whatever the lock file says
    "import sys; print('error: --workdir is in use by PID 1 on host h', file=sys.stderr); "
    "sys.exit(2)",  # the wording alone, no holder recorded: a failure
    _held_by(2**22 + 7, socket.gethostname()),  # a holder of this host that is gone
], ids=["exit 1", "message only", "dead holder"])
def test_other_failures_are_not_taken_for_a_locked_workdir(tmp_path, code):
  (status,) = launch.launch_local([_trial(tmp_path, "t", code)], max_parallel=1)
  assert status["status"] == "failed", status


def test_sweep_reports_locked_trials_and_exits_1(tmp_path, capsys, monkeypatch):
  def fake(config_spec, workdir, *args, **kwargs):
    return [sys.executable, "-c", _held_by(4242, "gpu7"), "--workdir", str(workdir)]
  monkeypatch.setattr(grid, "trial_command", fake)
  exit_code = sweep.main(["--sweep", str(SWEEPS / "alignment.py:tiny"),
                          "--root", str(tmp_path), "--max_parallel", "2"])
  out = capsys.readouterr().out
  assert exit_code == 1
  line = next(line for line in out.splitlines() if line.startswith("already running variant=dot"))
  assert line.endswith("variant=dot is in use by PID 4242 on host gpu7 (.lock)"), line
  assert "2 already running: variant=dot, variant=location" in out
  recorded = json.loads((tmp_path / "sweep.json").read_text())
  assert {t["status"] for t in recorded["trials"]} == {"already running"}


@pytest.mark.slow
def test_a_trial_whose_workdir_the_trainer_finds_locked(tmp_path, capsys):
  """The real trainer on a workdir whose lock another run holds (here: this process)."""
  workdir_lib = pytest.importorskip("attnlab.training.workdir")
  workdir = tmp_path / "variant=dot"
  workdir.mkdir()
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
  try:
    with workdir_lib.lock(str(workdir)):
      exit_code = sweep.main(["--sweep", str(SWEEPS / "alignment.py:tiny"), "--root",
                              str(tmp_path), "--only", "variant=dot"])
  finally:
    del os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"]
  assert exit_code == 1
  status = json.loads((workdir / "status.json").read_text())
  assert status["status"] == "already running", status
  assert f"PID {os.getpid()} on host {socket.gethostname()}" in status["reason"]
  assert "1 already running: variant=dot" in capsys.readouterr().out


def test_a_trial_another_launcher_runs_on_this_host_is_not_started_twice(tmp_path):
  workdir = tmp_path / "t0"
  workdir.mkdir()
  ready = tmp_path / "holder_ready"
  holder = subprocess.Popen([sys.executable, "-c", "import pathlib, sys, time; "
                             "pathlib.Path(sys.argv[1]).touch(); time.sleep(120)",
                             str(ready), "--workdir", str(workdir)])
  try:
    _wait_until(ready.exists, 60, "the other run to start")
    (workdir / "status.json").write_text(json.dumps(
        {"name": "t0", "status": "running", "pid": holder.pid, "host": socket.gethostname()}))
    trials = [{"name": "t0", "workdir": str(workdir),
               "command": [sys.executable, "-c", "print('second run')"]}]
    statuses = launch.launch_local(trials, max_parallel=1)
  finally:
    holder.kill()
    holder.wait()
  assert statuses[0]["status"] == "already running"
  assert f"PID {holder.pid}" in statuses[0]["reason"]
  assert not (workdir / "stdout.txt").exists()  # it did not start
  # Once that process is gone the record is stale: the trial runs.
  statuses = launch.launch_local(trials, max_parallel=1)
  assert statuses[0]["status"] == "ok"
  assert (workdir / "stdout.txt").read_text() == "second run\n"


def test_a_recycled_pid_is_not_mistaken_for_the_trial(tmp_path):
  workdir = tmp_path / "t0"
  workdir.mkdir()
  (workdir / "status.json").write_text(json.dumps(  # this test's own PID: alive, not the trial
      {"name": "t0", "status": "running", "pid": os.getpid(), "host": socket.gethostname()}))
  assert locks.running_elsewhere(workdir) is None


# ---------------------------------------------------------------- the whole launcher

ENDLESS_SWEEP = '''
import os
from attnlab.defaults import load_config_file
base = load_config_file(os.path.join({sweeps!r}, "long_sentence.py"))

def get_config(arg=None):
  config = base.get_config("tiny,seeds=1")
  config.train.num_steps = 10**6  # trains until stopped
  config.train.log_every = 2
  config.train.eval_every = config.train.checkpoint_every = 10**6
  return config

def get_sweep(arg=None):
  names = ("dot", "general", "additive")
  return {{"variant": {{name: {{"model.attention": name}} for name in names}}}}
'''


@pytest.mark.slow
def test_sigterm_stops_the_launcher_after_its_trials(tmp_path):
  """A launcher on a real sweep, SIGTERMed while two trials train and one waits: both trials
  checkpoint and exit (143), none is left running, the third never starts, and the launcher
  exits 143 (as the trainer does)."""
  sweep_file = tmp_path / "endless.py"
  sweep_file.write_text(ENDLESS_SWEEP.format(sweeps=str(SWEEPS)))
  root = tmp_path / "runs"
  names = ["variant=dot", "variant=general", "variant=additive"]
  env = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true"}
  launcher = subprocess.Popen(
      [sys.executable, "-m", "experiments.sweep", "--sweep", str(sweep_file), "--root", str(root),
       "--max_parallel", "2"], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)

  def training(name):  # the trial logged a training step: past start-up, in the loop
    metrics = root / name / "metrics.jsonl"
    return metrics.exists() and metrics.stat().st_size > 0

  pids = []
  try:
    _wait_until(lambda: launcher.poll() is not None or all(map(training, names[:2])), 300,
                "two trials to train")
    assert launcher.poll() is None, launcher.communicate()
    for name in names[:2]:
      status = json.loads((root / name / "status.json").read_text())
      assert status["status"] == "running"
      pids.append(status["pid"])
    assert all(map(_alive, pids))
    launcher.send_signal(signal.SIGTERM)
    out, err = launcher.communicate(timeout=240)
  finally:
    if launcher.poll() is None:
      launcher.kill()
      launcher.wait()
    for pid in pids:  # clean up after a failure
      if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
  assert launcher.returncode == 143, (out, err)
  assert not any(map(_alive, pids))
  assert _processes_mentioning(str(root)) == []  # no trial process left at all
  for name in names[:2]:
    status = json.loads((root / name / "status.json").read_text())
    assert status["status"] == "stopped" and status["stopped_by"] == "SIGTERM"
    assert status["returncode"] == 143, status  # the trainer checkpointed and exited itself
  assert not (root / names[2]).exists()
  recorded = json.loads((root / "sweep.json").read_text())
  assert recorded["stopped_by"] == "SIGTERM"
  assert [t["status"] for t in recorded["trials"]] == ["stopped", "stopped", "not started"]
  assert "SIGTERM: stopping 2 running trial(s)" in out
  assert "rerun the same command to resume" in out


# ---------------------------------------------------------------- Ray's side, without Ray

def test_ray_capacity_is_what_the_cluster_holds_at_once():
  assert ray_launch.ray_capacity({"CPU": 16.0}, 1.0) == 16
  assert ray_launch.ray_capacity({"CPU": 16.0, "GPU": 4.0}, 2.0, 1.0) == 4  # GPUs bound it
  assert ray_launch.ray_capacity({"CPU": 16.0, "GPU": 4.0}, 2.0, 0.5) == 8  # CPUs bound it
  assert ray_launch.ray_capacity({"CPU": 3.0}, 2.0) == 1
  with pytest.raises(cli.UsageError, match="needs 4 CPU"):
    ray_launch.ray_capacity({"CPU": 2.0}, 4.0)
  with pytest.raises(cli.UsageError, match="0 GPU"):
    ray_launch.ray_capacity({"CPU": 8.0}, 1.0, 1.0)


def test_gpus_per_trial_defaults_to_one_gpu_on_a_gpu_cluster():
  assert ray_launch.resolve_gpus_per_trial(None, {"CPU": 8.0, "GPU": 2.0}) == 1.0
  assert ray_launch.resolve_gpus_per_trial(None, {"CPU": 8.0}) == 0.0
  assert ray_launch.resolve_gpus_per_trial(0.25, {"CPU": 8.0, "GPU": 1.0}) == 0.25
  # Asked for none: CPU only.
  assert ray_launch.resolve_gpus_per_trial(0.0, {"CPU": 8.0, "GPU": 1.0}) == 0.0
  with pytest.raises(cli.UsageError, match="has 0 GPU"):
    ray_launch.resolve_gpus_per_trial(1.0, {"CPU": 8.0})


def test_ray_task_options_request_the_trials_gpus():
  assert ray_launch.ray_task_options(2.0, 1.0) == {"num_cpus": 2.0, "num_gpus": 1.0,
                                                   "max_retries": 0}
  assert ray_launch.ray_task_options(1.0, 0.0)["num_gpus"] == 0.0
  # Trials sharing a GPU.
  assert ray_launch.trial_env(1.0, 0.5)["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
  assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in ray_launch.trial_env(1.0, 1.0)
  assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in ray_launch.trial_env(1.0, 0.0)


def test_trial_env_bounds_xla_threads_to_the_cpus_asked_for():
  assert [ray_launch.trial_env(c, 0.0)["NPROC"] for c in (0.5, 1.0, 2.0, 2.5, 16.0)] == [
      "1", "1", "2", "2", "16"]


XLA_THREADS = """
import collections, os
import jax, jax.numpy as jnp
jax.jit(lambda x: x @ x)(jnp.ones((256, 256))).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(sum("XLAEigen" in name for name in names))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_trial_env_limits_the_threads_xla_computes_with():
  """What the limit does in a real JAX process: XLA's compute pool has as many threads as the
  trial's CPUs, whatever the host's cores (3 on any host, 1 on a many-core one)."""
  host = {k: v for k, v in os.environ.items() if k != "NPROC"}

  def xla_threads(env):
    out = subprocess.run([sys.executable, "-c", XLA_THREADS], env={**host, **env},
                         capture_output=True, text=True, check=True, cwd=REPO)
    return int(out.stdout.split()[-1])
  if xla_threads({}) == 0:
    pytest.skip("this jaxlib names no XLAEigen threads: nothing to count")
  assert xla_threads(ray_launch.trial_env(1.0, 0.0)) == 1
  assert xla_threads(ray_launch.trial_env(3.0, 0.0)) == 3


def test_ray_trials_run_with_their_thread_limit(tmp_path):
  ray = pytest.importorskip("ray")  # optional extra [ray]; CI installs only [test]
  trial = {"name": "env", "workdir": str(tmp_path / "env"),
           "command": [sys.executable, "-c", "import os; print(os.environ['NPROC'])"]}
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    (status,) = ray_launch.launch_ray([trial], max_parallel=1, address=None,
                                      cpus_per_trial=2.0, gpus_per_trial=0.0)
  finally:
    ray.shutdown()
  assert status["status"] == "ok"
  assert (tmp_path / "env" / "stdout.txt").read_text() == "2\n"


@pytest.mark.parametrize("cpus,gpus,needle", [(0.0, None, "cpus_per_trial=0"),
                                              (1.0, -1.0, "gpus_per_trial=-1"),
                                              (1.0, 1.5, "gpus_per_trial=1.5")])
def test_bad_trial_resources(cpus, gpus, needle):
  with pytest.raises(cli.UsageError, match=needle):
    ray_launch.check_trial_resources(cpus, gpus)
  ray_launch.check_trial_resources(1.0, 2.0)
  ray_launch.check_trial_resources(0.5, 0.25)


def test_workers_run_trials_with_their_own_python(tmp_path):
  """The driver's interpreter path (a venv on the head node) may not exist on a worker."""
  command = grid.trial_command("/c.py:small", tmp_path / "x", {"model.attention": "dot"})
  driver = ["/home/someone/.venv/bin/python", *command[1:]]
  assert ray_launch.worker_command(driver) == [sys.executable, *command[1:]]
  trial = {"name": "x", "workdir": str(tmp_path / "x"),
           "command": ["/no/such/driver/python", "-c", "import sys; print(sys.executable)"]}
  status = ray_launch.run_trial_on_worker(trial, str(REPO), {})
  assert status["status"] == "ok", status
  assert (tmp_path / "x" / "stdout.txt").read_text().strip() == sys.executable


@pytest.mark.parametrize("flags,needle", [
    (["--cpus_per_trial=2"], "--cpus_per_trial is for --launcher=ray"),
    (["--launcher=ray", "--gpus_per_trial=1.5"], "--gpus_per_trial=1.5"),
    (["--launcher=ray", "--cpus_per_trial=0"], "--cpus_per_trial=0"),
    (["--max_parallel=-1"], "max_parallel"),
])
def test_bad_launcher_flags_exit_2_with_one_line(tmp_path, capsys, flags, needle):
  with pytest.raises(SystemExit) as exit_info:
    sweep.main(["--sweep", str(SWEEPS / "alignment.py:tiny"), "--root", str(tmp_path), *flags])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
  assert not (tmp_path / "sweep.json").exists()


class _FakeRay:
  """Just enough of ``ray`` for ``launch_ray``: a task runs when ``ray.wait`` looks at it."""

  class exceptions:  # noqa: N801  (ray.exceptions)
    class TaskCancelledError(Exception):
      pass

  def __init__(self):
    self.submitted, self.cancelled, self.calls = [], [], {}

  def is_initialized(self):
    return True  # as if the caller had started it: launch_ray neither inits nor shuts down

  def cluster_resources(self):
    return {"CPU": 2.0}

  def remote(self, function):
    fake = self

    class Task:
      def options(self, **options):
        fake.options = options
        return self

      def remote(self, *args):
        ref = len(fake.submitted)
        fake.submitted.append(ref)
        fake.calls[ref] = (function, args)
        return ref
    return Task()

  def wait(self, refs, num_returns, timeout):  # noqa: ARG002
    return refs[:1], refs[1:]

  def get(self, ref):
    function, args = self.calls.pop(ref)
    return function(*args)

  def cancel(self, ref, force=False):
    self.cancelled.append((ref, force))


def test_the_ray_launcher_shares_the_local_queue(tmp_path, monkeypatch):
  """Without Ray installed: the tasks ``launch_ray`` submits run ``run_trial_on_worker`` and
  come back through the queue both launchers share, in order, at most ``max_parallel`` at
  once."""
  fake = _FakeRay()
  monkeypatch.setitem(sys.modules, "ray", fake)
  trials = [{"name": name, "workdir": str(tmp_path / name),
             "command": ["/no/such/python", "-c", code]}
            for name, code in (("ok", "print('trained')"), ("crash", "raise SystemExit(3)"))]
  done = []
  statuses = ray_launch.launch_ray(trials, max_parallel=1, address=None, on_done=done.append)
  assert [s["status"] for s in statuses] == ["ok", "failed"] and done == statuses
  assert statuses[1]["returncode"] == 3
  assert fake.options == {"num_cpus": 1.0, "num_gpus": 0.0, "max_retries": 0}
  assert (tmp_path / "ok" / "stdout.txt").read_text() == "trained\n"  # the worker's Python
  assert json.loads((tmp_path / "crash" / "status.json").read_text())["status"] == "failed"


# ---------------------------------------------------------------- Ray, when installed

def test_ray_stop_cancels_the_tasks_and_their_trials(tmp_path):
  ray = pytest.importorskip("ray")  # optional extra [ray]; CI installs only [test]
  trials = _sleepers(tmp_path, 3)
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    stop = launch.StopSignals()
    _signal_when_ready(stop, [tmp_path / "ready0", tmp_path / "ready1"], [signal.SIGTERM])
    start = time.time()
    # 2 CPUs: 2 at once.
    statuses = ray_launch.launch_ray(trials, max_parallel=0, address=None, stop=stop)
  finally:
    ray.shutdown()
  assert time.time() - start < 90
  assert [s["status"] for s in statuses] == ["stopped", "stopped", "not started"]
  for ready in ("ready0", "ready1"):
    assert not _alive(int((tmp_path / ready).read_text()))
  assert json.loads((tmp_path / "t0" / "status.json").read_text())["returncode"] == 143
