"""The figures of ``experiments.report`` and its learning curves (``learning_curves.csv`` and
``learning_curves[__<axis>-<label>].png``), from the trials and rows ``report`` reads.

Learning curves come from each model's ``metrics.jsonl`` (``seed_<k>/metrics.jsonl`` per seed
of a multi-seed run): its ``valid`` records, i.e. the validation split every
``train.eval_every`` steps. Per setting (the axes but ``seed`` and ``decoding``: every
decoding of a trial shares its training) and step, the mean and sample std over its seeds of
its ``train.best_metric`` (what picks its best checkpoint) and of the validation loss.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from attnlab import plots
from attnlab import run_record

# Axes a learning curve does not depend on: seeds are pooled; decodings and the checkpoints
# tested (best, step<k>) share the training.
POOLED = ("seed", "decoding", "checkpoint")
CURVE_FIELDS = ("metric", "step", "mean", "std", "num_seeds")


def suffix(setting: Mapping[str, str]) -> str:
  """A figure's file-name suffix for the values of the other axes: ``__axis-label...``."""
  return "".join(f"__{a}-{v}" for a, v in setting.items())


def title(setting: Mapping[str, str]) -> str:
  return ", ".join(f"{a}={v}" for a, v in setting.items())


def merged_line(axes: Sequence[str], rows: Sequence[dict],
                line_axes: Sequence[str]) -> tuple[list[str], list[dict]]:
  """``rows`` with ``line_axes`` (two or more) joined into one axis, named
  ``",".join(line_axes)``, whose labels read ``bahdanau, train_len=30``: figures with one line
  per combination (Bahdanau et al.'s Fig. 2: a line per model and training length). Returns
  the new axes (the merged one in place of the first of ``line_axes``) and rows."""
  name = ",".join(line_axes)
  label = lambda r: ", ".join([str(r[line_axes[0]])] + [  # noqa: E731
      f"{a}={r[a]}" for a in line_axes[1:]])
  merged = [name if a == line_axes[0] else a for a in axes if a not in line_axes[1:]]
  out = []
  for r in rows:
    row = {k: v for k, v in r.items() if k not in line_axes}
    row[name] = label(r)
    out.append(row)
  return merged, out


def merged_groups(axes: Sequence[str], groups: Mapping[tuple, list[dict]],
                  line_axes: Sequence[str]) -> tuple[list[str], dict[tuple, list[dict]]]:
  """``groups`` (keyed by ``axes``' labels) re-keyed as ``merged_line`` merges the rows."""
  merged, settings = merged_line(axes, [dict(zip(axes, k)) for k in groups], line_axes)
  return merged, {tuple(s[a] for a in merged): runs for s, runs in zip(settings, groups.values())}


def _train_lengths(panel_runs: Sequence[list[dict]]) -> list[int]:
  """The longest training sources of a figure's runs (none where a run had no cap)."""
  lengths = {run.get("train_max_src_len") or 0 for runs in panel_runs for run in runs}
  return [] if 0 in lengths else sorted(lengths)


def figures(axes: Sequence[str], table_rows: Sequence[dict], groups: Mapping[tuple, list[dict]],
            out: pathlib.Path, line: str, metrics: Sequence[tuple[str, str]],
            x_axis: str = "length", seed_index: int = 0,
            attention_dpi: int = 60) -> list[pathlib.Path]:
  """Metric-vs-length (or vs ``x_axis``) curves of ``metrics`` ((key, label) pairs) and
  attention grids; returns the paths. Against length, a grey line marks the longest training
  source (``data.train_max_src_len``) of a figure's runs, one per length where they differ."""
  others = [a for a in axes if a not in (line, x_axis)]
  panels_of = lambda s: tuple(s[a] for a in others)  # noqa: E731
  paths = []
  for metric, label in metrics:
    if x_axis == "length":
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] != "all"]
    else:
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] == "all"]
    for panel in dict.fromkeys(panels_of(r) for r in mine):
      curves = {}
      for r in (r for r in mine if panels_of(r) == panel):
        x = r["mean_length"] if x_axis == "length" else float(r[x_axis])
        curves.setdefault(r[line], ([], [], []))
        for values, v in zip(curves[r[line]], (x, r["mean"], r["std"])):
          values.append(v)
      setting = dict(zip(others, panel))
      heading = f"{label}" + (f" ({title(setting)})" if setting else "")
      name = f"{metric}_vs_{x_axis}{suffix(setting)}.png"
      if x_axis == "length":
        ylabel = "corpus BLEU of the bucket" if metric == "bleu" else label
        fig = plots.metric_vs_length_figure(
            curves, xlabel="source length (words; mean of each length bucket)",
            ylabel=ylabel, title=heading)
        longest = _train_lengths([runs for key, runs in groups.items()
                                  if panels_of(dict(zip(axes, key))) == panel])
        for n, style in zip(longest, ("--", ":", "-.")):  # to its right: extrapolation
          fig.axes[0].axvline(n + 0.5, color="grey", linestyle=style, linewidth=1,
                              label=f"longest training source ({n})")
        if longest:
          fig.axes[0].legend()
      else:
        fig = plots.metric_vs_length_figure(curves, xlabel=x_axis, ylabel=label, title=heading)
        fig.axes[0].set_xscale("log", base=2)
      fig.savefig(out / name, dpi=100)
      paths.append(out / name)
  # Attention grid: one panel per value of the line axis, for each value of the other axes.
  grid_others = [a for a in axes if a != line]
  by_panel: dict[tuple, list] = {}
  for key, runs in groups.items():
    setting = dict(zip(axes, key))
    example = runs[min(seed_index, len(runs) - 1)].get("longest_test_example")
    if not example or not np.asarray(example["attention"]).any():  # none: no attention
      continue
    by_panel.setdefault(tuple(setting[a] for a in grid_others), []).append(
        (setting[line], np.asarray(example["attention"]), example["src"],
         example["prediction"]))
  for panel, items in by_panel.items():
    setting = dict(zip(grid_others, panel))
    fig = plots.attention_grid_figure(items, ncols=min(3, len(items)))
    fig.suptitle(f"longest test example ({len(items[0][2])} words), decoding attention"
                 + (f"\n{title(setting)}" if setting else ""), fontsize="small")
    path = out / f"attention_grid{suffix(setting)}.png"
    fig.savefig(path, dpi=attention_dpi)
    paths.append(path)
  return paths


