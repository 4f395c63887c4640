"""The numbers of a sweep's report, with the training seed as the unit: per setting, metric and
source-length bucket the mean and sample std over seeds and a 95% interval (``rows``), and the
tests of one setting against another (``compare_settings``), from the runs that
``attnlab.results.trials`` reads.

Intervals (``attnlab.intervals``): with two or more seeds the Student t interval over the
per-seed values (about a new training seed on this test set), for every metric but the training
cost; with one seed, for exact match, BLEU and alignment error rate where the run wrote its
``test_outcomes.jsonl``, the bootstrap over its test sentences (seed variation not measured),
else none. Tests (``attnlab.comparisons``): paired by seed when A and B are the same trained
models (two decodings, or two length buckets), Welch's t otherwise, a permutation test over the
test sentences with one seed; adjusted for multiplicity by the caller (``comparisons.holm``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import numpy as np

from attnlab import comparisons, intervals

# (summary key, label): per-length values live under f"{key}_by_length".
METRICS = (("exact_match", "exact match"), ("bleu", "BLEU"),
           ("alignment_error_rate", "alignment error rate"))
OVERALL = METRICS + (("detokenized_bleu", "detokenized BLEU (sacrebleu)"),
                     ("attention_entropy", "attention entropy (nats)"),
                     ("token_accuracy", "token accuracy"), ("loss", "test loss"),
                     # A run's cost (summary.json "cost", attnlab.training.cost), where recorded.
                     ("train_steps_per_second", "train steps/s"),
                     ("train_step_memory_mb", "train step memory (MiB)"))
# The training cost: measured once per trial, not a test metric of each seed: no interval.
COSTS = ("train_steps_per_second", "train_step_memory_mb")
# results.csv's columns after the axes.
ROW_FIELDS = ("metric", "bucket", "regime", "mean_length", "mean", "std", "low", "high",
              "interval", "num_seeds", "num_examples")
NO_INTERVAL = {"low": "", "high": "", "interval": ""}


def shortest_length(bucket: str) -> int | None:
  """The shortest source length of a bucket label (``"5-8"``, ``"9"``, ``">20"``:
  ``length_buckets.bucket_labels``), None for another label."""
  first = bucket[1:] if bucket.startswith(">") else bucket.partition("-")[0]
  if not first.isdigit():
    return None
  return int(first) + 1 if bucket.startswith(">") else int(first)


def regime(bucket: str, train_length: int) -> str:
  """``extrapolation`` when every source of ``bucket`` is longer than the longest training
  source ``train_length`` (``data.train_max_src_len``), else ``in_range``; empty when that
  is unknown (0: the training kept every length) or for ``all``."""
  shortest = shortest_length(bucket)
  if not train_length or shortest is None:
    return ""
  return "extrapolation" if shortest > train_length else "in_range"


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


POPULATIONS = ("seeds", "seeds_and_sentences")


def interval(runs: Sequence[dict], metric: str, bucket: str,
             values: Sequence[float], population: str = "seeds") -> dict:
  """{"low", "high", "interval"}: the 95% interval of the mean over ``runs`` (seeds) of
  ``metric`` in ``bucket`` and how it was made (module doc); empty strings (a blank CSV cell)
  where there is none. ``values``: the per-seed values the row's mean averages.
  ``population``: ``seeds``, a new training seed on this test set (the t interval over seeds);
  ``seeds_and_sentences``, a new seed on a new test set of the same kind
  (``intervals.seeds_and_sentences_interval``) for the metrics with per-sentence statistics,
  the t interval over seeds for the others."""
  if population not in POPULATIONS:
    raise ValueError(f"population must be one of {', '.join(POPULATIONS)}, got {population!r}")
  if metric in COSTS:  # one measurement per trial, not a test metric per seed
    return dict(NO_INTERVAL)
  if (population == "seeds_and_sentences" and len(values) >= 2
      and (stats := sentence_stats(runs, metric, bucket)) is not None):
    found = intervals.seeds_and_sentences_interval(stats, metric)
  elif len(values) >= 2:
    found = intervals.values_interval(values, bounds=intervals.RANGES.get(
        metric, (-np.inf, np.inf)))
  else:
    stats = sentence_stats(runs, metric, bucket)
    if stats is None:
      return dict(NO_INTERVAL)
    found = intervals.seed_interval(stats, metric)
  return {"low": found.low, "high": found.high, "interval": found.method}


def _stats(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, float)
  return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def rows(axes: Sequence[str], groups: Mapping[tuple, list[dict]],
         population: str = "seeds") -> list[dict]:
  """results.csv's rows (``axes`` then ``ROW_FIELDS``): per setting, metric of ``OVERALL`` and
  bucket (or "all"), mean and std over seeds and the 95% interval (``interval``); a bucket's
  ``regime`` by the setting's longest training source; ``population``: what the intervals are
  about (``interval``). Runs written before BLEU per bucket
  was the bucket's corpus BLEU (a mean of sentence BLEUs) have no BLEU-by-length rows."""
  out, old_bleu = [], False
  for key, runs in groups.items():
    setting = dict(zip(axes, key))
    for metric, _ in OVERALL:
      values = [r["test"][metric] for r in runs if metric in r["test"]]
      if len(values) == len(runs):
        mean, std = _stats(values)
        out.append({**setting, "metric": metric, "bucket": "all", "regime": "",
                    "mean_length": "", "mean": mean, "std": std,
                    **interval(runs, metric, "all", values, population),
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
        values = [c["mean"] for c in cells]
        mean, std = _stats(values)
        train_length = runs[0].get("train_max_src_len") or 0
        out.append({**setting, "metric": metric, "bucket": bucket,
                    "regime": regime(bucket, train_length),
                    "mean_length": float(np.mean([c["mean_length"] for c in cells])),
                    "mean": mean, "std": std,
                    **interval(runs, metric, bucket, values, population),
                    "num_seeds": len(cells), "num_examples": cells[0]["count"]})
  if old_bleu:
    print("BLEU by length left out for runs written before it was the corpus BLEU of each "
          "bucket (their summaries hold a mean sentence BLEU)", file=sys.stderr)
  return out


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
