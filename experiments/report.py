"""One table and figures from a sweep's workdirs: ``python -m experiments.report --root DIR``.

Reads ``ROOT/sweep.json`` (written by ``experiments.sweep``: the trials and their axis labels)
and each finished trial's ``config.json`` and ``summary.json``. A trial contributes one run
per seed: ``summary["seeds"]`` when it trained ``num_seeds`` seeds at once
(``attnlab.training.multiseed``), else its one ``summary["test"]``; a ``seed`` axis is pooled the same
way. Writes to ``--out`` (default ``ROOT/report``):

* ``results.csv``: one row per (setting, metric, source-length bucket or ``all``): mean and
  standard deviation over seeds (``ddof=1``; 0 with one seed), number of seeds, examples, and
  for exact match, BLEU and alignment error rate a 95% interval (``low``, ``high``) where the
  runs wrote their ``test_outcomes.jsonl``: a bootstrap pooling the seeds with test-set
  sampling (``attnlab.intervals.two_level_interval``). BLEU per bucket is the corpus BLEU of
  the bucket's sentences (runs older than that, which stored a mean sentence BLEU there, have
  no BLEU-by-length rows).
* ``results.md``: the same as Markdown tables, ``mean [low, high]`` per cell where there is an
  interval, else ``mean ± std``.
* ``comparison.md`` with ``--compare A --compare B`` (two settings, e.g. ``variant=additive``):
  the paired bootstrap test (Koehn 2004, ``attnlab.intervals.paired_bootstrap``) of A against
  B on the same test sentences, per metric, overall and per length bucket; printed too.
* ``<metric>_vs_length[__<axis>-<label>].png``: metric against source length (bucket mean),
  one line per value of the line axis (``--line``, default ``variant``), a ±std band over
  seeds; one figure per value of the other axes (``attnlab.plots.plot_metric_vs_length``).
  With ``--x AXIS`` the x axis is that (numeric) sweep axis instead, on a log2 scale, for
  every overall metric (attention entropy and test loss too).
* ``attention_grid[__<axis>-<label>].png``: the longest test example's decoding attention
  under every variant (seed ``seed`` of each; ``attnlab.plots.attention_grid_figure``).

The sweep file's ``get_report(arg)`` gives defaults for ``--line`` and ``--x``.

``--root`` may also be a single run's workdir (``attnlab.main --workdir``, with its
``summary.json``): the report then has one row, that run (its seeds pooled), under a ``run``
axis labelled with the folder's name. A missing folder, a run that has not finished or a
folder without finished trials is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence

import numpy as np
from absl import flags

from attnlab import plots
from experiments import _cli, outcomes

# (summary key, label): per-length values live under f"{key}_by_length".
METRICS = (("exact_match", "exact match"), ("bleu", "BLEU"),
           ("alignment_error_rate", "alignment error rate"))
OVERALL = METRICS + (("attention_entropy", "attention entropy (nats)"),
                     ("token_accuracy", "token accuracy"), ("loss", "test loss"))


# ---------------------------------------------------------------- reading

def _labels_from_name(name: str) -> dict[str, str] | None:
  parts = [p.partition("=") for p in name.split(",")]
  if not all(eq for _, eq, _ in parts):
    return None
  return {axis: label for axis, _, label in parts}


class ReportError(_cli.UsageError):
  """Nothing to report on (or a bad --line / --x): ``main`` prints it as one line, exit 2."""


def load_trials(root: str | os.PathLike) -> tuple[list[dict], dict]:
  """The finished trials under ``root``: [{"name", "labels", "config", "runs"}], and the
  sweep's report defaults. ``runs`` holds one {"seed", "test", "longest_test_example"} per
  seed. Unfinished or failed trials are skipped (and listed on stderr). ``root`` may be a
  single run's workdir: one trial, labelled ``{"run": folder name}``."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise ReportError(f"--root {root}: no such folder")
  sweep_file = root / "sweep.json"
  if sweep_file.exists():
    sweep = json.loads(sweep_file.read_text(encoding="utf-8"))
    entries = [(t["name"], t["labels"]) for t in sweep["trials"]]
    defaults = sweep.get("report", {})
  elif (root / "summary.json").exists() or (root / "config.json").exists():  # one run
    if not (root / "summary.json").exists():
      raise ReportError(f"--root {root} is a run's workdir without summary.json: the run has "
                        "not finished (rerun its attnlab.main command to resume it)")
    entries = [(".", {"run": root.resolve().name})]
    defaults = {}
  else:  # no sweep.json: every subfolder named axis=label,...
    entries = [(p.name, _labels_from_name(p.name)) for p in sorted(root.iterdir()) if p.is_dir()]
    entries = [(n, l) for n, l in entries if l]
    defaults = {}
  trials, missing = [], []
  for name, labels in entries:
    workdir = root / name
    if not (workdir / "summary.json").exists():
      missing.append(name)
      continue
    summary = json.loads((workdir / "summary.json").read_text(encoding="utf-8"))
    config = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
    if "seeds" in summary:
      runs = [{**r, "outcomes": outcomes.load(workdir / r.get("workdir", f"seed_{r['seed']}"))}
              for r in summary["seeds"]]
    else:
      runs = [{"seed": config["seed"], "test": summary["test"],
               "longest_test_example": summary.get("longest_test_example"),
               "outcomes": outcomes.load(workdir)}]
    trials.append({"name": name, "labels": dict(labels), "config": config, "runs": runs})
  if missing:
    print(f"skipping {len(missing)} unfinished or failed trial(s): {', '.join(missing)}",
          file=sys.stderr)
  if not trials:
    raise ReportError(f"no finished trials (summary.json) under {root}: --root takes a sweep's "
                      "root (experiments.sweep --root) or a single run's workdir")
  return trials, defaults


