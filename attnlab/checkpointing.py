"""One small wrapper around orbax's CheckpointManager.

Keeps the ``keep`` most recent checkpoints and the best one by a validation
metric (checkpoints saved without metrics, e.g. on a signal, count among the
recent ones and are deleted like them), saves synchronously (a checkpoint on
disk is complete once ``save`` returns: orbax writes to a temporary folder and
renames it), and restores the latest or the best step.

Two ways a checkpoint can fail to restore, told apart before any array is read:

* it does not *match* the state asked for (its stored tree or array shapes, read from its
  metadata, differ from the state the config builds: another model's config): a config error,
  ``CheckpointMismatch``; nothing is moved, the run is intact for the config it was trained with;
* it does not *read* (its metadata or arrays are damaged or partial): it is moved to
  ``<directory>_corrupted/`` with one warning line and the next one is tried, in training,
  evaluation and decoding alike. What orbax, asyncio and tensorstore report on the side while
  a failed attempt unwinds (logged task errors, unraisable exceptions) is held back during
  the attempt and dropped with it (``held_back``), whatever its wording.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Iterator

import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers


class CheckpointMismatch(ValueError):
  """A readable checkpoint that holds another model than the state asked for (a config
  error: the checkpoint is kept where it is)."""


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
    # The handler named up front lets ``item_metadata`` read a step's tree before restoring.
    open_manager = lambda: ocp.CheckpointManager(  # noqa: E731
        self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler())
    try:
      self.manager = open_manager()
    except Exception:  # noqa: BLE001  orbax reads every step's metadata when it opens
      for step_dir in _unreadable_step_dirs(self.directory):
        self._move_aside(step_dir, "its metadata cannot be read")
      self.manager = open_manager()

  def _move_aside(self, step_dir: str, reason: str, then: str = "") -> None:
    """Moves a broken step folder to ``<directory>_corrupted/`` (kept for inspection), with
    one warning line (``then``: what happens next, e.g. which step is tried instead)."""
    os.makedirs(self.quarantine, exist_ok=True)
    target = os.path.join(self.quarantine, f"{os.path.basename(step_dir)}-{time.time_ns()}")
    os.replace(step_dir, target)
    logging.warning("checkpoint %s is corrupted or partial (%s); moved to %s%s",
                    step_dir, reason, target, f"; {then}" if then else "")

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
    before it is tried; one of another model raises ``CheckpointMismatch`` (``restore_first``).
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    restored = self.restore_first(steps, target)
    if restored is None and steps:
      logging.warning("no checkpoint in %s restores (all moved to %s): starting from scratch",
                      self.directory, self.quarantine)
    return None if restored is None else restored[1]

  def restore_first(self, steps: list[int], target: Any) -> tuple[int, Any] | None:
    """(step, state) of the first of ``steps`` that restores, or None when none does.

    Each one that does not read is moved to ``<directory>_corrupted/`` (kept for
    inspection) with a one-line warning. Raises ``CheckpointMismatch`` (moving nothing) at
    the first one whose stored shapes are not ``target``'s: the config describes another
    model, and every checkpoint of the run would fail the same way.
    """
    wanted = flat_shapes(target)
    for step in steps:
      with held_back() as attempt:
        try:
          stored = flat_shapes(self.manager.item_metadata(step))
          if not stored:  # orbax gives None when the tree's metadata file is missing
            raise FileNotFoundError("the checkpoint's tree metadata is missing")
        except Exception as e:  # noqa: BLE001  (orbax raises many types for bad files)
          attempt.failed = e
        else:
          mismatch = shape_mismatch(stored, wanted)
          if mismatch:
            raise CheckpointMismatch(
                f"checkpoint {step} in {self.directory} holds another model than the config "
                f"describes: {mismatch}; nothing was moved: use the config it was trained with")
          try:
            return step, self.restore(step, target)
          except Exception as e:  # noqa: BLE001  (orbax raises many types for bad files)
            attempt.failed = e
      later = steps[steps.index(step) + 1:]
      self._move_aside(os.path.join(self.directory, str(step)),
                       f"it does not restore: {type(attempt.failed).__name__}: "
                       f"{_first_words(attempt.failed)}",
                       f"trying step {later[0]}" if later else "no other checkpoint to try")
      self.manager.reload()
    return None

  def close(self) -> None:
    self.manager.close()


def read_steps(directory: str | os.PathLike, steps: list[int],
               target: Any) -> Iterator[tuple[int, Any]]:
  """(step, state) of each of ``steps`` under ``directory``, restored into the structure of
  ``target`` one at a time, read without changing anything there: a read-only orbax manager
  creates, cleans and moves nothing (checkpoint averaging: the originals stay as they are).

  Raises ``CheckpointMismatch`` at a checkpoint of another model (as ``restore_first``), and
  ``CheckpointUnreadable`` naming the first one that does not read or no longer exists (a
  running training may have deleted it: ``train.keep_checkpoints``).
  """
  directory = os.fspath(os.path.abspath(directory))
  # read_only with the options it implies, so orbax has nothing to warn about but the fact.
  options = ocp.CheckpointManagerOptions(
      read_only=True, save_interval_steps=0, create=False, cleanup_tmp_directories=False,
      enable_async_checkpointing=False)
  with without_logs("Given directory is read only"):
    manager = ocp.CheckpointManager(directory, options=options,
                                    item_handlers=ocp.StandardCheckpointHandler())
  wanted = flat_shapes(target)
  try:
    for step in steps:
      state = None
      with held_back() as attempt:
        try:
          stored = flat_shapes(manager.item_metadata(step))
          if not stored:  # orbax gives None when the tree's metadata file is missing
            raise FileNotFoundError("the checkpoint's tree metadata is missing")
          mismatch = shape_mismatch(stored, wanted)
          if not mismatch:
            state = manager.restore(step, args=ocp.args.StandardRestore(target))
        except Exception as e:  # noqa: BLE001  (orbax raises many types for bad files)
          attempt.failed = e
      if attempt.failed is not None:
        raise CheckpointUnreadable(
            f"checkpoint {step} in {directory} does not read ({type(attempt.failed).__name__}: "
            f"{_first_words(attempt.failed)})")
      if mismatch:
        raise CheckpointMismatch(f"checkpoint {step} in {directory} holds another model than "
                                 f"the config describes: {mismatch}")
      yield step, state
  finally:
    manager.close()


@contextlib.contextmanager
def without_logs(*prefixes: str) -> Iterator[None]:
  """Drops the log records (root and ``absl`` loggers' handlers) whose message starts with
  one of ``prefixes`` while inside: orbax's warnings about what was asked on purpose."""
  class Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
      return not str(record.getMessage()).startswith(prefixes)

  drop = Drop()
  handlers = {h for name in ("", "absl") for h in logging.getLogger(name).handlers}
  for handler in handlers:
    handler.addFilter(drop)
  try:
    yield
  finally:
    for handler in handlers:
      handler.removeFilter(drop)


class CheckpointUnreadable(ValueError):
  """A checkpoint that does not read (damaged, partial, or deleted meanwhile), where nothing
  may be moved aside (``read_steps``)."""


def _first_words(error: Exception, limit: int = 160) -> str:
  """The start of an error's first line (tensorstore's carry kilobytes of JSON spec)."""
  text = str(error).splitlines()[0] if str(error) else ""
  text = text.split(" [tensorstore_spec")[0]
  return text if len(text) <= limit else text[:limit] + "..."


def flat_shapes(tree: Any) -> dict[tuple[str, ...], tuple[int, ...]]:
  """{path: shape} of every leaf of a state or of a checkpoint's metadata tree, the paths in
  orbax's naming (``("params", "encoder", "kernel")``) so both sides compare."""
  return {tuple(map(str, path)): tuple(getattr(leaf, "shape", np.shape(leaf)))
          for path, leaf in ocp.tree.to_flat_dict(tree).items()}


def shape_mismatch(stored: dict, wanted: dict, shown: int = 1) -> str:
  """How a checkpoint's arrays (``stored``, ``flat_shapes``) differ from the state's
  (``wanted``), the first ``shown`` differences named (parameters before optimizer state);
  "" when they match."""
  differences = []
  for path in sorted(set(stored) | set(wanted), key=lambda p: (p[:1] != ("params",), p)):
    name = ".".join(path)
    if path not in wanted:
      differences.append(f"{name} is in the checkpoint, not in the config's model")
    elif path not in stored:
      differences.append(f"the config's model has {name}, the checkpoint does not")
    elif stored[path] != wanted[path]:
      differences.append(f"{name} is {stored[path]} in the checkpoint, {wanted[path]} for "
                         "the config")
  more = len(differences) - shown
  return "; ".join(differences[:shown]) + (f" (and {more} more arrays)" if more > 0 else "")


class _Held(logging.Filter):
  """Collects the records a handler gets instead of emitting them."""

  def __init__(self):
    super().__init__()
    self.records: list[logging.LogRecord] = []

  def filter(self, record: logging.LogRecord) -> bool:
    self.records.append(record)
    return False


class Attempt:
  """One restore attempt under ``held_back``: set ``failed`` to the error when it fails."""
  failed: Exception | None = None


def _closed_loop_callback(exc_type, exc_value) -> bool:
  """Whether an exception is a late callback into an asyncio loop already closed: what a failed
  orbax restore's other tensorstore reads raise from their threads when they complete after
  orbax's ``asyncio.run`` has ended (``call_soon_threadsafe``: "Event loop is closed")."""
  return (exc_type is RuntimeError and str(exc_value) == "Event loop is closed"
          and any(frame.name == "call_soon_threadsafe"
                  for frame in traceback.extract_tb(exc_value.__traceback__)))


def quiet_closed_loop_callbacks() -> None:
  """Drops, process-wide from now on, only the late-callback errors of a failed restore
  (``_closed_loop_callback``), whichever hook reports them (``sys.excepthook`` for errors a
  native thread prints, ``threading.excepthook``, ``sys.unraisablehook``); everything else
  reaches the hooks as before. Idempotent."""
  if getattr(sys.excepthook, "attnlab_quiet", False):
    return
  excepthook, thread_hook, unraisable = (sys.excepthook, threading.excepthook,
                                         sys.unraisablehook)

  def on_exception(exc_type, exc_value, tb):
    if not _closed_loop_callback(exc_type, exc_value):
      excepthook(exc_type, exc_value, tb)

  def on_thread_exception(args):
    if not _closed_loop_callback(args.exc_type, args.exc_value):
      thread_hook(args)

  def on_unraisable(args):
    if not _closed_loop_callback(args.exc_type, args.exc_value):
      unraisable(args)

  on_exception.attnlab_quiet = True
  sys.excepthook, threading.excepthook, sys.unraisablehook = (
      on_exception, on_thread_exception, on_unraisable)


@contextlib.contextmanager
def held_back() -> Iterator[Attempt]:
  """Holds back what is logged (every handler of the root, ``asyncio`` and ``absl``
  loggers) and every unraisable exception while inside: replayed in order when the attempt
  succeeds, dropped when it failed (``attempt.failed`` set) or raised. A failed orbax restore
  leaves tasks and coroutines that report their errors when collected ("Task exception was
  never retrieved", "Exception ignored in ..."): they are collected here, while held back."""
  attempt = Attempt()
  quiet_closed_loop_callbacks()  # a failed attempt's reads may report after it has ended
  handlers = {h for name in ("", "asyncio", "absl") for h in logging.getLogger(name).handlers}
  held = {handler: _Held() for handler in handlers}
  for handler, hold in held.items():
    handler.addFilter(hold)
  unraisable: list = []
  hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
  ok = False
  try:
    yield attempt
    ok = attempt.failed is None
  finally:
    if not ok:
      gc.collect()  # the abandoned tasks' reports, while still held back
    sys.unraisablehook = hook
    for handler, hold in held.items():
      handler.removeFilter(hold)
    if ok:
      for handler, hold in held.items():
        for record in hold.records:
          handler.handle(record)
      for item in unraisable:
        hook(item)


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
