"""The report's uncertainty, with the training seed as the unit: each setting's interval
(``attnlab.intervals``) and the tests of one setting against another (``attnlab.comparisons``:
paired by seed when both are the same trained models, Welch otherwise; Holm-adjusted over the
page), from each run's per-seed test metrics and per-sentence test outcomes.

A run (or each seed of a multi-seed run, under ``seed_<k>/``) writes ``test_outcomes.jsonl``
with its final test metrics (``attnlab.export.outcome_row``): per test sentence its length
bucket and the sufficient statistics of exact match, corpus BLEU and alignment error rate.
A run with ``eval.test_beam_sizes`` also writes, per extra beam size,
``test_outcomes_<decoding>.jsonl`` (``test_outcomes_beam5.jsonl``; ``decoding(beam_size)``)
of the same test sentences decoded with that beam. A *run* here is one entry of
``report.load_trials``' ``runs``, its rows under ``"outcomes"`` (None when the file is
missing: a run from before the file existed).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import numpy as np

from attnlab import comparisons, intervals
from experiments import report_tables

# The last column's header names the family's size: "p (Holm, 24)".
COMPARISON_HEADER = ["metric", "bucket", "sentences", "A", "B", "A - B [95%]", "test", "p",
                     "p (Holm)"]
COMPARISON_FIELDS = ["a", "b", "metric", "bucket_a", "bucket_b", "sentences_a", "sentences_b",
                     "test", "seeds_a", "seeds_b", "mean_a", "mean_b", "difference", "low",
                     "high", "p", "p_holm", "family_size", "finding"]
DESIGN_NOTE = {
    True: "A and B are the same trained models (two decodings, or two length buckets): paired "
          "t on the per-seed differences, seed k of A against seed k of B",
    False: "A and B are separate trainings: Welch's t on the per-seed metrics"}
COMPARISON_NOTE = ("A, B: mean over seeds; A - B and its 95% interval; p two-sided, about a "
                   "new training seed on this test set{one_seed}; p (Holm): Holm-Bonferroni-"
                   "adjusted over all {n} comparisons on this page")
ONE_SEED_NOTE = ("; a side with one seed: a permutation test over the test sentences "
                 f"({comparisons.N_PERMUTATIONS} rearrangements, p = (c + 1) / (R + 1), "
                 "doubled) with a bootstrap interval, seed variation not measured")


def decoding(beam_size: int) -> str:
  """The ``decoding`` label of a beam size, ``greedy`` (1) or ``beam<k>``: the report's axis
  and the outcomes file's suffix (as ``attnlab.training.evaluation.decoding_name`` names it;
  not imported, so that reading a sweep needs no JAX)."""
  return "greedy" if int(beam_size) == 1 else f"beam{int(beam_size)}"


def load(directory: pathlib.Path, decoded: str | None = None) -> list[dict] | None:
  """The rows of ``directory/test_outcomes.jsonl`` (or, with ``decoded``, a ``decoding``
  label, of ``test_outcomes_<decoded>.jsonl``), or None without one."""
  name = f"test_outcomes_{decoded}.jsonl" if decoded else "test_outcomes.jsonl"
  path = pathlib.Path(directory) / name
  if not path.exists():
    return None
  return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sentence_stats(runs: Sequence[dict], metric: str, bucket: str = "all") -> np.ndarray | None:
  """[runs, n, k] per-sentence statistics of ``metric`` over the test sentences of ``bucket``
  (a length-bucket label, or "all") of every run (``attnlab.intervals.sentence_statistics``);
  None unless every run has them on the same sentences (the same source lengths in order)."""
  if metric not in intervals.STATISTICS or not all(r.get("outcomes") for r in runs):
    return None
  field = intervals.STATISTICS[metric].field
  chosen = [[row for row in r["outcomes"] if bucket in ("all", row["length_bucket"])]
            for r in runs]
  lengths = [[row["src_length"] for row in rows] for rows in chosen]
  if (not chosen[0] or any(field not in row for rows in chosen for row in rows)
      or any(ls != lengths[0] for ls in lengths)):
    return None
  return np.stack([intervals.sentence_statistics(rows, metric) for rows in chosen])


def interval(runs: Sequence[dict], metric: str, bucket: str,
             values: Sequence[float]) -> dict:
  """{"low", "high", "interval"}: the 95% interval of the mean over ``runs`` (seeds) of
  ``metric`` in ``bucket`` and how it was made. ``values``: the per-seed values the row's mean
  averages. Two or more: the t interval over them (``intervals.values_interval``, about a new
  training seed on this test set); one: the bootstrap over its test sentences
  (``intervals.seed_interval``, ``interval`` "sentence bootstrap"), else empty strings (a
  blank CSV cell)."""
  if len(values) >= 2:
    found = intervals.values_interval(values)
  else:
    stats = sentence_stats(runs, metric, bucket)
    if stats is None:
      return {"low": "", "high": "", "interval": ""}
    found = intervals.seed_interval(stats, metric)
  return {"low": found.low, "high": found.high, "interval": found.method}


def shared_models(runs_a: Sequence[dict], runs_b: Sequence[dict]) -> bool:
  """Whether A and B are the same trained models, each once (the same model folders): two
  decodings of one trial, or one setting at two length buckets. Then seed k pairs up."""
  folders_a = sorted(str(r["folder"]) for r in runs_a)
  return (len(set(folders_a)) == len(folders_a)
          and folders_a == sorted(str(r["folder"]) for r in runs_b))


def compare_settings(runs_a: Sequence[dict], runs_b: Sequence[dict],
                     metrics: Sequence[tuple[str, str]],
                     buckets: tuple[str, str] | None = None) -> list[dict]:
  """The tests of setting A (``runs_a``, its seeds) against B, not yet adjusted: one
  {"metric", "label", "paired", "bucket_a", "bucket_b", "sentences": (n_a, n_b), "result":
  ``comparisons.Comparison``} per (metric, label) of ``metrics`` with test outcomes and bucket.

  ``buckets``: None: over all test sentences and per length bucket (A's summary's), each
  bucket of A against the same sentences of B; or (bucket_a, bucket_b): that pair only (one
  model at two test lengths). Paired by seed when A and B are the same models
  (`shared_models`), Welch otherwise (``comparisons.compare``)."""
  paired = shared_models(runs_a, runs_b)
  if paired:  # seed k of A and of B: one model
    runs_a, runs_b = (sorted(runs, key=lambda r: str(r["folder"])) for runs in (runs_a, runs_b))
  pairs = [buckets] if buckets else [
      (b, b) for b in ["all"] + list(runs_a[0]["test"].get("exact_match_by_length", {}))]
  found = []
  for metric, label in metrics:
    for bucket_a, bucket_b in pairs:
      if bucket_a == bucket_b:  # the same sentences on both sides, or no test
        both = sentence_stats(list(runs_a) + list(runs_b), metric, bucket_a)
        stats_a, stats_b = (None, None) if both is None else (both[:len(runs_a)],
                                                              both[len(runs_a):])
      else:
        stats_a = sentence_stats(runs_a, metric, bucket_a)
        stats_b = sentence_stats(runs_b, metric, bucket_b)
      if stats_a is None or stats_b is None:
        continue
      result = comparisons.compare(stats_a, stats_b, metric, paired=paired,
                                   same_sentences=bucket_a == bucket_b)
      found.append({"metric": metric, "label": label, "paired": paired, "bucket_a": bucket_a,
                    "bucket_b": bucket_b, "sentences": (stats_a.shape[1], stats_b.shape[1]),
                    "result": result})
  return found


def _bucket(test: dict) -> str:
  return (test["bucket_a"] if test["bucket_a"] == test["bucket_b"]
          else f"{test['bucket_a']} vs {test['bucket_b']}")


def comparison_rows(found: Sequence[dict]) -> list[list[str]]:
  """Table rows (``COMPARISON_HEADER``) of `compare_settings`' tests after ``comparisons.holm``."""
  body = []
  for test in found:
    c, digits = test["result"], 1 if test["metric"] == "bleu" else 3
    n_a, n_b = test["sentences"]
    body.append([test["label"], _bucket(test), str(n_a) if n_a == n_b else f"{n_a} / {n_b}",
                 f"{c.mean_a:.{digits}f}", f"{c.mean_b:.{digits}f}",
                 f"{c.difference:+.{digits}f} [{c.low:+.{digits}f}, {c.high:+.{digits}f}]",
                 c.design, comparisons.format_p(c.p_value), comparisons.format_p(c.p_holm)])
  return body