def group_runs(trials: Sequence[dict]) -> tuple[list[str], dict[tuple, list[dict]]]:
  """Pools seeds: {labels of every axis but ``seed``: [run, ...]} in sweep order."""
  axes = [a for a in trials[0]["labels"] if a != "seed"]
  groups: dict[tuple, list[dict]] = {}
  for trial in trials:
    key = tuple(trial["labels"][a] for a in axes)
    groups.setdefault(key, []).extend(trial["runs"])
  return axes, groups


# ---------------------------------------------------------------- statistics

def _stats(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, float)
  return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def rows(axes: Sequence[str], groups: Mapping[tuple, list[dict]]) -> list[dict]:
  """The CSV rows: per setting, metric and bucket (or "all"), mean and std over seeds, and
  the 95% interval pooling seeds and test sentences where the runs' outcomes allow it."""
  out, old_bleu = [], False
  for key, runs in groups.items():
    setting = dict(zip(axes, key))
    for metric, _ in OVERALL:
      values = [r["test"][metric] for r in runs if metric in r["test"]]
      if len(values) == len(runs):
        mean, std = _stats(values)
        out.append({**setting, "metric": metric, "bucket": "all", "mean_length": "",
                    "mean": mean, "std": std, **outcomes.interval(runs, metric, "all"),
                    "num_seeds": len(values),
                    "num_examples": runs[0]["test"].get("num_examples", "")})
      by_length = [r["test"].get(f"{metric}_by_length") for r in runs]
      if not all(by_length):
        continue
      if metric == "bleu" and not all("sentence_bleu_by_length" in r["test"] for r in runs):
        old_bleu = True  # a mean of sentence BLEUs, not the bucket's corpus BLEU: left out
        continue
      for bucket in by_length[0]:
        cells = [b[bucket] for b in by_length if bucket in b]
        if len(cells) != len(runs):
          continue
        mean, std = _stats([c["mean"] for c in cells])
        out.append({**setting, "metric": metric, "bucket": bucket,
                    "mean_length": float(np.mean([c["mean_length"] for c in cells])),
                    "mean": mean, "std": std, **outcomes.interval(runs, metric, bucket),
                    "num_seeds": len(cells), "num_examples": cells[0]["count"]})
  if old_bleu:
    print("BLEU by length left out for runs written before it was the corpus BLEU of each "
          "bucket (their summaries hold a mean sentence BLEU)", file=sys.stderr)
  return out


def _fmt(row: Mapping, metric: str) -> str:
  digits = 1 if metric == "bleu" else 3
  if row.get("low", "") != "":
    return f"{row['mean']:.{digits}f} [{row['low']:.{digits}f}, {row['high']:.{digits}f}]"
  return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in body]
  return "\n".join(lines)


