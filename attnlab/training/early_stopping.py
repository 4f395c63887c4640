"""Early stopping: end training once the validation metric has stopped improving.

``train.early_stopping_patience = P`` (0 = off) stops a run after P consecutive evaluations
(every ``train.eval_every`` steps) without a better ``train.best_metric`` (in the direction of
``train.best_mode``; the mean over seeds for a multi-seed run, the value that also ranks its
checkpoints), better meaning by more than ``train.early_stopping_min_delta`` (default 0: any
strict improvement; Keras's ``min_delta``) and by more than
``train.early_stopping_min_relative_delta`` times the best so far (default 0), so a curve that
creeps up by a sentence now and then on a plateau counts as flat. The relative criterion holds
at every scale: an absolute 0.005 nats is more than a converged loss of 0.003 can fall, while
5% of the best says "stopped improving" at 0.3 and at 0.003 alike. ``train.num_steps`` stays
the cap. Stopping early saves a checkpoint at that step, then the run is evaluated on the test
split as at the end, with its best checkpoint (by ``train.best_metric``), and its summary says
``stopped_early: true`` and the step.

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

from attnlab import run_record


def stalled_evaluations(values: Sequence[float], mode: str, min_delta: float = 0.0,
                        min_relative_delta: float = 0.0) -> int:
  """Evaluations since the last improvement of ``values``; 0 when the last improved,
  ``len(values)`` when there is none yet.

  An evaluation improves when it is better than every earlier one by more than ``min_delta``
  (in the direction of ``mode``); the first non-NaN value is the first improvement, and a tie
  never is one. With ``min_delta = 0`` the last improvement is the first occurrence of the best.

  values: [num_evaluations] the monitored metric in order; mode: "max" or "min";
  min_delta: >= 0, in the metric's units (0.005 exact match: about 1 sentence in 200);
  min_relative_delta: >= 0, a fraction of ``|best|``; an improvement must exceed both.
  """
  sign = 1.0 if mode == "max" else -1.0
  best, last_improvement = None, -1
  for i, value in enumerate(np.asarray(values, np.float64)):
    if np.isnan(value):
      continue
    if best is None or sign * (value - best) > max(min_delta, min_relative_delta * abs(best)):
      best, last_improvement = value, i
  return len(values) - 1 - last_improvement


def should_stop(values: Sequence[float], mode: str, patience: int, min_delta: float = 0.0,
                min_relative_delta: float = 0.0) -> bool:
  """True when ``patience`` > 0 and the last ``patience`` evaluations brought no improvement
  (of more than ``min_delta`` and ``min_relative_delta`` of the best)."""
  return (patience > 0 and len(values) > patience
          and stalled_evaluations(values, mode, min_delta, min_relative_delta) >= patience)


def valid_history(dirs: Sequence[str], metric: str, upto_step: int) -> list[float]:
  """The monitored metric of each evaluation up to ``upto_step``, averaged over the models
  whose outputs are in ``dirs`` (one per seed), from their ``metrics.jsonl`` ``valid`` records.

  Steps that some model lacks are left out (a run killed between two models' writes).
  """
  per_dir = []
  for directory in dirs:
    per_dir.append({int(r["step"]): float(r[metric])
                    for r in run_record.read_jsonl(os.path.join(directory, run_record.METRICS))
                    if r.get("split") == "valid" and r.get("step", upto_step + 1) <= upto_step
                    and isinstance(r.get(metric), (int, float))})
  if not per_dir:
    return []
  steps = sorted(set.intersection(*(set(v) for v in per_dir)))
  return [float(np.mean([v[s] for v in per_dir])) for s in steps]
