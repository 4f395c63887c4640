"""A sweep file's grid: its trials, their names and their ``attnlab.main`` commands.

A sweep file is an experiment config (``get_config(arg)``, the base config of every trial)
that also defines ``get_sweep(arg)``: the grid's axes, in order, each a dict from a value's
label to the dotted config overrides it stands for (``experiments.sweep``'s docstring shows
one). The trials are the product of the axes, the first axis varying slowest; a trial is named
by its labels (``variant=dot,train_len=20``), which is also its workdir's name under the
sweep's root. Nothing here runs anything: ``plan`` is what ``ROOT/sweep.json`` records.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import pathlib
import sys
from collections.abc import Iterable, Mapping

from attnlab.defaults import load_config_file


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


def format_value(value) -> str:
  """A config value as a command-line override (what config_flags parses back)."""
  if isinstance(value, (list, tuple)):
    return ",".join(format_value(v) for v in value)
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
          *(f"--config.{key}={format_value(value)}" for key, value in overrides.items()),
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
