"""One small wrapper around orbax's CheckpointManager.

Keeps the ``keep`` most recent checkpoints and the best one by a validation
metric, saves synchronously (a checkpoint on disk is complete once ``save``
returns: orbax writes to a temporary folder and renames it), and restores the
latest or the best step.
"""

from __future__ import annotations

import logging
import os
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
        enable_async_checkpointing=False, create=True)
    self.manager = ocp.CheckpointManager(os.fspath(os.path.abspath(directory)), options=options)

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

  def close(self) -> None:
    self.manager.close()