def markdown(axes: Sequence[str], table_rows: Sequence[dict], x_axis: str = "length") -> str:
  """Markdown tables: per metric, settings x length buckets (or x the values of ``x_axis``),
  then one table of every overall metric."""
  sections = []
  names = dict(OVERALL)
  seeds = sorted({r["num_seeds"] for r in table_rows})
  over = (f"mean over {'/'.join(map(str, seeds))} seed(s) [95% bootstrap interval over seeds "
          "and test sentences], else mean ± sample std over seeds")
  note = f"{over}; in parentheses, test examples per bucket"
  settings = list(dict.fromkeys(tuple(r[a] for a in axes) for r in table_rows))
  for metric, label in (METRICS if x_axis == "length" else OVERALL):
    if x_axis == "length":
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] != "all"]
      if not mine:
        continue
      buckets = list(dict.fromkeys(r["bucket"] for r in mine))
      counts = {r["bucket"]: r["num_examples"] for r in mine}
      cell = {(tuple(r[a] for a in axes), r["bucket"]): _fmt(r, metric)
              for r in mine}
      header = list(axes) + [f"{b} ({counts[b]})" for b in buckets]
      body = [list(s) + [cell.get((s, b), "") for b in buckets] for s in settings
              if any((s, b) in cell for b in buckets)]
      what = "corpus BLEU" if metric == "bleu" else label
      sections.append(f"**{what} by source length** ({note})\n\n" + _md_table(header, body))
    else:
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] == "all"]
      if not mine:
        continue
      rest = [a for a in axes if a != x_axis]
      values = list(dict.fromkeys(r[x_axis] for r in mine))
      cell = {(tuple(r[a] for a in rest), r[x_axis]): _fmt(r, metric)
              for r in mine}
      body = [list(s) + [cell.get((s, v), "") for v in values]
              for s in dict.fromkeys(tuple(r[a] for a in rest) for r in mine)]
      sections.append(f"**{label}** by {x_axis} ({over})\n\n" +
                      _md_table(rest + [f"{x_axis}={v}" for v in values], body))
  overall = [r for r in table_rows if r["bucket"] == "all"]
  metrics = [m for m, _ in OVERALL if any(r["metric"] == m for r in overall)]
  cell = {(tuple(r[a] for a in axes), r["metric"]): _fmt(r, r["metric"])
          for r in overall}
  body = [list(s) + [cell.get((s, m), "–") for m in metrics] for s in settings]
  sections.append(f"**all test examples** ({over})\n\n" +
                  _md_table(list(axes) + [names[m] for m in metrics], body))
  return "\n\n".join(sections) + "\n"


def _select(axes: Sequence[str], groups: Mapping[tuple, list[dict]], spec: str) -> tuple:
  """The one setting of ``groups`` that ``spec`` ("axis=label[,axis=label...]") names."""
  wanted = _labels_from_name(spec)
  if not wanted or not set(wanted) <= set(axes):
    raise ReportError(f"--compare {spec!r}: give axis=label pairs of the axes "
                      f"{', '.join(axes)}, comma-separated")
  found = [k for k in groups if all(dict(zip(axes, k))[a] == v for a, v in wanted.items())]
  if len(found) != 1:
    settings = "; ".join(_title(dict(zip(axes, k))) for k in groups)
    raise ReportError(f"--compare {spec!r} matches {len(found)} settings, not 1: {settings}")
  return found[0]


def comparison(axes: Sequence[str], groups: Mapping[tuple, list[dict]], a: str, b: str) -> str:
  """Markdown: the paired bootstrap test (Koehn 2004) of setting ``a`` against ``b`` on the
  same test sentences, per metric with test outcomes, overall and per length bucket."""
  runs_a, runs_b = groups[_select(axes, groups, a)], groups[_select(axes, groups, b)]
  body = outcomes.paired_rows(runs_a, runs_b, METRICS)
  if not body:
    raise ReportError(f"--compare {a!r} {b!r}: no test outcomes (test_outcomes.jsonl) of both "
                      "on the same test sentences")
  return (f"**paired bootstrap: A = {a} vs B = {b}** ({outcomes.PAIRED_NOTE})\n\n"
          + _md_table(outcomes.PAIRED_HEADER, body) + "\n")


# ---------------------------------------------------------------- figures

def _suffix(setting: Mapping[str, str]) -> str:
  return "".join(f"__{a}-{v}" for a, v in setting.items())


def _title(setting: Mapping[str, str]) -> str:
  return ", ".join(f"{a}={v}" for a, v in setting.items())