def finding(test: dict, a: str, b: str) -> str:
  """The sentence that reports one test (``comparisons.describe``): a difference only where
  its Holm-adjusted p is below 0.05, else "indistinguishable at n seeds"."""
  same = test["bucket_a"] == test["bucket_b"]  # else the names say the buckets
  label = test["label"] + ("" if not same or test["bucket_a"] == "all"
                           else f" (bucket {test['bucket_a']})")
  return comparisons.describe(test["result"], a, b, label,
                              digits=1 if test["metric"] == "bleu" else 3)


def comparison_csv_rows(found: Sequence[dict], a: str, b: str) -> list[dict]:
  """``COMPARISON_FIELDS`` rows of `compare_settings`' tests after ``comparisons.holm``."""
  out = []
  for test in found:
    c = test["result"]
    out.append({"a": a, "b": b, "metric": test["metric"], "bucket_a": test["bucket_a"],
                "bucket_b": test["bucket_b"], "sentences_a": test["sentences"][0],
                "sentences_b": test["sentences"][1], "test": c.design, "seeds_a": c.seeds_a,
                "seeds_b": c.seeds_b, "mean_a": c.mean_a, "mean_b": c.mean_b,
                "difference": c.difference, "low": c.low, "high": c.high, "p": c.p_value,
                "p_holm": c.p_holm, "family_size": c.family_size,
                "finding": finding(test, a, b)})
  return out


