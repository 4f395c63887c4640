"""Where outputs go wrong, for ``experiments.report``: per setting the teacher-forced token
accuracy by target position and the share of test sentences whose decoding first errs in each
position bucket (``attnlab.position_metrics``).

A model trained on short sentences that fails on long ones may lose its place in the source
(attention: errors at every position) or may never have learned to decode past its longest
training target (the decoder's length extrapolation: teacher-forced accuracy holds until that
position, then falls, and first errors pile up there). These tables and figures tell the two
apart; ``positions.csv`` holds their numbers.

Trials tested at matched training steps (``eval.test_at_steps``) come with a ``checkpoint``
axis (``attnlab.results.with_checkpoints``), so these tables compare variants after equal
amounts of training as well as each at its best.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from attnlab import intervals, plots
from experiments import report_figures

POSITION_METRICS = (("token_accuracy", "token_accuracy_by_position",
                     "teacher-forced token accuracy"),
                    ("first_error_share", "first_error_by_position",
                     "share of sentences first wrong here"))
POSITION_FIELDS = ("metric", "position", "mean", "std", "low", "high", "num_seeds", "count")


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
  """``first_error_by_position`` counts as shares of all sentences, "none" left out."""
  total = sum(counts.values())
  return {k: v / total for k, v in counts.items() if k != "none"} if total else {}


def _values(test: Mapping, metric: str, key: str) -> dict[str, tuple[float, int]]:
  """{position bucket: (value, count)} of one run's ``key`` entry."""
  entry = test.get(key)
  if not isinstance(entry, Mapping):
    return {}
  if metric == "first_error_share":
    return {label: (share, int(entry[label])) for label, share in _shares(entry).items()}
  return {label: (float(cell["mean"]), int(cell["count"])) for label, cell in entry.items()}


def rows(axes: Sequence[str], groups: Mapping[tuple, list[dict]]) -> list[dict]:
  """positions.csv: per setting, metric and position bucket every seed has, the mean over
  seeds, the sample std, the 95% t interval over seeds (``intervals.values_interval``, cut to
  [0, 1]; none
  with one seed), the number of seeds and the tokens (accuracy) or sentences (first errors)
  of the first seed there."""
  out = []
  for key, runs in groups.items():
    setting = dict(zip(axes, key))
    for metric, entry, _ in POSITION_METRICS:
      per_run = [_values(r["test"], metric, entry) for r in runs]
      if not all(per_run):
        continue
      for label in per_run[0]:
        if not all(label in v for v in per_run):
          continue
        values = np.array([v[label][0] for v in per_run])
        row = {**setting, "metric": metric, "position": label, "mean": float(values.mean()),
               "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
               "low": "", "high": "", "num_seeds": len(values), "count": per_run[0][label][1]}
        if values.size > 1:
          interval = intervals.values_interval(values, bounds=intervals.RANGES[metric])
          row.update(low=interval.low, high=interval.high)
        out.append(row)
  return out


def position_x(label: str) -> float:
  """A position bucket's place on the x axis: the middle of ``a-b``, ``n`` itself, ``>n``: n+5."""
  if label.startswith(">"):
    return float(label[1:]) + 5
  low, _, high = label.partition("-")
  return (float(low) + float(high or low)) / 2


def figures(axes: Sequence[str], table: Sequence[dict], out: pathlib.Path,
            line: str) -> list[pathlib.Path]:
  """``<metric>_vs_position[__<axis>-<label>].png``: per metric, one figure per value of the
  axes other than ``line``, one line per value of ``line`` (mean, ±std band over seeds)."""
  others = [a for a in axes if a != line]
  paths = []
  for metric, _, label in POSITION_METRICS:
    mine = [r for r in table if r["metric"] == metric]
    for panel in dict.fromkeys(tuple(r[a] for a in others) for r in mine):
      curves: dict[str, tuple] = {}
      for r in (r for r in mine if tuple(r[a] for a in others) == panel):
        curves.setdefault(r[line], ([], [], []))
        for values, v in zip(curves[r[line]], (position_x(r["position"]), r["mean"], r["std"])):
          values.append(v)
      setting = dict(zip(others, panel))
      fig = plots.metric_vs_length_figure(curves, "target position (tokens, EOS last)", label,
                                          title=report_figures.title(setting) or None)
      path = out / f"{metric}_vs_position{report_figures.suffix(setting)}.png"
      fig.savefig(path, dpi=100)
      paths.append(path)
  return paths


def markdown(axes: Sequence[str], table: Sequence[dict]) -> str:
  """results.md's section: per metric, settings x position buckets, ``mean [low, high]``."""
  if not table:
    return ""
  parts = ["\n## Where outputs go wrong, by target position\n",
           "Teacher-forced token accuracy per target position (EOS last), and the share of "
           "test sentences whose decoding first differs from the reference there (the rest "
           "are exact or first wrong elsewhere); mean over seeds [95% t interval over seeds]. "
           "Numbers: positions.csv.\n"]
  for metric, _, label in POSITION_METRICS:
    mine = [r for r in table if r["metric"] == metric]
    if not mine:
      continue
    positions = list(dict.fromkeys(r["position"] for r in mine))
    settings = list(dict.fromkeys(tuple(r[a] for a in axes) for r in mine))
    cell = {(tuple(r[a] for a in axes), r["position"]): r for r in mine}
    parts.append(f"\n### {label}\n\n| {' | '.join(axes)} | {' | '.join(positions)} |\n"
                 f"|{'---|' * (len(axes) + len(positions))}\n")
    for key in settings:
      values = []
      for p in positions:
        r = cell.get((key, p))
        values.append("" if r is None else f"{r['mean']:.3f}" + (
            f" [{r['low']:.3f}, {r['high']:.3f}]" if r["low"] != "" else ""))
      parts.append(f"| {' | '.join(key)} | {' | '.join(values)} |\n")
  return "".join(parts)
