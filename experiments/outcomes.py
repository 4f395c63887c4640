"""The report's uncertainty from each run's per-sentence test outcomes: intervals pooling seeds
with test-set sampling, and the paired bootstrap comparison of two settings.

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

from attnlab import intervals

PAIRED_HEADER = ["metric", "bucket", "sentences", "A", "B", "A - B [95%]", "A better", "p"]
PAIRED_NOTE = (f"Koehn 2004: {intervals.N_RESAMPLES} resampled test sets, both settings scored "
               "on each, seeds resampled within each setting; \"A better\": the share of test "
               "sets on which A beats B (a lower error rate for AER); p = 1 - that")


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


def interval(runs: Sequence[dict], metric: str, bucket: str = "all") -> dict:
  """{"low", "high"}: the 95% interval of the mean over ``runs`` (seeds) of ``metric`` in
  ``bucket``, resampling seeds and test sentences (``intervals.two_level_interval``); empty
  strings (a blank CSV cell) without outcomes."""
  stats = sentence_stats(runs, metric, bucket)
  if stats is None:
    return {"low": "", "high": ""}
  low, high = intervals.two_level_interval(stats, metric)
  return {"low": low, "high": high}


def paired_rows(runs_a: Sequence[dict], runs_b: Sequence[dict],
                metrics: Sequence[tuple[str, str]]) -> list[list[str]]:
  """Table rows (``PAIRED_HEADER``) of the paired bootstrap test of setting A (``runs_a``,
  its seeds) against B, for each (metric, label) of ``metrics``, over all test sentences and
  per length bucket (the buckets of A's summary), where both have outcomes on the same
  sentences."""
  buckets = ["all"] + list(runs_a[0]["test"].get("exact_match_by_length", {}))
  body = []
  for metric, label in metrics:
    digits = 1 if metric == "bleu" else 3
    value = intervals.STATISTICS[metric].value
    for bucket in buckets:
      both = sentence_stats(list(runs_a) + list(runs_b), metric, bucket)
      if both is None:
        continue
      stats_a, stats_b = both[:len(runs_a)], both[len(runs_a):]
      result = intervals.paired_bootstrap(stats_a, stats_b, metric)
      body.append([label, bucket, str(both.shape[1]),
                   f"{value(stats_a.sum(1)).mean():.{digits}f}",
                   f"{value(stats_b.sum(1)).mean():.{digits}f}",
                   f"{result.difference:+.{digits}f} [{result.low:+.{digits}f}, "
                   f"{result.high:+.{digits}f}]",
                   f"{result.win_fraction:.3f}", f"{result.p_value:.3f}"])
  return body
