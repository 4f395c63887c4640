"""Early stopping: end training once the validation metric has stopped improving.

``train.early_stopping_patience = P`` (0 = off) stops a run after P consecutive evaluations
(every ``train.eval_every`` steps) without a strictly better ``train.best_metric`` (in the
direction of ``train.best_mode``; the mean over seeds for a multi-seed run, the value that
also ranks its checkpoints). ``train.num_steps`` stays the cap. Stopping early saves a
checkpoint at that step, then the run is evaluated on the test split as at the end (with its
last state), and its summary says ``stopped_early: true`` and the step.

This is how a comparison gives each variant the budget it needs (Prechelt 1998): a variant that
learns fast stops soon, a slow one (the no-attention baseline) trains until its own curve is
flat, and the learning curves in metrics.jsonl show where each stopped.

The stall count is rebuilt from the ``valid`` records of the run's metrics.jsonl files, so a
resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from attnlab.atlas.run import read_jsonl


def stalled_evaluations(values: Sequence[float], mode: str) -> int:
  """Evaluations since the best of ``values`` (its first occurrence); 0 when the last is the
  best, ``len(values)`` when there is none yet.

  values: [num_evaluations] the monitored metric in order; mode: "max" or "min".
  """
  if not values:
    return 0
  array = np.asarray(values, np.float64)
  if np.isnan(array).all():
    return len(values)
  best = int(np.nanargmax(array) if mode == "max" else np.nanargmin(array))
  return len(values) - 1 - best


def should_stop(values: Sequence[float], mode: str, patience: int) -> bool:
  """True when ``patience`` > 0 and the last ``patience`` evaluations brought no improvement."""
  return patience > 0 and len(values) > patience and stalled_evaluations(values, mode) >= patience


def valid_history(dirs: Sequence[str], metric: str, upto_step: int) -> list[float]:
  """The monitored metric of each evaluation up to ``upto_step``, averaged over the models
  whose outputs are in ``dirs`` (one per seed), from their ``metrics.jsonl`` ``valid`` records.

  Steps that some model lacks are left out (a run killed between two models' writes).
  """
  per_dir = []
  for directory in dirs:
    per_dir.append({int(r["step"]): float(r[metric])
                    for r in read_jsonl(os.path.join(directory, "metrics.jsonl"))
                    if r.get("split") == "valid" and r.get("step", upto_step + 1) <= upto_step
                    and isinstance(r.get(metric), (int, float))})
  if not per_dir:
    return []
  steps = sorted(set.intersection(*(set(v) for v in per_dir)))
  return [float(np.mean([v[s] for v in per_dir])) for s in steps]
