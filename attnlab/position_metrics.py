"""Where in the output a model goes wrong: teacher-forced token accuracy by target position, and
the position of the first error of a decoding.

They separate attention from the decoder's length extrapolation: a model trained on targets of
at most L tokens that degrades on long sources may fail because its attention loses its place
(errors anywhere, accuracy flat in position) or because its decoder has never run past step L
(teacher-forced accuracy falls beyond position L; first errors pile up there).

Positions are 1-based, as source lengths are in ``attnlab.length_buckets``, whose bucket labels
they share (``1-10``, ``11-20``, ``>20``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attnlab import length_buckets


def first_error(prediction: Sequence[int], reference: Sequence[int]) -> int | None:
  """The 1-based position of the first output token that differs from the reference, None when
  the prediction equals it.

  Args:
    prediction: [out_len] ids of the decoded tokens, specials stripped.
    reference: [ref_len] ids of the reference tokens, specials stripped.

  A prediction that stops early errs at the first missing position (``len(prediction) + 1``,
  where the reference goes on and the decoder ended); one that goes on errs at
  ``len(reference) + 1`` (where it should have ended).
  """
  prediction, reference = list(prediction), list(reference)
  for position, (p, r) in enumerate(zip(prediction, reference), 1):
    if p != r:
      return position
  if len(prediction) == len(reference):
    return None
  return min(len(prediction), len(reference)) + 1


def position_boundaries(longest: int) -> list[int]:
  """Upper bounds of position buckets of ten up to ``longest`` (``[10, 20, ..., longest]``)."""
  if longest <= 10:
    return [max(int(longest), 1)]
  return list(range(10, int(longest), 10)) + [int(longest)]


def accuracy_by_position(correct: Sequence[Sequence[bool]],
                         boundaries: Sequence[int]) -> dict[str, dict]:
  """Teacher-forced token accuracy per target-position bucket.

  Args:
    correct: per sentence, [tgt_len + 1] whether the teacher-forced argmax at each target
      position (the end-of-sentence step last) was the reference token.
    boundaries: upper bounds of the position buckets (``length_buckets.bucket_labels``).

  Returns:
    {label: {"count": tokens in the bucket, "mean": their accuracy}} for each non-empty bucket,
    in bucket order.
  """
  positions = np.concatenate([np.arange(1, len(c) + 1) for c in correct] or [np.zeros(0, int)])
  values = np.concatenate([np.asarray(c, float) for c in correct] or [np.zeros(0)])
  if positions.size == 0:
    return {}
  ids = length_buckets.length_buckets(positions.astype(np.int64), boundaries)
  result = {}
  for b, label in enumerate(length_buckets.bucket_labels(boundaries)):
    in_bucket = values[ids == b]
    if in_bucket.size:
      result[label] = {"count": int(in_bucket.size), "mean": float(in_bucket.mean())}
  return result


def first_errors_by_position(errors: Sequence[int | None],
                             boundaries: Sequence[int]) -> dict[str, int]:
  """How many sentences first err in each position bucket, and how many never do.

  Args:
    errors: per sentence, ``first_error``'s result.
    boundaries: upper bounds of the position buckets.

  Returns:
    {"none": sentences decoded exactly, label: sentences whose first error is in that bucket}
    (every bucket listed, zeros included, so curves of several models line up).
  """
  labels = length_buckets.bucket_labels(boundaries)
  result = {"none": sum(e is None for e in errors), **{label: 0 for label in labels}}
  wrong = np.array([e for e in errors if e is not None], np.int64)
  if wrong.size:
    for b in length_buckets.length_buckets(wrong, boundaries).tolist():
      result[labels[b]] += 1
  return result
