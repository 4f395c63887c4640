"""A sweep's finished trials, read back from its root: each trial's labels, config and one
run per trained model (seed), with its test metrics and per-sentence test outcomes.

``load_trials`` reads ``ROOT/sweep.json`` (``experiments.sweep``: the trials and their axis
labels), else takes every subfolder named ``axis=label,...``, else ``ROOT`` as a single run's
workdir; and per finished trial its ``config.json`` (with today's keys:
``attnlab.run_config.upgrade_config``) and ``summary.json`` (``attnlab.run_record``). A trial
contributes one run per seed: ``summary["seeds"]`` when it trained ``num_seeds`` seeds at once
(each in its seed folder), else its one ``summary["test"]``. Beam decodings of the same
models (``eval.test_beam_sizes``) become a ``decoding`` axis (``with_decodings``), tests at
matched training steps (``eval.test_at_steps``) a ``checkpoint`` axis (``with_checkpoints``).
``group_runs`` pools the seeds of each setting.

A run is a dict: ``seed``, ``label`` (``seed <k>``, or ``run`` for a single model), ``test``
(its test metrics and the trial's training cost, ``cost_scalars``), ``test_beam``,
``longest_test_example``, ``folder`` (the model's own, with its metrics.jsonl),
``outcomes`` (the rows of its test_outcomes.jsonl, None without) and ``train_max_src_len``.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Mapping, Sequence

from attnlab import run_config, run_record

BEST = "best"  # the checkpoint axis' label of the final test (the best checkpoint's)


class ResultsError(ValueError):
  """Nothing to read: no such folder, a run that has not finished, no finished trial."""


def labels_from_name(name: str) -> dict[str, str] | None:
  """``axis=label,axis=label`` -> {axis: label}; None for a name of another form."""
  parts = [p.partition("=") for p in name.split(",")]
  if not all(eq for _, eq, _ in parts):
    return None
  return {axis: label for axis, _, label in parts}


def _entries(root: pathlib.Path) -> tuple[list[tuple[str, dict]], dict]:
  """(trial folder name, labels) of every trial under ``root``, and the report defaults."""
  if (root / run_record.SWEEP).exists():
    sweep = run_record.read_json(root / run_record.SWEEP)
    return [(t["name"], t["labels"]) for t in sweep["trials"]], sweep.get("report", {})
  if run_record.is_finished(root) or (root / run_record.CONFIG).exists():  # one run
    if not run_record.is_finished(root):
      raise ResultsError(f"--root {root} is a run's workdir without summary.json: the run has "
                         "not finished (rerun its attnlab.main command to resume it)")
    return [(".", {"run": root.resolve().name})], {}
  entries = [(p.name, labels_from_name(p.name)) for p in sorted(root.iterdir()) if p.is_dir()]
  return [(n, labels) for n, labels in entries if labels], {}


def cost_scalars(cost: Mapping | None) -> dict:
  """A run's training cost as report metrics: ``train_steps_per_second`` (every seed of a
  multi-seed run trains in the same step) and ``train_step_memory_mb`` (XLA's memory of the
  compiled train step, where the run measured it: ``train.measure_memory``)."""
  cost = cost or {}
  out = {}
  if isinstance(cost.get("train_steps_per_second"), (int, float)):
    out["train_steps_per_second"] = float(cost["train_steps_per_second"])
  if isinstance(cost.get("train_step_memory_bytes"), (int, float)):
    out["train_step_memory_mb"] = cost["train_step_memory_bytes"] / 2**20
  return out


def read_runs(workdir: pathlib.Path) -> tuple[dict, list[dict]]:
  """A finished run's config and its models as runs (module doc)."""
  summary = run_record.read_json(workdir / run_record.SUMMARY)
  config = run_config.upgrade_config(run_record.read_json(workdir / run_record.CONFIG))
  cost = cost_scalars(summary.get("cost"))
  train_length = config["data"]["train_max_src_len"]
  runs = []
  for label, folder, entry in run_record.model_dirs(workdir, summary):
    if "seeds" not in summary:  # one model: the summary's own test
      entry = {"seed": config["seed"], "test": summary["test"],
               "test_beam": summary.get("test_beam", {}),
               "longest_test_example": summary.get("longest_test_example")}
    runs.append({**entry, "test": {**entry["test"], **cost}, "label": label, "folder": folder,
                 "outcomes": run_record.read_outcomes(folder), "train_max_src_len": train_length})
  return config, runs


