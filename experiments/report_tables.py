"""results.md of ``experiments.report``: its Markdown tables (per metric, settings x length
buckets, or x a sweep axis; every overall metric) of ``attnlab.results.rows``, and the closing
notes on the decoding axis and the learning curves.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

from attnlab.results import COSTS, METRICS, OVERALL

# How each interval in results.csv (its "interval" field) was made, for the tables' notes.
INTERVAL_NOTES = {
    "t": "95% t interval over seeds (seeds - 1 df): where the mean of a new training seed on "
         "this test set lies; test-set sampling not included",
    "t + sentence bootstrap": "95% interval over seeds and test sentences (the seeds' t "
                              "interval, seeds - 1 df, widened by the test set's bootstrap "
                              "variance): where the mean of a new training seed on a new test "
                              "set of the same kind lies",
    "sentence bootstrap": "with one seed, a 95% bootstrap interval over its test sentences "
                          "(seed variation not measured)"}


def fmt(row: Mapping, metric: str) -> str:
  """``mean [low, high]`` with an interval, else ``mean ± std`` over seeds; one seed, or a
  cost its vmapped seeds share (one measurement: std 0), without an interval: the mean alone
  (a spread of one value is no uncertainty, never "± 0")."""
  digits = 1 if metric in ("bleu", "detokenized_bleu") + COSTS else 3
  if row.get("low", "") != "":
    return f"{row['mean']:.{digits}f} [{row['low']:.{digits}f}, {row['high']:.{digits}f}]"
  if int(row.get("num_seeds") or 0) == 1 or (metric in COSTS and not row["std"]):
    return f"{row['mean']:.{digits}f}"
  return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"


def intervals_note(table_rows: Sequence[Mapping]) -> str:
  """What the cells of ``table_rows`` show: the mean over its seed counts, how the intervals
  were made (``INTERVAL_NOTES``), and what the rest show."""
  seeds = sorted({int(r["num_seeds"]) for r in table_rows})
  methods = [m for m in INTERVAL_NOTES if any(r.get("interval") == m for r in table_rows)]
  rest = "mean ± sample std over seeds (the mean alone with one seed) where there is none"
  return (f"mean over {'/'.join(map(str, seeds))} seed(s)"
          + "".join(f" [{INTERVAL_NOTES[m]}]" for m in methods) + "; " + rest)


def md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in body]
  return "\n".join(lines)


def markdown(axes: Sequence[str], table_rows: Sequence[dict], x_axis: str = "length") -> str:
  """Markdown tables: per metric, settings x length buckets (or x the values of ``x_axis``),
  then one table of every overall metric."""
  sections = []
  names = dict(OVERALL)
  over = intervals_note(table_rows)
  note = f"{over}; in parentheses, test examples per bucket"
  if any(r["regime"] == "extrapolation" for r in table_rows):
    note += ("; extrapolation: every source of the bucket is longer than the longest "
             "training source (data.train_max_src_len)")
  settings = list(dict.fromkeys(tuple(r[a] for a in axes) for r in table_rows))
  for metric, label in (METRICS if x_axis == "length" else OVERALL):
    if x_axis == "length":
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] != "all"]
      if not mine:
        continue
      buckets = list(dict.fromkeys(r["bucket"] for r in mine))
      counts = {r["bucket"]: r["num_examples"] for r in mine}
      regimes = {b: {r["regime"] for r in mine if r["bucket"] == b} for b in buckets}
      # One training length for the bucket's every setting: its header says it; else the
      # settings' cells do (a train-length axis).
      shared = {b: regimes[b] == {"extrapolation"} for b in buckets}
      cell = {(tuple(r[a] for a in axes), r["bucket"]): fmt(r, metric) + (
          " (extrapolation)" if r["regime"] == "extrapolation" and not shared[r["bucket"]]
          else "") for r in mine}
      header = list(axes) + [f"{b} (extrapolation, {counts[b]})" if shared[b]
                             else f"{b} ({counts[b]})" for b in buckets]
      body = [list(s) + [cell.get((s, b), "") for b in buckets] for s in settings
              if any((s, b) in cell for b in buckets)]
      what = "corpus BLEU" if metric == "bleu" else label
      sections.append(f"**{what} by source length** ({note})\n\n" + md_table(header, body))
    else:
      mine = [r for r in table_rows if r["metric"] == metric and r["bucket"] == "all"]
      if not mine:
        continue
      rest = [a for a in axes if a != x_axis]
      values = list(dict.fromkeys(r[x_axis] for r in mine))
      cell = {(tuple(r[a] for a in rest), r[x_axis]): fmt(r, metric)
              for r in mine}
      body = [list(s) + [cell.get((s, v), "") for v in values]
              for s in dict.fromkeys(tuple(r[a] for a in rest) for r in mine)]
      sections.append(f"**{label}** by {x_axis} ({over})\n\n" +
                      md_table(rest + [f"{x_axis}={v}" for v in values], body))
  overall = [r for r in table_rows if r["bucket"] == "all"]
  metrics = [m for m, _ in OVERALL if any(r["metric"] == m for r in overall)]
  cell = {(tuple(r[a] for a in axes), r["metric"]): fmt(r, r["metric"])
          for r in overall}
  body = [list(s) + [cell.get((s, m), "–") for m in metrics] for s in settings]
  sections.append(f"**all test examples** ({over})\n\n" +
                  md_table(list(axes) + [names[m] for m in metrics], body))
  return "\n\n".join(sections) + "\n"


def split_note(trials: Sequence[Mapping]) -> str:
  """results.md's opening line for a search on the validation set (every trial's
  ``data.splits`` names its validation split as the test split too): the tables' "test" is that
  split, and the test set was never read. "" otherwise."""
  splits = {tuple(t["config"].get("data", {}).get("splits") or ()) for t in trials}
  if not splits or not all(len(s) == 3 and s[2] == s[1] for s in splits):
    return ""
  names = ", ".join(sorted(f"`{s[1]}`" for s in splits))
  return (f"**Evaluated on the validation split** ({names}): every trial's test split is its "
          "validation split, so these trials never read the test set; \"test\" below means "
          "that split.\n\n")


def figures_note(axes: Sequence[str], curve_figs: Sequence[pathlib.Path],
                 curves_path: pathlib.Path) -> str:
  """results.md's closing notes: what the decoding axis is, where the learning curves are."""
  notes = []
  if "decoding" in axes:
    notes.append("**decoding**: the same trained models' test set decoded greedily "
                 "(`greedy`) and with beam search of width k (`beam<k>`; "
                 "`eval.test_beam_sizes`): compare them with `--compare 'decoding=beam5' "
                 "--compare 'decoding=greedy'` (plus the other axes' labels).")
  if curve_figs:
    links = ", ".join(f"[{p.name}]({p.name})" for p in curve_figs)
    notes.append(f"**learning curves** (did each variant converge?): the validation "
                 f"`train.best_metric` and loss against the step, mean over seeds: {links}; "
                 f"the numbers in [{curves_path.name}]({curves_path.name}).")
  return "".join(f"\n{n}\n" for n in notes)