# ---------------------------------------------------------------- learning curves

def _valid_records(folder: pathlib.Path) -> list[dict]:
  records = run_record.read_jsonl(pathlib.Path(folder) / run_record.METRICS)
  return [r for r in records if r.get("split") == "valid"]


def _value(record: Mapping, metric: str) -> float:
  value = record.get(metric)
  return float(value) if isinstance(value, (int, float)) else math.nan  # null: non-finite


def curve_rows(trials: Sequence[dict]) -> tuple[list[str], list[dict]]:
  """(axes, rows) of learning_curves.csv: per setting (the trials' axes but ``POOLED``), its
  ``train.best_metric`` and ``loss`` at every validation step all its seeds reached: mean,
  sample std (0 with one seed) and the number of seeds. A trial's extra decodings
  (``decoded_again``) add nothing: they share its training."""
  trials = [t for t in trials if not t.get("decoded_again")]
  axes = [a for a in trials[0]["labels"] if a not in POOLED]
  per_setting: dict[tuple, list] = {}
  for trial in trials:
    best = trial["config"].get("train", {}).get("best_metric", "exact_match")
    key = tuple(trial["labels"][a] for a in axes)
    for run in trial["runs"]:
      by_step = {int(r["step"]): r for r in _valid_records(run["folder"])}
      per_setting.setdefault(key, []).append((best, by_step))
  rows = []
  for key, models in per_setting.items():
    setting = dict(zip(axes, key))
    steps = sorted(set.intersection(*(set(by_step) for _, by_step in models)))
    for metric in dict.fromkeys([models[0][0], "loss"]):
      for step in steps:
        values = np.array([_value(by_step[step], metric) for _, by_step in models])
        rows.append({**setting, "metric": metric, "step": step, "mean": float(values.mean()),
                     "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                     "num_seeds": len(values)})
  return axes, rows


def learning_curve_figures(axes: Sequence[str], rows: Sequence[dict], out: pathlib.Path,
                           line: str) -> list[pathlib.Path]:
  """``learning_curves[__<axis>-<label>].png``: one figure per value of the axes other than
  ``line`` (when ``line`` is pooled, e.g. ``decoding``: the first axis), a panel per metric
  (each setting's best metric, then the validation loss), a line per value of ``line``."""
  if not rows:
    return []
  line = line if line in axes else axes[0]
  others = [a for a in axes if a != line]
  paths = []
  for panel in dict.fromkeys(tuple(r[a] for a in others) for r in rows):
    mine = [r for r in rows if tuple(r[a] for a in others) == panel]
    metrics = list(dict.fromkeys(r["metric"] for r in mine if r["metric"] != "loss"))
    panels = []
    for metric in metrics + ["loss"]:
      curves: dict[str, tuple] = {}
      for r in (r for r in mine if r["metric"] == metric):
        curves.setdefault(r[line], ([], [], []))
        for values, v in zip(curves[r[line]], (r["step"], r["mean"], r["std"])):
          values.append(v)
      if curves:
        panels.append((f"validation {metric}", curves))
    setting = dict(zip(others, panel))
    heading = "validation during training (mean ± std over seeds)" + (
        f"\n{title(setting)}" if setting else "")
    paths.append(plots.plot_learning_curves(
        panels, out / f"learning_curves{suffix(setting)}.png", title=heading))
  return paths