def load_trials(root: str | os.PathLike) -> tuple[list[dict], dict]:
  """The finished trials under ``root``: [{"name", "labels", "config", "runs"}] (module doc),
  and the sweep's report defaults (its ``get_report``). Unfinished or failed trials are
  skipped (and listed on stderr). ``root`` may be a single run's workdir: one trial, labelled
  ``{"run": folder name}``. ``ResultsError`` when there is nothing to read;
  ``run_record.RecordError`` for a damaged file."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise ResultsError(f"--root {root}: no such folder")
  entries, defaults = _entries(root)
  trials, missing = [], []
  for name, labels in entries:
    workdir = root / name
    if not run_record.is_finished(workdir):
      missing.append(name)
      continue
    config, runs = read_runs(workdir)
    trials.append({"name": name, "labels": dict(labels), "config": config, "runs": runs})
  if missing:
    print(f"skipping {len(missing)} unfinished or failed trial(s): {', '.join(missing)}",
          file=sys.stderr)
  if not trials:
    raise ResultsError(f"no finished trials (summary.json) under {root}: --root takes a sweep's "
                       "root (experiments.sweep --root) or a single run's workdir")
  return with_decodings(with_checkpoints(trials)), defaults


def with_decodings(trials: Sequence[dict]) -> list[dict]:
  """Adds a ``decoding`` axis when a trial decoded its test set with several beams
  (``eval.test_beam_sizes``: each run's ``test_beam``): each trial labelled with its own
  decoding (``eval.beam_size``: ``greedy`` or ``beam<k>``), followed by one copy per extra
  beam size that all its runs have (labelled ``beam<k>``, ``decoded_again``: the same models,
  the test metrics and outcomes of that decoding). Else ``trials`` as they are."""
  if not any(r.get("test_beam") for t in trials for r in t["runs"]):
    return list(trials)
  expanded = []
  for trial in trials:
    own = run_record.decoding_name(trial["config"].get("eval", {}).get("beam_size", 1))
    expanded.append({**trial, "labels": {**trial["labels"], "decoding": own}})
    sizes = sorted({int(k) for r in trial["runs"] for k in r.get("test_beam") or {}})
    for size in sizes:
      label = run_record.decoding_name(size)
      if label == own or not all(str(size) in (r.get("test_beam") or {}) for r in trial["runs"]):
        continue
      runs = [{**r, "test": r["test_beam"][str(size)], "longest_test_example": None,
               "outcomes": run_record.read_outcomes(r["folder"], label)} for r in trial["runs"]]
      expanded.append({**trial, "labels": {**trial["labels"], "decoding": label},
                       "runs": runs, "decoded_again": True})
  return expanded


def _matched_steps(folder: pathlib.Path) -> dict[int, dict]:
  """{step: test metrics} of a model's ``test_at_step`` records (its metrics.jsonl)."""
  return {int(r["step"]): r for r in run_record.read_jsonl(pathlib.Path(folder) /
                                                           run_record.METRICS)
          if r.get("split") == run_record.TEST_AT_STEP}


def with_checkpoints(trials: Sequence[dict]) -> list[dict]:
  """Adds a ``checkpoint`` axis when trials were also tested at matched training steps
  (``eval.test_at_steps``: ``test_at_step`` records in each model's metrics.jsonl,
  ``test_outcomes_step<k>.jsonl``): each trial labelled ``best`` (the final test, at the
  checkpoint validation chose), then one copy per step that all its runs have (``step<k>``,
  ``decoded_again``: the same training), whose runs hold that step's test metrics and
  outcomes; so variants compare after equal training as well as each at its best. Else
  ``trials`` as they are."""
  matched = [[_matched_steps(r["folder"]) for r in t["runs"]] for t in trials]
  if not any(m for runs in matched for m in runs):
    return list(trials)
  expanded = []
  for trial, per_run in zip(trials, matched):
    expanded.append({**trial, "labels": {**trial["labels"], "checkpoint": BEST}})
    for step in sorted(set.intersection(*(set(m) for m in per_run))):
      label = run_record.step_name(step)
      runs = [{**r, "test": {k: v for k, v in m[step].items() if k not in ("step", "split")},
               "test_beam": {}, "longest_test_example": None,
               "outcomes": run_record.read_outcomes(r["folder"], label)}
              for r, m in zip(trial["runs"], per_run)]
      expanded.append({**trial, "labels": {**trial["labels"], "checkpoint": label},
                       "runs": runs, "decoded_again": True})
  return expanded


def group_runs(trials: Sequence[dict]) -> tuple[list[str], dict[tuple, list[dict]]]:
  """Pools seeds: (the axes but ``seed``, {their labels: [run, ...]}) in sweep order."""
  axes = [a for a in trials[0]["labels"] if a != "seed"]
  groups: dict[tuple, list[dict]] = {}
  for trial in trials:
    key = tuple(trial["labels"][a] for a in axes)
    groups.setdefault(key, []).extend(trial["runs"])
  return axes, groups
