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
(extra ``--config.KEY=VALUE``, ``--jax_cache_dir=DIR`` and ``--keep_host_memory=BOOL`` flags go
to every trial).
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
compute threads; ``--max_parallel`` defaults to what the cluster holds at once. Workers run
the trials with their own Python and need this checkout and ROOT at the same paths as the
driver (a shared filesystem). A stopped launcher cancels its Ray tasks; each worker passes
SIGTERM on to its trial and waits for it.

The jobs live in their own modules: ``experiments.grid`` (the trials of a sweep file and their
commands), ``experiments.launch`` (trial processes, the queue every launcher shares, stop
signals), ``experiments.locks`` (a trial already running elsewhere), ``experiments.ray_launch``
(Ray) and ``experiments.parent_death`` (no trial outlives a killed launcher); this module is
the command line and ``run_sweep``. What a sweep writes is the run record's
(``attnlab.run_record``).
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time
from collections.abc import Iterable, Sequence

from absl import flags

from attnlab import run_record
from experiments import cli
from experiments.grid import plan, select
from experiments.launch import StopSignals, launch_local, signal_name
from experiments.ray_launch import check_trial_resources, launch_ray


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
  todo = [t for t in chosen if not run_record.is_finished(t["workdir"])]
  for trial in sweep["trials"]:
    trial["status"] = ("skipped (complete)" if run_record.is_finished(trial["workdir"]) else
                       "pending" if trial in todo else "not selected (--only)")
  run_record.write_json(root / run_record.SWEEP, sweep)
  complete = sum(run_record.is_finished(t["workdir"]) for t in sweep["trials"])
  unselected = len(sweep["trials"]) - len(chosen)
  at_once = max_parallel or (1 if launcher == "local" else "the cluster's capacity")
  print(f"{len(sweep['trials'])} trials, {complete} already complete, "
        + (f"{unselected} not selected, " if only else "")
        + f"running {len(todo)} ({launcher}, at most {at_once} at once) under {root.resolve()}",
        flush=True)

  def report(status: dict) -> None:
    line = f"{status['status']:7s} {status['name']}"
    if status.get("wall_time_s") is not None:
      line += f"  ({status['wall_time_s']:.0f} s"
      if status.get("runs", 1) > 1:
        line += f"; {status['total_wall_time_s']:.0f} s over {status['runs']} runs"
      line += ")"
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
    sweep["stopped_by"] = signal_name(stop.received[0])
  run_record.write_json(root / run_record.SWEEP, sweep)
  return sweep


# ---------------------------------------------------------------- command line

# attnlab.main flags that a sweep passes on to every trial, beside --config.KEY=VALUE.
TRIAL_FLAGS = ("jax_cache_dir", "verbosity", "keep_host_memory")


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
