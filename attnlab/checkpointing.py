"""One small wrapper around orbax's CheckpointManager.

Keeps the ``keep`` most recent checkpoints and the best one by a validation
metric, saves synchronously (a checkpoint on disk is complete once ``save``
returns: orbax writes to a temporary folder and renames it), and restores the
latest or the best step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers


class Checkpointer:
  """Checkpoints of a train state under ``directory``.

  Args:
    directory: the folder (created if missing).
    keep: how many of the latest checkpoints to keep.
    best_metric: key of the metrics dict passed to ``save`` that ranks
      checkpoints; the best one is kept too.
    best_mode: ``max`` or ``min``.
  """

  def __init__(self, directory: str | os.PathLike, keep: int = 2,
               best_metric: str = "exact_match", best_mode: str = "max"):
    self.best_metric = best_metric
    get_metric = lambda metrics: metrics[best_metric]  # noqa: E731
    policy = checkpoint_managers.AnyPreservationPolicy([
        checkpoint_managers.LatestN(n=keep),
        # BestN keeps the last n after an ascending sort: reverse for 'min'.
        checkpoint_managers.BestN(get_metric_fn=get_metric, reverse=best_mode == "min", n=1),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy, best_fn=get_metric, best_mode=best_mode,
        enable_async_checkpointing=False, create=True,
        cleanup_tmp_directories=True)
    self.directory = os.fspath(os.path.abspath(directory))
    self.quarantine = self.directory + "_corrupted"
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options)
    except Exception:  # noqa: BLE001  orbax reads every step's metadata when it opens
      for step_dir in _unreadable_step_dirs(self.directory):
        self._move_aside(step_dir, "its metadata cannot be read")
      self.manager = ocp.CheckpointManager(self.directory, options=options)

  def _move_aside(self, step_dir: str, reason: str) -> None:
    """Moves a broken step folder to ``<directory>_corrupted/`` (kept for inspection)."""
    os.makedirs(self.quarantine, exist_ok=True)
    target = os.path.join(self.quarantine, f"{os.path.basename(step_dir)}-{time.time_ns()}")
    os.replace(step_dir, target)
    logging.warning("checkpoint %s is corrupted or partial (%s); moved to %s",
                    step_dir, reason, target)

  def save(self, step: int, state: Any, metrics: dict | None = None) -> None:
    """Saves ``state`` at ``step`` (``metrics`` must hold best_metric to rank it)."""
    if step in self.manager.all_steps():
      return
    if metrics is not None and self.best_metric not in metrics:
      metrics = None
    self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
    self.manager.wait_until_finished()

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The best step by the metric, or the latest when none was ranked."""
    return self.manager.best_step() or self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def restore(self, step: int, target: Any) -> Any:
    """Restores the state saved at ``step`` into the structure of ``target``."""
    logging.info("restoring checkpoint at step %d from %s", step, self.manager.directory)
    return self.manager.restore(step, args=ocp.args.StandardRestore(target))

  def restore_latest(self, target: Any) -> Any | None:
    """The newest checkpoint that restores, or None when there is none.

    A corrupted or partial newest checkpoint is skipped with a warning and the
    one before it is used.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    for step in steps:
      try:
        return self.restore(step, target)
      except Exception as e:  # noqa: BLE001  (orbax raises many types for bad files)
        logging.warning("checkpoint at step %d in %s cannot be restored (%s: %s); "
                        "trying the previous one", step, self.directory, type(e).__name__,
                        str(e).splitlines()[0] if str(e) else "")
        self._move_aside(os.path.join(self.directory, str(step)), "it does not restore")
        self.manager.reload()
    if steps:
      raise RuntimeError(
          f"no checkpoint in {self.directory} can be restored (moved to {self.quarantine}); "
          "run again to start from scratch")
    return None

  def close(self) -> None:
    self.manager.close()


def _unreadable_step_dirs(directory: str) -> list[str]:
  """Step folders under ``directory`` with a JSON metadata file that does not parse."""
  broken = []
  for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
    step_dir = os.path.join(directory, name)
    if not (name.isdigit() and os.path.isdir(step_dir)):
      continue
    for root, _, files in os.walk(step_dir):
      for file in files:
        if file.endswith(".json") or file in ("_CHECKPOINT_METADATA", "metrics", "_METADATA"):
          try:
            with open(os.path.join(root, file), encoding="utf-8") as f:
              json.load(f)
          except (ValueError, UnicodeDecodeError, OSError):
            broken.append(step_dir)
            break
      else:
        continue
      break
  return broken
