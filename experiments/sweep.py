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
``python -m attnlab.main --config FILE:ARG --workdir ROOT/<name> --config.KEY=VALUE ...``.
An optional ``get_report(arg)`` returns defaults for ``experiments.report`` (e.g. which axis is
the x axis); they are recorded in ``ROOT/sweep.json`` with the trials.

Rerunning the same command skips trials that finished (``summary.json`` in their workdir) and
resumes unfinished ones from their checkpoints. A trial that fails is recorded in its
``status.json`` (return code, stderr tail) and the others go on; the exit status is 1 if any
trial failed. ``--launcher=ray`` submits the same commands as Ray tasks to a local Ray
instance or to a cluster (``--ray_address``); the workers then need this checkout and ROOT at
the same paths (a shared filesystem).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import importlib.util
import itertools
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping

REPO = pathlib.Path(__file__).resolve().parents[1]
STDERR_TAIL_CHARS = 4000


# ---------------------------------------------------------------- the grid

def import_file(path: str | os.PathLike):
  """Imports a Python file by path (a config file), as ml_collections' config_flags does.

  Sweep files load the experiment configs beside them this way: putting ``configs/`` on
  sys.path would let ``configs/copy.py`` shadow the standard library's ``copy``.
  """
  path = os.path.abspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no such file: {path}")
  spec = importlib.util.spec_from_file_location(
      "attnlab_config_" + pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep_module(path: str):
  """Imports a sweep file by path; it must define ``get_sweep``."""
  module = import_file(path)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep(arg): it is a config, not a sweep")
  return module


def split_spec(spec: str) -> tuple[str, str | None]:
  """``FILE[:ARG]`` -> (FILE, ARG or None)."""
  path, _, arg = spec.partition(":")
  return path, (arg or None)


def apply_seeds_and_steps(config, args: dict):
  """The sweep-config arguments every sweep shares: ``seeds=N`` (vmapped seeds per trial;
  default 2 / 3 / 5 for the tiny / small / full profile) and ``steps=N`` (train N steps,
  evaluating and checkpointing once, at the end)."""
  config.num_seeds = args["seeds"] or {"tiny": 2, "small": 3, "full": 5}[args["profile"]]
  if args["steps"]:
    config.train.num_steps = args["steps"]
    config.train.log_every = config.train.eval_every = args["steps"]
    config.train.checkpoint_every = args["steps"]
  return config


def parse_arg(arg: str | None, **defaults) -> dict:
  """A sweep/config argument ``"small,task=mar_eng"`` -> {"profile": "small", "task": ...}.

  The first bare word is the profile; ``key=value`` pairs override ``defaults`` (values are
  parsed as the default's type). Unknown keys fail with the valid ones (as big_vision's
  ``bvcc.parse_arg``).
  """
  result = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, eq, value = part.partition("=")
    if not eq:
      key, value = "profile", part
    if key not in defaults:
      raise ValueError(f"unknown argument {key!r} in {arg!r}; valid: {', '.join(defaults)}")
    kind = type(defaults[key])
    result[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
  return result


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


def run_trial(trial: Mapping, cwd: str | os.PathLike = REPO) -> dict:
  """Runs one trial's command to completion (stdout/stderr to files in its workdir).

  Returns its status (also written to ``workdir/status.json``): ``ok`` or ``failed`` with
  the return code, wall time and, when it failed, the last characters of its stderr.
  Importable by Ray workers: it needs nothing but the trial dict.
  """
  workdir = pathlib.Path(trial["workdir"])
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.time()
  with open(workdir / "stdout.txt", "w", encoding="utf-8") as out, \
       open(workdir / "stderr.txt", "w", encoding="utf-8") as err:
    try:
      returncode = subprocess.run(trial["command"], stdout=out, stderr=err, cwd=cwd,
                                  check=False).returncode
    except OSError as e:  # the interpreter itself could not start
      err.write(f"{type(e).__name__}: {e}\n")
      returncode = -1
  status = {"name": trial["name"], "status": "ok" if returncode == 0 else "failed",
            "returncode": returncode, "wall_time_s": round(time.time() - start, 2),
            "command": trial["command"]}
  if returncode != 0:
    status["stderr_tail"] = (workdir / "stderr.txt").read_text(
        encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
  _write_json(workdir / "status.json", status)
  return status


def launch_local(trials: list[dict], max_parallel: int,
                 on_done: Callable[[dict], None] = lambda status: None) -> list[dict]:
  """Runs trials as local processes, at most ``max_parallel`` at once; statuses in order."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
    futures = {pool.submit(run_trial, trial): i for i, trial in enumerate(trials)}
    results: list[dict] = [{}] * len(trials)
    for future in concurrent.futures.as_completed(futures):
      results[futures[future]] = future.result()
      on_done(results[futures[future]])
  return results


def launch_ray(trials: list[dict], max_parallel: int, address: str | None,
               cpus_per_trial: float = 1.0,
               on_done: Callable[[dict], None] = lambda status: None) -> list[dict]:
  """Runs trials as Ray tasks (one process each, as locally); at most max_parallel in flight.

  address: a running cluster (``ray://host:10001`` or ``auto``); None starts a local Ray.
  """
  try:
    import ray  # optional: pip install -e '.[ray]'
  except ImportError:
    raise SystemExit("--launcher=ray needs Ray: pip install -e '.[ray]'") from None
  started_here = not ray.is_initialized()
  if started_here:
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.fspath(REPO)}})
  remote = ray.remote(num_cpus=cpus_per_trial, max_retries=0)(run_trial)
  try:
    pending, queued, results = {}, list(enumerate(trials)), [{}] * len(trials)
    while queued or pending:
      while queued and len(pending) < max(1, max_parallel):
        i, trial = queued.pop(0)
        pending[remote.remote(trial, os.fspath(REPO))] = i
      done, _ = ray.wait(list(pending), num_returns=1)
      for ref in done:
        i = pending.pop(ref)
        try:
          results[i] = ray.get(ref)
        except Exception as e:  # noqa: BLE001  (the worker died: record it like a failure)
          results[i] = {"name": trials[i]["name"], "status": "failed", "returncode": None,
                        "stderr_tail": f"Ray task failed: {type(e).__name__}: {e}"[-4000:]}
          _write_json(pathlib.Path(trials[i]["workdir"]) / "status.json", results[i])
        on_done(results[i])
  finally:
    if started_here:
      ray.shutdown()
  return results


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


def run_sweep(sweep_spec: str, root: str | os.PathLike, launcher: str = "local",
              max_parallel: int = 1, ray_address: str | None = None,
              extra_flags: Iterable[str] = (), only: Iterable[str] | None = None) -> dict:
  """Plans, skips finished trials, launches the rest (those matching ``only``, if given);
  returns ``ROOT/sweep.json``'s content."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  sweep = plan(sweep_spec, root, extra_flags)
  chosen = select(sweep["trials"], only)
  todo = [t for t in chosen if not is_complete(t["workdir"])]
  for trial in sweep["trials"]:
    trial["status"] = ("skipped (complete)" if is_complete(trial["workdir"]) else
                       "pending" if trial in todo else "not selected (--only)")
  _write_json(root / "sweep.json", sweep)
  complete = sum(is_complete(t["workdir"]) for t in sweep["trials"])
  unselected = len(sweep["trials"]) - len(chosen)
  print(f"{len(sweep['trials'])} trials, {complete} already complete, "
        + (f"{unselected} not selected, " if only else "")
        + f"running {len(todo)} ({launcher}, at most {max_parallel} at once) under {root}",
        flush=True)

  def report(status: dict) -> None:
    line = f"{status['status']:6s} {status['name']}"
    if status.get("wall_time_s") is not None:
      line += f"  ({status['wall_time_s']:.0f} s)"
    if status["status"] != "ok":
      tail = status.get("stderr_tail", "").strip().splitlines()
      line += f"  returncode {status.get('returncode')}: {tail[-1] if tail else ''}"
    print(line, flush=True)

  start = time.time()
  if launcher == "ray":
    statuses = launch_ray(todo, max_parallel, ray_address, on_done=report)
  else:
    statuses = launch_local(todo, max_parallel, on_done=report)
  by_name = {s["name"]: s for s in statuses}
  for trial in sweep["trials"]:
    if trial["name"] in by_name:
      trial["status"] = by_name[trial["name"]]["status"]
  sweep["wall_time_s"] = round(time.time() - start, 1)
  _write_json(root / "sweep.json", sweep)
  return sweep


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sweep", required=True, help="sweep file, FILE.py[:ARG]")
  parser.add_argument("--root", required=True, help="folder holding one workdir per trial")
  parser.add_argument("--launcher", choices=("local", "ray"), default="local")
  parser.add_argument("--max_parallel", type=int, default=1,
                      help="trials running at once (local processes or Ray tasks)")
  parser.add_argument("--ray_address", default=None,
                      help="Ray cluster to submit to (default: start a local Ray)")
  parser.add_argument("--only", nargs="+", default=None, metavar="PATTERN",
                      help="run only trials whose names match these fnmatch patterns, in "
                           "pattern order (e.g. 'variant=dot,*')")
  parser.add_argument("--dry_run", action="store_true", help="print the trial commands only")
  args, extra = parser.parse_known_args(argv)
  if extra and not all(flag.startswith("--") for flag in extra):
    parser.error(f"unexpected arguments: {' '.join(extra)}")
  # Anything else (e.g. --config.train.num_steps=10) is passed to every trial.
  if args.dry_run:
    for trial in select(plan(args.sweep, args.root, extra)["trials"], args.only):
      print(" ".join(trial["command"]))
    return 0
  sweep = run_sweep(args.sweep, args.root, args.launcher, args.max_parallel, args.ray_address,
                    extra, args.only)
  failed = [t["name"] for t in sweep["trials"] if t["status"] == "failed"]
  print(f"done in {sweep['wall_time_s']:.0f} s: {len(sweep['trials']) - len(failed)} ok or "
        f"complete, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
