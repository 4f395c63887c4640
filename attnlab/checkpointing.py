"""One small wrapper around orbax's CheckpointManager.

Keeps the ``keep`` most recent checkpoints and the best one by a validation
metric (checkpoints saved without metrics, e.g. on a signal, count among the
recent ones and are deleted like them), saves synchronously (a checkpoint on
disk is complete once ``save`` returns: orbax writes to a temporary folder and
renames it), and restores the latest or the best step. A checkpoint that does
not restore is moved to ``<directory>_corrupted/`` and the next one is tried,
in training, evaluation and decoding alike.
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
        # Checkpoints without metrics (signal saves) are ranked by LatestN alone: kept
        # only while among the `keep` newest, never in place of the best.
        checkpoint_managers.BestN(get_metric_fn=get_metric, reverse=best_mode == "min", n=1,
                                  keep_checkpoints_without_metrics=False),
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
    """The newest checkpoint that restores, or None when there is none (or none restores).

    A corrupted or partial checkpoint is moved aside with a one-line warning and the one
    before it is tried.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    restored = self.restore_first(steps, target)
    if restored is None and steps:
      logging.warning("no checkpoint in %s restores (all moved to %s): starting from scratch",
                      self.directory, self.quarantine)
    return None if restored is None else restored[1]

  def restore_first(self, steps: list[int], target: Any) -> tuple[int, Any] | None:
    """(step, state) of the first of ``steps`` that restores, or None when none does.

    Each one that does not restore is moved to ``<directory>_corrupted/`` (kept for
    inspection) with a one-line warning.
    """
    for step in steps:
      try:
        return step, self.restore(step, target)
      except Exception as e:  # noqa: BLE001  (orbax raises many types for bad files)
        self._move_aside(os.path.join(self.directory, str(step)),
                         f"it does not restore: {type(e).__name__}: {_first_words(e)}")
        self.manager.reload()
    return None

  def close(self) -> None:
    self.manager.close()


def _first_words(error: Exception, limit: int = 160) -> str:
  """The start of an error's first line (tensorstore's carry kilobytes of JSON spec)."""
  text = str(error).splitlines()[0] if str(error) else ""
  text = text.split(" [tensorstore_spec")[0]
  return text if len(text) <= limit else text[:limit] + "..."


def is_closed_loop_noise(exc_type, exc_value) -> bool:
  """Whether an unraisable exception is the harmless noise of tensorstore callbacks that land
  after a failed restore closed orbax's event loop ('Event loop is closed', 'cannot schedule
  new futures after shutdown'): ``attnlab.main`` keeps them off the terminal."""
  return (exc_type is RuntimeError and
          any(m in str(exc_value) for m in ("Event loop is closed",
                                            "cannot schedule new futures after shutdown")))


class DropFailedRestoreTasks(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' reports of orbax reads that a
  failed restore abandoned (their error is already the one warning line of ``restore_first``);
  ``attnlab.main`` adds it to the ``asyncio`` logger."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not ("Task exception was never retrieved" in message and
                "async_deserialize" in message)


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