def figures(axes: Sequence[str], table_rows: Sequence[dict], groups: Mapping[tuple, list[dict]],
            out: pathlib.Path, line: str, x_axis: str = "length", seed_index: int = 0,
            attention_dpi: int = 60) -> list[pathlib.Path]:
  """Metric-vs-length (or vs ``x_axis``) curves and attention grids; returns the paths."""
  if line not in axes:
    raise ReportError(f"--line {line!r} is not an axis of this sweep: {', '.join(axes)}")
  others = [a for a in axes if a not in (line, x_axis)]
  panels_of = lambda s: tuple(s[a] for a in others)  # noqa: E731
  paths = []
  for metric, label in (METRICS if x_axis == "length" else OVERALL):
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
      title = f"{label}" + (f" ({_title(setting)})" if setting else "")
      name = f"{metric}_vs_{x_axis}{_suffix(setting)}.png"
      if x_axis == "length":
        ylabel = "corpus BLEU of the bucket" if metric == "bleu" else label
        paths.append(plots.plot_metric_vs_length(
            curves, out / name, xlabel="source length (words; mean of each length bucket)",
            ylabel=ylabel, title=title))
      else:
        fig = plots.metric_vs_length_figure(curves, xlabel=x_axis, ylabel=label, title=title)
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
                 + (f"\n{_title(setting)}" if setting else ""), fontsize="small")
    path = out / f"attention_grid{_suffix(setting)}.png"
    fig.savefig(path, dpi=attention_dpi)
    paths.append(path)
  return paths


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None,
                 line: str | None = None, x_axis: str | None = None,
                 compare: Sequence[str] | None = None) -> dict:
  """Writes results.csv, results.md and the figures, and with ``compare`` (two settings)
  comparison.md; returns their paths."""
  if compare and len(compare) != 2:
    raise ReportError(f"--compare takes two settings (--compare A --compare B), got {compare}")
  trials, defaults = load_trials(root)
  out = pathlib.Path(out) if out else pathlib.Path(root) / "report"
  out.mkdir(parents=True, exist_ok=True)
  axes, groups = group_runs(trials)
  line = line or defaults.get("line") or axes[0]
  x_axis = x_axis or defaults.get("x") or "length"
  if x_axis != "length" and x_axis not in axes:
    raise ReportError(f"--x {x_axis!r} is neither 'length' nor an axis: {', '.join(axes)}")
  table_rows = rows(axes, groups)
  csv_path = out / "results.csv"
  with open(csv_path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(axes) + ["metric", "bucket", "mean_length",
                                                        "mean", "std", "low", "high",
                                                        "num_seeds", "num_examples"])
    writer.writeheader()
    writer.writerows(table_rows)
  md_path = out / "results.md"
  md_path.write_text(markdown(axes, table_rows, x_axis), encoding="utf-8")
  figs = figures(axes, table_rows, groups, out, line, x_axis)
  paths = {"csv": csv_path, "markdown": md_path, "figures": figs}
  if compare:
    paths["comparison"] = out / "comparison.md"
    paths["comparison"].write_text(comparison(axes, groups, *compare), encoding="utf-8")
  return paths


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("root", None, "A sweep's root (experiments.sweep --root) or a single "
                      "run's workdir (required).", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder (default ROOT/report).", flag_values=fv)
  flags.DEFINE_string("line", None, "Axis drawn as one line per value (default: the sweep's "
                      "get_report, else its first axis).", flag_values=fv)
  flags.DEFINE_string("x", None, "'length' (per-length metrics) or a numeric sweep axis "
                      "(default: the sweep's get_report, else 'length').", flag_values=fv)
  flags.DEFINE_multi_string("compare", None, "Twice: settings A and B (axis=label[,...]) for "
                            "a paired bootstrap test of A against B (comparison.md).",
                            flag_values=fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return _cli.parse(define_flags, argv, __doc__, required=("root",))[0]


def main(argv: Sequence[str] | None = None) -> int:
  fv = parse_flags(argv)
  try:
    paths = write_report(fv.root, fv.out, fv.line, fv.x, fv.compare)
  except ReportError as e:
    _cli.fail(e)
  print(paths["markdown"].read_text(encoding="utf-8"))
  if "comparison" in paths:
    print(paths["comparison"].read_text(encoding="utf-8"))
  for key in ("csv", "markdown"):
    print(paths[key])
  for path in paths["figures"]:
    print(path)
  from experiments import atlas  # the HTML atlas (index.html), built on this module's readers
  print(atlas.write_atlas(fv.root, paths["csv"].parent, fv.line, fv.x))
  return 0


if __name__ == "__main__":
  _cli.run(main)
