"""``WORKDIR/report.html``: one run's page, built from its workdir's files alone.

Reads ``config.json`` (with today's keys: ``attnlab.run_config``), ``summary.json``, and per
model (the workdir, or each ``seed_<k>/`` of a multi-seed run) ``metrics.jsonl`` and
``attention_examples.json`` (``attnlab.training.run_page``), through the run record
(``attnlab.run_record``). Shows the test metrics, training and validation curves, the
per-source-length metrics, the test examples (the worst-scoring first) with their attention,
and the config. The chart helpers here (``curve_points``, ``bucket_points``,
``sentence_menu``, ``band``) are shared with the sweep atlas (``experiments.atlas``).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

from attnlab import run_config, run_record
from attnlab.atlas import charts
from attnlab.atlas.page import Page, esc

# (key, label) of the curves drawn against the step, and of the per-length metrics.
CURVES = (("loss", "loss"), ("exact_match", "exact match"), ("bleu", "BLEU"),
          ("alignment_error_rate", "alignment error rate"), ("token_accuracy", "token accuracy"),
          ("attention_entropy", "attention entropy"))
BY_LENGTH = (("exact_match", "exact match"), ("bleu", "BLEU"),
             ("alignment_error_rate", "alignment error rate"))


def model_dirs(workdir: str | os.PathLike, summary: Mapping) -> list[tuple[str, pathlib.Path,
                                                                          dict]]:
  """(label, folder, test metrics) per model of a run (``run_record.model_dirs``)."""
  return [(label, folder, entry.get("test", {}))
          for label, folder, entry in run_record.model_dirs(workdir, summary)]


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def curve_points(records: Sequence[Mapping], series: str, suffix: str = "",
                 run: str = "") -> list[dict]:
  """metrics.jsonl records as ``charts.metric_curves`` points: the train loss and every
  validation metric of ``CURVES`` against the step; panels titled ``valid BLEU{suffix}``."""
  points = []
  for record in records:
    split = record.get("split")
    for key, label in CURVES:
      if split not in ("train", "valid") or (split == "train" and key != "loss"):
        continue
      if _number(record.get(key)):
        points.append({"series": series, "panel": f"{split} {label}{suffix}",
                       "x": record["step"], "y": record[key], "run": run or series})
  return points


def band(row: Mapping, with_std: bool = True) -> tuple[float, float] | None:
  """(low, high) of a mean's band: its interval where the row has one (``low`` / ``high``, as
  ``experiments.report`` writes them, or ``ci_low`` / ``ci_high``), else mean ± ``std`` when
  ``with_std``, else None."""
  for low, high in (("low", "high"), ("ci_low", "ci_high")):
    if _number(row.get(low)) and _number(row.get(high)):
      return row[low], row[high]
  if with_std and _number(row.get("std")):
    return row["mean"] - row["std"], row["mean"] + row["std"]
  return None


def bucket_points(test: Mapping, series: str, suffix: str = "") -> list[dict]:
  """A model's per-length test metrics (``<metric>_by_length``) as curve points; a band only
  where the bucket has an interval (the spread of single examples is not one)."""
  points = []
  for key, label in BY_LENGTH:
    for bucket, cell in (test.get(f"{key}_by_length") or {}).items():
      if not _number(cell.get("mean")):
        continue
      point = {"series": series, "panel": label + suffix, "x": cell["mean_length"],
               "y": cell["mean"], "bucket": bucket, "examples": cell.get("count")}
      interval = band(cell, with_std=False)
      if interval:
        point["low"], point["high"] = interval
      points.append(point)
  return points


def _preview(tokens: Sequence[str], limit: int = 10) -> str:
  text = " ".join(map(str, tokens[:limit]))
  return text + (" …" if len(tokens) > limit else "")


def _score(example: Mapping) -> str:
  if "sentence_bleu" in example:
    return f"sentence BLEU {example['sentence_bleu']:.1f}"
  return f"token accuracy {example['quality']:.2f}"


def sentence_menu(examples: Sequence[Mapping], worst_first: bool) -> list[dict]:
  """The explorer's sentences (``charts.attention_explorer``): the worst-scoring first (a run's
  page), or the longest first (the sweep's); labelled with length, index and a preview."""
  longest = max((len(e["src"]) for e in examples), default=0)
  def order(e):
    return ((not e.get("worst"), e.get("quality", 0.0)) if worst_first else (0, 0)) + (
        -len(e["src"]), e["index"])
  menu = []
  for e in sorted(examples, key=order):
    tags = [f"worst: {_score(e)}"] if worst_first and e.get("worst") else []
    if len(e["src"]) == longest:
      tags.append("longest")
    label = f"{len(e['src'])} tokens · #{e['index']}: {_preview(e['src'])}"
    menu.append({"index": e["index"], "src": e["src"], "target": e["target"],
                 "gold": e.get("gold"), "label": label + (f"  [{'; '.join(tags)}]" if tags
                                                          else "")})
  return menu


def page_path(path: str | os.PathLike, page_dir: str | os.PathLike) -> str:
  """``path`` as a page in ``page_dir`` shows it: relative to that folder when absolute (a
  published page names no folder of the machine that made it), else as it is."""
  text = os.fspath(path)
  if not os.path.isabs(text):
    return text
  try:
    return os.path.relpath(text, os.path.abspath(page_dir))
  except ValueError:  # another drive (Windows): no relative path; the name alone
    return os.path.basename(text)


def _flatten(config: Mapping, page_dir: str | os.PathLike, prefix: str = "") -> dict[str, str]:
  """{dotted key: value} of a nested config; lists and None as JSON; absolute paths relative
  to the page's folder (``page_path``)."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, page_dir, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = (page_path(value, page_dir) if isinstance(value, str)
                                else run_record.dumps(value))
  return flat


def _fmt(value) -> str:
  return f"{value:.4g}" if _number(value) else ("" if value is None else str(value))


def _examples_table(page: Page, model: str, contents: Mapping) -> None:
  header = ["#", "source words", contents.get("quality", "quality"), "exact match", "AER",
            "worst", "source", "reference", "prediction"]
  rows, keys = [], []
  for e in sorted(contents["examples"], key=lambda e: (not e.get("worst"), e["quality"])):
    aer = e.get("alignment_error_rate")
    score = (f"{e['sentence_bleu']:.1f}" if "sentence_bleu" in e else f"{e['quality']:.3f}")
    rows.append([e["index"], len(e["src"]), score,
                 "yes" if e["exact_match"] else "no", "" if aer is None else f"{aer:.3f}",
                 "worst" if e.get("worst") else "", " ".join(e["src"]), " ".join(e["target"]),
                 " ".join(e["prediction"])])
    keys.append([None, None, e["quality"], None, aer, None, None, None, None])
  page.table(header, rows, caption=f"{model}: test examples", sort_keys=keys)


def write_run_page(workdir: str | os.PathLike) -> pathlib.Path:
  """Writes ``WORKDIR/report.html`` (module doc) and returns its path."""
  workdir = pathlib.Path(workdir)
  config = run_record.read_json_or_none(workdir / run_record.CONFIG)
  config = run_config.upgrade_config(config) if isinstance(config, dict) else {}
  summary = run_record.read_json_or_none(workdir / run_record.SUMMARY) or {}
  models = model_dirs(workdir, summary)
  model = config.get("model", {})
  title = f"attnlab run: {workdir.resolve().name}"
  page = Page(title, esc(
      f"task {config.get('data', {}).get('task', '?')}, decoder {model.get('decoder', '?')}, "
      f"attention {model.get('attention', '?')}; step {summary.get('step', '?')} "
      f"(best {summary.get('best_step', '?')}), {_fmt(summary.get('wall_time_s'))} s"))

  page.section("Test metrics")
  keys = [k for k in dict.fromkeys(k for _, _, t in models for k in t)
          if _number(models[0][2].get(k))]
  page.table(["model"] + keys, [[m] + [_fmt(t.get(k)) for k in keys] for m, _, t in models])

  curves = [p for m, d, _ in models
            for p in curve_points(run_record.read_jsonl(d / run_record.METRICS), m)]
  if curves:
    page.section("Training and validation", "Hover a point for its value; click a legend "
                 "entry to hide or show that model.")
    page.chart(charts.metric_curves(curves, x_title="step", series_title="model"), "curves")

  buckets = [p for m, _, t in models for p in bucket_points(t, m)]
  if buckets:
    page.section("By source length", "Test metrics per source-length bucket.")
    page.table(["model", "metric", "bucket", "examples", "mean length", "value"],
               [[p["series"], p["panel"], p["bucket"], p["examples"], f"{p['x']:.1f}",
                 f"{p['y']:.4g}"] for p in buckets])
    page.chart(charts.metric_curves(buckets, x_title="source length (bucket mean)",
                                    series_title="model"), "by-length")

  examples = {m: run_record.read_json_or_none(d / run_record.EXAMPLES) for m, d, _ in models}
  examples = {m: e for m, e in examples.items() if e and e.get("examples")}
  if examples:
    first = next(iter(examples.values()))
    page.section("Test examples", esc(
        f"Spread over source lengths and the {sum(e['worst'] for e in first['examples'])} "
        f"worst by {first['quality']} (first in the menu). Teacher-forced attention: rows are "
        "the reference's words" + (", gold links outlined in red" if first["has_alignment"]
                                   else "") + "; decoding: rows are the model's output. "
        "Hover a cell for its weight."))
    union = {e["index"]: e for c in examples.values() for e in c["examples"]}
    spec = charts.attention_explorer({m: c["examples"] for m, c in examples.items()},
                                     sentence_menu(list(union.values()), worst_first=True),
                                     model_title="model")
    if spec is not None:
      page.chart(spec, "explorer")
    else:
      page.text("This model has no attention (model.decoder=none): no matrices to show.")
    for m, contents in examples.items():
      _examples_table(page, m, contents)

  page.section("Config")
  page.raw("<details><summary>config.json, flattened (paths relative to this page)</summary>")
  page.table(["key", "value"], list(_flatten(config, workdir).items()))
  page.raw("</details>")
  return page.write(workdir / "report.html")
