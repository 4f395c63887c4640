"""Source-length buckets and per-bucket metrics: labels, bucket ids, means with their spread,
alignment error rate per bucket, and the curves the plots draw from them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from attnlab import metrics


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


def per_bucket_alignment_error_rate(attentions: Sequence, sures: Sequence, lengths,
                                    boundaries: Sequence[int]) -> dict[str, dict]:
  """Alignment error rate within each length bucket, link counts pooled over its sentences.

  Args:
    attentions: [n] of [tgt_len, src_len] attention arrays (as `corpus_alignment_error_rate`).
    sures: [n] sure-link sets.
    lengths: [n] the lengths to bucket by (e.g. source lengths), each >= 1.
    boundaries: bucket upper bounds, as in `length_buckets`.

  Returns:
    `per_bucket_mean`'s format: {label: {"count", "mean", "std", "mean_length"}}, where "mean"
    is the bucket's pooled AER (as `corpus_alignment_error_rate` on its sentences) and "std"
    the standard deviation of its sentence-level AERs.
  """
  lengths = np.asarray(lengths)
  if len(attentions) != len(sures) or lengths.shape != (len(attentions),):
    raise ValueError(f"got {len(attentions)} attentions, {len(sures)} sure-link sets and "
                     f"lengths of shape {lengths.shape}")
  ids = length_buckets(lengths, boundaries)
  out = {}
  for b, label in enumerate(bucket_labels(boundaries)):
    members = np.flatnonzero(ids == b)
    if members.size == 0:
      continue
    sentence = [metrics.alignment_error_rate(attentions[k], sures[k]) for k in members]
    out[label] = {
        "count": int(members.size),
        "mean": metrics.corpus_alignment_error_rate([attentions[k] for k in members],
                                                    [sures[k] for k in members]),
        "std": float(np.std(sentence)),
        "mean_length": float(lengths[members].mean()),
    }
  return out


def bucket_curve(buckets: Mapping[str, Mapping[str, float]]):
  """(mean_lengths, means, stds) arrays from `per_bucket_mean`, for `plot_metric_vs_length`."""
  rows = list(buckets.values())
  return (np.array([r["mean_length"] for r in rows]), np.array([r["mean"] for r in rows]),
          np.array([r["std"] for r in rows]))
