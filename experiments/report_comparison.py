"""comparison.md and comparison.csv of ``experiments.report --compare A --compare B``: the
tests of setting A against B (``attnlab.results.compare_settings``) adjusted together over the
page (``comparisons.holm``, the page's family), a table per pair and one sentence per metric
that claims a difference only where the adjusted p is below 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence

from attnlab import comparisons
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


def _bucket(test: dict) -> str:
  return (test["bucket_a"] if test["bucket_a"] == test["bucket_b"]
          else f"{test['bucket_a']} vs {test['bucket_b']}")


def comparison_rows(found: Sequence[dict]) -> list[list[str]]:
  """Table rows (``COMPARISON_HEADER``) of ``results.compare_settings``' tests after
  ``comparisons.holm``."""
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
  """``COMPARISON_FIELDS`` rows of ``results.compare_settings``' tests after
  ``comparisons.holm``."""
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
