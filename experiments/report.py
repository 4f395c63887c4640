"""One table and figures from a sweep's workdirs: ``python -m experiments.report --root DIR``.

Reads ``ROOT/sweep.json`` (written by ``experiments.sweep``: the trials and their axis labels)
and each finished trial's ``config.json`` and ``summary.json`` (``attnlab.results``: the
reading and the statistics, which a pip user can import without JAX). A trial contributes one
run per seed: ``summary["seeds"]`` when it trained ``num_seeds`` seeds at once
(``attnlab.training.multiseed``), else its one ``summary["test"]``; a ``seed`` axis is pooled
the same way. Writes to ``--out`` (default ``ROOT/report``):

* ``results.csv``: one row per (setting, metric, source-length bucket or ``all``): mean and
  standard deviation over seeds (``ddof=1``; 0 with one seed), number of seeds, examples, and
  a 95% interval (``low``, ``high``) with how it was made (``interval``): with two or more
  seeds the Student t interval over the per-seed values (``t``; ``attnlab.intervals``: about
  a new training seed on this test set), for every metric but the training cost; with one
  seed, for exact match, BLEU and alignment error rate where the run wrote its
  ``test_outcomes.jsonl``, the bootstrap over its test sentences (``sentence bootstrap``: seed
  variation not measured), else none. BLEU per bucket is the corpus BLEU of the bucket's
  sentences (runs older than that, which stored a mean sentence BLEU there, have no
  BLEU-by-length rows).
  Per bucket, its ``regime``: ``extrapolation`` when the trial trained on shorter sources
  only (``data.train_max_src_len`` below the bucket's shortest length), else ``in_range``
  (empty without a training cap, and for ``all``).
* ``results.md``: the same as Markdown tables, ``mean [low, high]`` per cell where there is an
  interval, else ``mean ± std`` (``mean`` alone with one seed); a bucket's header has its
  number of test sentences and says ``extrapolation`` where every setting extrapolates there
  (else the cells that do say it).
* A ``decoding`` axis (``greedy``, ``beam5``, ...) when trials decoded their test set with
  extra beam sizes (``eval.test_beam_sizes``, ``summary["test_beam"]``): each trial's runs
  once per decoding, from one training; ``--compare 'decoding=beam5' --compare
  'decoding=greedy'`` (plus the other axes) tests beam against greedy on the same sentences.
  Trials without them have their one decoding, and no such axis when none has any. Being the
  same trained models, they are compared paired by seed.
* ``learning_curves.csv`` and ``learning_curves[__<axis>-<label>].png``: the validation
  ``train.best_metric`` and loss against the step (each model's metrics.jsonl), mean and
  std over seeds, one line per value of the line axis (``experiments.report_figures``).
* ``comparison.md`` and ``comparison.csv`` with ``--compare A --compare B`` (two settings,
  e.g. ``variant=additive``; more pairs, ``--compare C --compare D``, add more tests to the
  file): A against B on the same test sentences, per metric, overall and per length bucket
  (``attnlab.results.compare_settings``, ``experiments.report_comparison``): the difference,
  its 95% interval, the two-sided p and its Holm-adjusted p over every test on the page (the
  family), paired by seed when A and B are the same trained models (two decodings), Welch's t
  otherwise, a permutation test over the test sentences with one seed; then one sentence per
  metric that claims a difference only where the adjusted p is below 0.05. ``--compare_metrics
  bleu`` (comma-separated; default every metric with test outcomes) limits the tests, and so
  the family, to the metrics a page makes claims about (BLEU alone on a translation corpus,
  where exact match is near zero for every model). ``bucket=<label>``
  in both specs (``variant=additive,bucket=11-20`` against ``variant=additive,bucket=41-50``)
  tests those buckets against each other instead: one model at two test lengths, paired by
  seed.
  Printed too.
* ``<metric>_vs_length[__<axis>-<label>].png``: metric against source length (bucket mean),
  one line per value of the line axis (``--line``, default ``variant``; ``--line
  variant,train_len``: one per combination, as in Bahdanau et al.'s Fig. 2), a ±std band over
  seeds; one figure per value of the other axes (``attnlab.plots.metric_vs_length_figure``),
  a dashed line at the longest training source where its runs share one.
  With ``--x AXIS`` the x axis is that (numeric) sweep axis instead, on a log2 scale, for
  every overall metric (attention entropy and test loss too).
* A ``checkpoint`` axis (``best``, ``step<k>``) when trials were also tested at matched
  training steps (``eval.test_at_steps``; ``attnlab.results.with_checkpoints``):
  every table and figure then compares the variants after equal training as well as each at
  its best checkpoint.
* ``trials.csv``: one row per trial (its axis labels, decodings aside): the trial's wall time
  from its ``status.json`` (the launcher's, start-up and testing included), its training
  steps, best and tested step, whether it stopped early, and its training wall time
  (summary.json); where a sweep's cost is published, these are its per-trial seconds.
* ``positions.csv``, a section of results.md and ``<metric>_vs_position[...].png``: per
  setting, teacher-forced token accuracy by target position and the share of sentences first
  wrong at each position (``experiments.report_positions``), where the runs wrote them.
* ``attention_grid[__<axis>-<label>].png``: the longest test example's decoding attention
  under every variant (seed ``seed`` of each; ``attnlab.plots.attention_grid_figure``).

* ``index.html``: the atlas (``experiments.atlas``), every trial on one page, built from the
  same results in memory.

The sweep file's ``get_report(arg)`` gives defaults for ``--line``, ``--x`` and ``--intervals``.

``--intervals``: what the tables' intervals are about. ``seeds`` (default): a new training seed
on this test set (t over seeds). ``seeds_and_sentences``: a new training seed on a new test set
of the same kind: for BLEU, exact match and AER the seed interval widened by the test set's
sampling variance (``attnlab.intervals.seeds_and_sentences_interval``), the seed interval for
the rest; the tests of ``--compare`` stay seed-level either way.

``--root`` may also be a single run's workdir (``attnlab.main --workdir``, with its
``summary.json``): the report then has one row, that run (its seeds pooled), under a ``run``
axis labelled with the folder's name. A missing folder, a run that has not finished or a
folder without finished trials is one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import csv
import os
import pathlib
from collections.abc import Mapping, Sequence

from absl import flags

from attnlab import results, run_record
from attnlab.results import METRICS, OVERALL
from experiments import (atlas, cli, report_comparison, report_figures, report_positions,
                         report_tables)


class ReportError(cli.UsageError):
  """Nothing to report on (or a bad --line / --x / --compare): one line, exit status 2."""


def load_trials(root: str | os.PathLike) -> tuple[list[dict], dict]:
  """``results.load_trials``, with what cannot be read as a ``ReportError``."""
  try:
    return results.load_trials(root)
  except (results.ResultsError, run_record.RecordError) as e:
    raise ReportError(str(e)) from e


def select_setting(axes: Sequence[str], groups: Mapping[tuple, list[dict]],
            spec: str) -> tuple[tuple, str | None]:
  """The one setting of ``groups`` that ``spec`` ("axis=label[,axis=label...]", optionally
  with ``bucket=<length bucket>``) names, and that bucket (None without one)."""
  wanted = results.labels_from_name(spec)
  bucket = wanted.pop("bucket", None) if wanted and "bucket" not in axes else None
  if wanted is None or not (wanted or bucket) or not set(wanted) <= set(axes):
    raise ReportError(f"--compare {spec!r}: give axis=label pairs of the axes "
                      f"{', '.join(axes)} (and optionally bucket=<length bucket>), "
                      "comma-separated")
  found = [k for k in groups if all(dict(zip(axes, k))[a] == v for a, v in wanted.items())]
  if len(found) != 1:
    # Too many: those it matches, and the axes that tell them apart; none: every setting.
    shown = found or list(groups)
    settings = "; ".join(report_figures.title(dict(zip(axes, k))) for k in shown)
    open_axes = [a for i, a in enumerate(axes) if len({k[i] for k in found}) > 1]
    hint = f" (name {', '.join(open_axes)} too)" if found else ""
    raise ReportError(f"--compare {spec!r} matches {len(found)} settings, not 1{hint}: "
                      f"{settings}")
  return found[0], bucket


def compared_metrics(names: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
  """The (metric, label) pairs of ``METRICS`` that ``names`` lists (None or empty: all)."""
  if not names:
    return METRICS
  known = dict(METRICS)
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ReportError(f"--compare_metrics: unknown metric(s) {', '.join(unknown)}; choose from "
                      f"{', '.join(known)}")
  return tuple((n, known[n]) for n in dict.fromkeys(names))


def comparison(axes: Sequence[str], groups: Mapping[tuple, list[dict]], a: str,
               b: str, metrics: Sequence[tuple[str, str]] = METRICS) -> list[dict]:
  """The tests of setting ``a`` against ``b`` (``results.compare_settings``), per metric of
  ``metrics`` with test outcomes, overall and per length bucket (or the two buckets the specs
  name); not yet adjusted for multiplicity."""
  key_a, bucket_a = select_setting(axes, groups, a)
  key_b, bucket_b = select_setting(axes, groups, b)
  if (bucket_a is None) != (bucket_b is None):
    raise ReportError(f"--compare {a!r} {b!r}: give bucket= in both settings or in neither")
  found = results.compare_settings(groups[key_a], groups[key_b], metrics,
                                   (bucket_a, bucket_b) if bucket_a else None)
  if not found:
    raise ReportError(f"--compare {a!r} {b!r}: no test outcomes (test_outcomes.jsonl) of both "
                      "on the same test sentences" + (" in those buckets" if bucket_a else ""))
  return found


# wall_time_s: the launcher's, over every run of the trial when it was resumed (runs > 1;
# experiments.launch); train_wall_time_s: the training loop's, of its last run only.
TRIAL_FIELDS = ("trial", "wall_time_s", "step", "best_step", "tested_step", "stopped_early",
                "train_wall_time_s", "runs")


def trial_rows(root: str | os.PathLike,
               trials: Sequence[dict]) -> tuple[list[str], list[dict]]:
  """(axes, rows) of trials.csv: per trial of the sweep at ``root`` (or the one run that
  ``root`` is), each once whatever its decodings, its labels and ``TRIAL_FIELDS`` (empty where
  its records lack one)."""
  seen, rows, axes = set(), [], []
  for trial in trials:
    if trial["name"] in seen:
      continue
    seen.add(trial["name"])
    folder = pathlib.Path(root) / trial["name"]
    folder = folder if folder.is_dir() else pathlib.Path(root)  # a single run's workdir
    status = run_record.read_status(folder) or {}
    summary = run_record.read_json_or_none(folder / run_record.SUMMARY) or {}
    labels = {k: v for k, v in trial["labels"].items() if k != "decoding"}
    axes += [a for a in labels if a not in axes]
    rows.append({**labels, "trial": trial["name"],
                 "wall_time_s": status.get("total_wall_time_s", status.get("wall_time_s", "")),
                 **{k: summary.get(k, "") for k in TRIAL_FIELDS[2:-2]},
                 "train_wall_time_s": summary.get("wall_time_s", ""),
                 "runs": status.get("runs", 1 if "wall_time_s" in status else "")})
  return axes, rows


def _write_csv(path: pathlib.Path, fields: Sequence[str], table: Sequence[dict]) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(table)


def default_line(axes: Sequence[str], groups: Mapping[tuple, list[dict]],
                 defaults: Mapping[str, str]) -> str:
  """The sweep's ``get_report`` line axis, else its first axis; ``decoding`` instead when that
  one has a single label (a single run's report: greedy and beam in one figure)."""
  line = defaults.get("line") or axes[0]
  if "decoding" in axes and line in axes and len({k[axes.index(line)] for k in groups}) == 1:
    return "decoding"
  return line


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None,
                 line: str | None = None, x_axis: str | None = None,
                 compare: Sequence[str] | None = None, atlas_page: bool = False,
                 compare_metrics: Sequence[str] | None = None,
                 population: str | None = None) -> dict:
  """Writes results.csv, results.md, learning_curves.csv and the figures, with ``compare``
  (settings in pairs) comparison.md and comparison.csv (tests on ``compare_metrics``, names of
  ``METRICS``; None: all), and with ``atlas_page`` the atlas (index.html, from the same
  results); ``population``: what the intervals are about (module doc; None: the sweep's
  ``get_report``, else ``seeds``); returns their paths."""
  metrics = compared_metrics(compare_metrics)
  if compare and len(compare) % 2:
    raise ReportError("--compare takes settings in pairs (--compare A --compare B [--compare C "
                      f"--compare D ...]), got {len(compare)}: {compare}")
  trials, defaults = load_trials(root)
  out = pathlib.Path(out) if out else pathlib.Path(root) / "report"
  out.mkdir(parents=True, exist_ok=True)
  axes, groups = results.group_runs(trials)
  line = line or default_line(axes, groups, defaults)
  x_axis = x_axis or defaults.get("x") or "length"
  if x_axis != "length" and x_axis not in axes:
    raise ReportError(f"--x {x_axis!r} is neither 'length' nor an axis: {', '.join(axes)}")
  line_axes = line.split(",")
  if bad := [a for a in line_axes if a not in axes]:
    raise ReportError(f"--line {bad[0]!r} is not an axis of this sweep: {', '.join(axes)}")
  # An axis with one label adds nothing to a line's name: it stays in the figures' names.
  labels = lambda a: {k[axes.index(a)] for k in groups}  # noqa: E731
  line_axes = [a for a in line_axes if len(labels(a)) > 1] or line_axes[:1]
  line = ",".join(line_axes)
  population = population or defaults.get("intervals") or "seeds"
  if population not in results.POPULATIONS:
    raise ReportError(f"--intervals: valid {', '.join(results.POPULATIONS)}, got {population!r}")
  table_rows = results.rows(axes, groups, population)
  csv_path = out / "results.csv"
  _write_csv(csv_path, list(axes) + list(results.ROW_FIELDS), table_rows)
  curve_axes, curves = report_figures.curve_rows(trials)
  curves_path = out / "learning_curves.csv"
  _write_csv(curves_path, curve_axes + list(report_figures.CURVE_FIELDS), curves)
  position_rows = report_positions.rows(axes, groups)
  fig_axes, fig_rows, fig_groups = axes, table_rows, groups
  fig_curve_axes, fig_curves, fig_positions = curve_axes, curves, position_rows
  if len(line_axes) > 1:  # one line per combination of the line axes
    fig_axes, fig_rows = report_figures.merged_line(axes, table_rows, line_axes)
    _, fig_groups = report_figures.merged_groups(axes, groups, line_axes)
    if len(in_curves := [a for a in line_axes if a in curve_axes]) > 1:  # decoding is pooled
      fig_curve_axes, fig_curves = report_figures.merged_line(curve_axes, curves, in_curves)
    _, fig_positions = report_figures.merged_line(axes, position_rows, line_axes)
  figs = report_figures.figures(fig_axes, fig_rows, fig_groups, out, line,
                                METRICS if x_axis == "length" else OVERALL, x_axis)
  curve_figs = report_figures.learning_curve_figures(
      fig_curve_axes, fig_curves, out,
      ",".join(a for a in line_axes if a in curve_axes) or line)
  position_figs = report_positions.figures(fig_axes, fig_positions, out, line)
  md_path = out / "results.md"
  md_path.write_text(report_tables.split_note(trials)
                     + report_tables.markdown(axes, table_rows, x_axis)
                     + report_positions.markdown(axes, position_rows)
                     + report_tables.figures_note(axes, curve_figs, curves_path),
                     encoding="utf-8")
  trial_axes, trials_table = trial_rows(root, trials)
  trials_path = out / "trials.csv"
  _write_csv(trials_path, trial_axes + list(TRIAL_FIELDS), trials_table)
  paths = {"csv": csv_path, "markdown": md_path, "figures": figs + curve_figs + position_figs,
           "learning_curves": curves_path, "trials": trials_path}
  if position_rows:
    paths["positions"] = out / "positions.csv"
    _write_csv(paths["positions"], list(axes) + list(report_positions.POSITION_FIELDS),
               position_rows)
  if compare:
    text, csv_rows = report_comparison.comparison_page(
        [(a, b, comparison(axes, groups, a, b, metrics))
         for a, b in zip(compare[::2], compare[1::2])])
    paths["comparison"] = out / "comparison.md"
    paths["comparison"].write_text(text, encoding="utf-8")
    paths["comparison_csv"] = out / "comparison.csv"
    _write_csv(paths["comparison_csv"], report_comparison.COMPARISON_FIELDS, csv_rows)
  if atlas_page:
    paths["atlas"] = atlas.write_atlas(root, out, trials, axes, table_rows, line_axes[0],
                                       x_axis)
  return paths


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_string("root", None, "A sweep's root (experiments.sweep --root) or a single "
                      "run's workdir (required).", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder (default ROOT/report).", flag_values=fv)
  flags.DEFINE_string("line", None, "Axis drawn as one line per value (default: the sweep's "
                      "get_report, else its first axis); comma-separated axes: a line per "
                      "combination (variant,train_len).", flag_values=fv)
  flags.DEFINE_string("x", None, "'length' (per-length metrics) or a numeric sweep axis "
                      "(default: the sweep's get_report, else 'length').", flag_values=fv)
  flags.DEFINE_multi_string("compare", None, "In pairs: settings A and B (axis=label[,...], "
                            "optionally bucket=<length bucket> in both) to test A against B "
                            "(comparison.md, comparison.csv; Holm-adjusted over the page); "
                            "more pairs, more tests.",
                            flag_values=fv)
  flags.DEFINE_string("intervals", None, "What the intervals are about: 'seeds' (a new seed "
                      "on this test set) or 'seeds_and_sentences' (a new seed on a new test "
                      "set; default: the sweep's get_report, else 'seeds').", flag_values=fv)
  flags.DEFINE_list("compare_metrics", None, "The metrics --compare tests (and so the page's "
                    "family), comma-separated: " + ", ".join(m for m, _ in METRICS)
                    + " (default: all).", flag_values=fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__, required=("root",))[0]


def main(argv: Sequence[str] | None = None) -> int:
  fv = parse_flags(argv)
  try:
    paths = write_report(fv.root, fv.out, fv.line, fv.x, fv.compare, atlas_page=True,
                         compare_metrics=fv.compare_metrics, population=fv.intervals)
  except ReportError as e:
    cli.fail(e)
  print(paths["markdown"].read_text(encoding="utf-8"))
  if "comparison" in paths:
    print(paths["comparison"].read_text(encoding="utf-8"))
  for key in ("csv", "markdown", "learning_curves", "trials", "positions", "comparison_csv"):
    if key in paths:
      print(paths[key])
  for path in paths["figures"]:
    print(path)
  print(paths["atlas"])
  return 0


if __name__ == "__main__":
  cli.run(main)
