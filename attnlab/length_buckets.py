"""Source-length buckets and per-bucket metrics: labels, bucket ids, means with their spread,
corpus metrics per bucket (corpus BLEU, pooled alignment error rate, exact match) with bootstrap
intervals, and the curves the plots draw from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from attnlab import intervals


def check_boundaries(boundaries: Sequence[int]) -> np.ndarray:
  """``boundaries`` as an array; ValueError unless positive, strictly increasing integers."""
  bounds = np.asarray(boundaries)
  if bounds.ndim != 1 or bounds.size == 0:
    raise ValueError(f"boundaries must be a non-empty 1-D sequence, got {boundaries!r}")
  if not np.issubdtype(bounds.dtype, np.integer):
    raise ValueError(f"boundaries must be integers, got {boundaries!r}")
  if bounds[0] < 1 or np.any(np.diff(bounds) <= 0):
    raise ValueError(f"boundaries must be positive and strictly increasing, got {boundaries!r}")
  return bounds


def bucket_labels(boundaries: Sequence[int]) -> list[str]:
  """Labels of the len(boundaries) + 1 length buckets, e.g. [10, 20] -> ["1-10", "11-20", ">20"].

  A bucket holding a single length is labelled by it alone ("11" rather than "11-11").
  """
  bounds = check_boundaries(boundaries)
  labels, lo = [], 1
  for hi in bounds.tolist():
    labels.append(str(hi) if lo == hi else f"{lo}-{hi}")
    lo = hi + 1
  return labels + [f">{bounds[-1]}"]


def length_buckets(lengths, boundaries: Sequence[int]) -> np.ndarray:
  """Bucket id of each length: bucket b holds boundaries[b-1] < length <= boundaries[b].

  Args:
    lengths: [n] integer lengths, each >= 1.
    boundaries: [num_buckets - 1] positive, strictly increasing upper bounds (inclusive);
      lengths above the last one go to the final, open bucket.

  Returns:
    [n] int64 bucket ids in [0, len(boundaries)], indexing `bucket_labels(boundaries)`.
  """
  bounds = check_boundaries(boundaries)
  lengths = np.asarray(lengths)
  if lengths.ndim != 1:
    raise ValueError(f"lengths must be 1-D, got shape {lengths.shape}")
  if lengths.size and not np.issubdtype(lengths.dtype, np.integer):
    raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
  if lengths.size and lengths.min() < 1:
    raise ValueError(f"lengths must be >= 1, got a minimum of {lengths.min()}")
  return np.searchsorted(bounds, lengths, side="left").astype(np.int64)


def per_bucket_mean(values, lengths, boundaries: Sequence[int]) -> dict[str, dict]:
  """Mean of a per-example metric within each length bucket (metric vs source length).

  Args:
    values: [n] per-example metric values (e.g. 0/1 exact match, sentence BLEU).
    lengths: [n] the lengths to bucket by (e.g. source lengths), each >= 1.
    boundaries: bucket upper bounds, as in `length_buckets`.

  Returns:
    {label: {"count": int, "mean": float, "std": float, "mean_length": float}} for the
    non-empty buckets, in increasing length order (labels from `bucket_labels`). "std" is the
    population standard deviation; "mean_length" is a natural x value for plotting.
  """
  values = np.asarray(values, dtype=np.float64)
  lengths = np.asarray(lengths)
  if values.ndim != 1 or values.shape != lengths.shape:
    raise ValueError(f"values and lengths must be 1-D of equal length, got shapes "
                     f"{values.shape} and {lengths.shape}")
  ids = length_buckets(lengths, boundaries)
  out = {}
  for b, label in enumerate(bucket_labels(boundaries)):
    in_bucket = ids == b
    if not np.any(in_bucket):
      continue
    out[label] = {
        "count": int(in_bucket.sum()),
        "mean": float(values[in_bucket].mean()),
        "std": float(values[in_bucket].std()),
        "mean_length": float(lengths[in_bucket].mean()),
    }
  return out


def per_bucket_statistic(stats, statistic: intervals.Statistic | str, lengths,
                         boundaries: Sequence[int], sentence_values=None,
                         confidence: float = 0.95) -> dict[str, dict]:
  """A corpus metric within each length bucket, computed from its sentences' summed
  statistics (as over the whole test set), with a bootstrap interval over those sentences.

  Args:
    stats: [n, k] integer per-sentence statistics (`intervals.sentence_statistics`): e.g.
      sacrebleu's BLEU statistics (then "mean" is the bucket's corpus BLEU) or alignment counts
      (the bucket's pooled AER).
    statistic: the metric (an `intervals.Statistic` or its name: exact_match, bleu,
      alignment_error_rate).
    lengths: [n] the lengths to bucket by (e.g. source lengths), each >= 1.
    boundaries: bucket upper bounds, as in `length_buckets`.
    sentence_values: [n] the metric of each sentence alone, for "std"; None: std 0.
    confidence: of the interval.

  Returns:
    `per_bucket_mean`'s format plus the interval, for the non-empty buckets:
    {label: {"count", "mean", "std", "low", "high", "mean_length"}}, "mean" the metric of the
    bucket's sentences together, "std" the population standard deviation of their
    ``sentence_values`` (their spread, not the metric's uncertainty), (low, high) its
    percentile bootstrap interval over the bucket's sentences (`intervals.bootstrap_interval`).
  """
  statistic = intervals.statistic_of(statistic)
  stats, lengths = np.asarray(stats), np.asarray(lengths)
  if stats.ndim != 2 or lengths.shape != stats.shape[:1]:
    raise ValueError(f"stats must be [n, k] and lengths [n], got shapes {stats.shape} and "
                     f"{lengths.shape}")
  spread = (np.zeros(len(lengths)) if sentence_values is None
            else np.asarray(sentence_values, np.float64))
  ids = length_buckets(lengths, boundaries)
  out = {}
  for b, label in enumerate(bucket_labels(boundaries)):
    members = np.flatnonzero(ids == b)
    if members.size == 0:
      continue
    low, high = intervals.bootstrap_interval(stats[members], statistic, confidence)
    out[label] = {
        "count": int(members.size),
        "mean": float(statistic.value(stats[members].sum(0))),
        "std": float(spread[members].std()),
        "low": low, "high": high,
        "mean_length": float(lengths[members].mean()),
    }
  return out


def bucket_of(lengths, boundaries: Sequence[int]) -> list[str]:
  """The bucket label of each of [n] lengths (`bucket_labels`, `length_buckets`)."""
  labels = bucket_labels(boundaries)
  return [labels[b] for b in length_buckets(lengths, boundaries)]


def bucket_curve(buckets: Mapping[str, Mapping[str, float]]):
  """(mean_lengths, means, stds) arrays from `per_bucket_mean`, for `plot_metric_vs_length`."""
  rows = list(buckets.values())
  return (np.array([r["mean_length"] for r in rows]), np.array([r["mean"] for r in rows]),
          np.array([r["std"] for r in rows]))