def comparison_page(tested: Sequence[tuple[str, str, list[dict]]]) -> tuple[str, list[dict]]:
  """comparison.md and comparison.csv's rows from (A, B, tests) per pair: every test of the
  page adjusted together (``comparisons.holm``, the page's family), a table per pair and one
  sentence per metric (overall, or the buckets compared) and per test that survives."""
  adjusted = iter(comparisons.holm([t["result"] for _, _, found in tested for t in found]))
  tested = [(a, b, [{**t, "result": next(adjusted)} for t in found]) for a, b, found in tested]
  family = sum(len(found) for _, _, found in tested)
  sections, csv_rows = [], []
  for a, b, found in tested:
    one_seed = any(t["result"].test == comparisons.SENTENCES for t in found)
    note = DESIGN_NOTE[found[0]["paired"]] + "; " + COMPARISON_NOTE.format(
        n=family, one_seed=ONE_SEED_NOTE if one_seed else "")
    first = {(t["bucket_a"], t["bucket_b"]) for t in found[:1]}
    said = [finding(t, a, b) for t in found
            if (t["bucket_a"], t["bucket_b"]) in first
            or t["result"].p_holm < comparisons.ALPHA]
    sections.append(f"**A = {a} vs B = {b}** ({note})\n\n"
                    + report_tables.md_table(COMPARISON_HEADER[:-1] + [f"p (Holm, {family})"],
                                             comparison_rows(found))
                    + "\n\n" + "".join(f"- {line}\n" for line in said))
    csv_rows += comparison_csv_rows(found, a, b)
  return "\n".join(sections), csv_rows
