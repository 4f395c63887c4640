"""The sweep atlas: ``OUT/index.html``, every trial of a sweep on one self-contained page.

Written by ``python -m experiments.report --root ROOT`` (``OUT`` = ``--out``, default
``ROOT/report``) beside results.csv, from the same results in memory (the trials that
``attnlab.results.load_trials`` read and the rows of ``attnlab.results.rows``: mean, std over
seeds, and the interval ``low`` / ``high`` where there is one). Open it from disk in any
browser: no server, no network (``attnlab.atlas``). It holds:

* **Results**: per metric, settings x source-length buckets, then every overall metric;
  click a column header to sort.
* **Metric vs length** (or vs ``--x``): exact match, BLEU and AER, a line per value of the line
  axis (``--line``, default the sweep's ``get_report``: ``variant``) with the interval (else ±
  std over seeds) as a band; hover a point for its value, bucket size and variant; click a
  legend entry to hide or show that variant.
* **Attention explorer**: a test sentence (by length; the longest first) and its attention
  under every variant side by side (teacher-forced, with the task's gold links, or decoding),
  from each trial's ``attention_examples.json`` (the first seed's; the same sentences in every
  trial, ``attnlab.training.run_page``); trials written before that file show their
  ``longest_test_example``. One explorer per value of the other axes.
* **Learning curves**: validation metrics against the step from every trial's metrics.jsonl
  (``seed_<k>/metrics.jsonl`` for multi-seed trials), a thin line per seed.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

from attnlab import run_record
from attnlab.atlas import charts, run as run_lib
from attnlab.atlas.page import Page, esc
from attnlab.results import COSTS, METRICS, OVERALL


def _cell(row: Mapping) -> str:
  """``mean [low, high]``, else ``mean ± std`` over seeds; the mean alone where the row's value
  is one measurement: one seed, or a cost that a trial's vmapped seeds share (std 0; a spread
  of one value is no uncertainty: never "± 0.000")."""
  digits = 1 if row["metric"] in ("bleu",) + COSTS else 3
  interval = run_lib.band(row, with_std=False)
  if interval:
    return f"{row['mean']:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
  std = row.get("std")
  one_value = row.get("num_seeds") == 1 or (row["metric"] in COSTS and not std)
  return f"{row['mean']:.{digits}f}" + (f" ± {std:.{digits}f}" if isinstance(std, float)
                                        and not one_value else "")


def _suffix(setting: Mapping[str, str]) -> str:
  return "".join(f" · {a}={v}" for a, v in setting.items())


def results_tables(page: Page, axes: Sequence[str], rows: Sequence[dict]) -> None:
  """Per metric: settings x buckets; then settings x every overall metric. Sortable."""
  names = dict(OVERALL)
  settings = list(dict.fromkeys(tuple(str(r[a]) for a in axes) for r in rows))
  key = lambda r: tuple(str(r[a]) for a in axes)  # noqa: E731
  for metric, label in METRICS:
    mine = [r for r in rows if r["metric"] == metric and r["bucket"] != "all"]
    if not mine:
      continue
    buckets = list(dict.fromkeys(r["bucket"] for r in mine))
    counts = {r["bucket"]: r.get("num_examples", "") for r in mine}
    cells = {(key(r), r["bucket"]): r for r in mine}
    body = [s for s in settings if any((s, b) in cells for b in buckets)]
    page.table(list(axes) + [f"{b} ({_int(counts[b])})" for b in buckets],
               [list(s) + [_cell(cells[s, b]) if (s, b) in cells else "" for b in buckets]
                for s in body],
               caption=f"{label} by source length (test examples per bucket in parentheses)",
               sort_keys=[[None] * len(axes) + [cells[s, b]["mean"] if (s, b) in cells else ""
                                                for b in buckets] for s in body])
  overall = {(key(r), r["metric"]): r for r in rows if r["bucket"] == "all"}
  metrics = [m for m, _ in OVERALL if any(k[1] == m for k in overall)]
  page.table(list(axes) + [names[m] for m in metrics] + ["seeds"],
             [list(s) + [_cell(overall[s, m]) if (s, m) in overall else "" for m in metrics]
              + [_int(next((overall[s, m].get("num_seeds") for m in metrics
                            if (s, m) in overall), ""))] for s in settings],
             caption="all test examples",
             sort_keys=[[None] * len(axes) + [overall[s, m]["mean"] if (s, m) in overall else ""
                                              for m in metrics] + [None] for s in settings])


def _int(value) -> str:
  return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def metric_points(axes: Sequence[str], rows: Sequence[dict], line: str,
                  x_axis: str) -> list[dict]:
  """results.csv's rows as ``charts.metric_curves`` points: per metric (and value of the other
  axes) a panel, a line per value of ``line``, against length or the ``x_axis`` value."""
  points = []
  others = [a for a in axes if a not in (line, x_axis)]
  metrics = METRICS if x_axis == "length" else OVERALL
  for metric, label in metrics:
    for r in rows:
      if r["metric"] != metric or (r["bucket"] == "all") != (x_axis != "length"):
        continue
      point = {"series": str(r[line]), "panel": label + _suffix({a: r[a] for a in others}),
               "x": r["mean_length"] if x_axis == "length" else float(r[x_axis]),
               "y": r["mean"]}
      interval = run_lib.band(r)
      if interval:
        point["low"], point["high"] = interval
      if x_axis == "length":
        point["bucket"] = r["bucket"]
      point["examples"] = _int(r.get("num_examples", ""))
      point["seeds"] = _int(r.get("num_seeds", ""))
      points.append(point)
  return points


def trial_models(trial: Mapping) -> list[tuple[str, pathlib.Path]]:
  """(seed label, folder) per model of a trial (its runs)."""
  return [(run["label"], pathlib.Path(run["folder"])) for run in trial["runs"]]


def _first_examples(trial: Mapping) -> list[dict] | None:
  """The first seed's attention examples (spread over lengths), else the longest example of
  an older run; None without attention (``model.decoder=none``)."""
  models = trial_models(trial)
  contents = (run_record.read_json_or_none(models[0][1] / run_record.EXAMPLES) if models
              else None)
  if contents is not None:
    if not contents.get("has_attention"):
      return None
    return [e for e in contents["examples"] if e.get("spread")]
  example = trial["runs"][0].get("longest_test_example")
  if not example or not any(any(row) for row in example["attention"]):
    return None
  return [{"index": example["index"], "src": example["src"], "target": example["target"],
           "prediction": example["prediction"], "attention": example["attention"],
           "forced_attention": None, "gold": None}]


def explorers(page: Page, trials: Sequence[dict], axes: Sequence[str], line: str) -> None:
  """One attention explorer per value of the axes other than ``line``."""
  others = [a for a in axes if a not in (line, "seed")]
  panels: dict[tuple, dict] = {}
  for trial in trials:
    if trial.get("decoded_again"):  # a beam decoding's copy: its attention files are greedy's
      continue
    labels = trial["labels"]
    panel = panels.setdefault(tuple(labels[a] for a in others), {})
    if labels[line] not in panel:  # the first trial (seed) of each variant
      panel[labels[line]] = _first_examples(trial)
  for n, (panel, models) in enumerate(panels.items()):
    without = [m for m, e in models.items() if e is None]
    models = {m: e for m, e in models.items() if e is not None}
    title = _suffix(dict(zip(others, panel))).lstrip(" ·")
    if without:
      page.text(f"No attention to show for {esc(', '.join(without))} "
                "(model.decoder=none).", heading=title)
    elif title:
      page.text("", heading=title)
    if not models:
      continue
    shared = set.intersection(*({e["index"] for e in exs} for exs in models.values()))
    first = next(iter(models.values()))
    sentences = run_lib.sentence_menu([e for e in first if e["index"] in shared],
                                      worst_first=False)
    spec = charts.attention_explorer(models, sentences, model_title=line) if sentences else None
    if spec is not None:
      page.chart(spec, f"explorer-{n}")


def curve_points(trials: Sequence[dict], axes: Sequence[str], line: str) -> list[dict]:
  """Validation curves of every trial and seed (thin lines), a colour per line value."""
  others = [a for a in axes if a not in (line, "seed")]
  points = []
  for trial in trials:
    if trial.get("decoded_again"):  # the same training as the trial it copies
      continue
    labels = trial["labels"]
    suffix = _suffix({a: labels[a] for a in others})
    for seed, folder in trial_models(trial):
      records = [r for r in run_record.read_jsonl(folder / run_record.METRICS)
                 if r.get("split") == "valid"]
      points += run_lib.curve_points(records, str(labels[line]), suffix,
                                     run=f"{trial['name']} {seed}")
  return points


def write_atlas(root: str | os.PathLike, out: str | os.PathLike, trials: Sequence[dict],
                axes: Sequence[str], rows: Sequence[dict], line: str,
                x_axis: str = "length") -> pathlib.Path:
  """Writes ``OUT/index.html`` and returns its path.

  Args:
    root: the sweep's root (or a single run's workdir) the trials were read from.
    out: the report's folder.
    trials: ``attnlab.results.load_trials``' trials; axes: their axes but ``seed``
      (``results.group_runs``); rows: ``results.rows`` of those groups (results.csv's).
    line: the axis drawn as one line per value; x_axis: ``length`` or a numeric axis.
  """
  root, out = pathlib.Path(root), pathlib.Path(out)
  sweep = run_record.read_json_or_none(root / run_record.SWEEP) or {}
  # Paths relative to the page: a published page names no folder of the machine that made it.
  name = pathlib.PurePath(sweep.get("sweep") or root.resolve().name).name  # FILE:ARG's name
  page = Page(f"attnlab atlas: {name}", esc(
      f"{len(trials)} finished trial(s) in {run_lib.page_path(root.resolve(), out)} (relative "
      f"to this page); axes: {', '.join(axes)}; lines: {line}."))
  page.section("Results", "Mean over seeds; in brackets the 95% interval where the report "
               "has one (results.csv's interval: t over seeds, about a new training seed on "
               "this test set; with one seed, a bootstrap over its test sentences), else ± "
               "sample std over seeds. Click a column header to sort.")
  results_tables(page, axes, rows)
  points = metric_points(axes, rows, line, x_axis)
  if points:
    page.section(f"Metrics vs {'source length' if x_axis == 'length' else x_axis}",
                 "Band: the interval, else ± std over seeds. Hover a point for its value, "
                 f"bucket size and {esc(line)}; click a legend entry to hide or show it.")
    page.chart(charts.metric_curves(
        points, x_title="source length (bucket mean)" if x_axis == "length" else x_axis,
        series_title=line, log_x=x_axis != "length"), "metrics")
  page.section("Attention explorer", "Pick a test sentence (the longest first): its attention "
               f"under every {esc(line)}. Teacher-forced: rows are the reference's words, the "
               "task's gold links outlined in red; decoding: rows are each model's own output. "
               "Hover a cell for its weight.")
  explorers(page, trials, axes, line)
  curves = curve_points(trials, axes, line)
  if curves:
    page.section("Learning curves", "Validation metrics against the step, a thin line per "
                 "trial and seed; click a legend entry to hide or show it.")
    page.chart(charts.metric_curves(curves, x_title="step", series_title=line, detail="run"),
               "learning-curves")
  return page.write(out / "index.html")

