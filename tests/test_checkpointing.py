"""attnlab.checkpointing: retention counts every checkpoint and keeps the best; a checkpoint
that does not read is moved aside and the next one is used; one of another model's shapes is a
mismatch and stays; a failed attempt's side noise is dropped, a good one's kept."""

import logging
import pathlib
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from attnlab.checkpointing import Checkpointer, CheckpointMismatch, held_back, shape_mismatch

STATE = {"w": np.arange(3, dtype=np.float32)}


def _save_all(directory, saves, keep=2):
  """Saves in separate Checkpointers, as SIGTERM / rerun cycles do."""
  for step, metrics in saves:
    ckpt = Checkpointer(directory, keep=keep)
    ckpt.save(step, {"w": STATE["w"] + step}, metrics)
    ckpt.close()
  ckpt = Checkpointer(directory, keep=keep)
  try:
    return ckpt.all_steps(), ckpt.best_step()
  finally:
    ckpt.close()


def test_signal_checkpoints_are_retained_like_the_others_and_never_evict_the_best(tmp_path):
  # Five SIGTERM / rerun cycles (saves without metrics at 101, 201, 401, 701, 1001) between
  # evaluated checkpoints; step 600 has the best validation metric.
  saves = [(101, None), (201, None), (300, {"exact_match": 0.5}), (401, None),
           (600, {"exact_match": 0.9}), (701, None), (900, {"exact_match": 0.7}),
           (1001, None), (1200, {"exact_match": 0.8})]
  steps, best = _save_all(tmp_path / "ckpt", saves)
  assert best == 600
  assert steps == [600, 1001, 1200]  # the 2 newest and the best, nothing else


def test_min_mode_keeps_the_lowest(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", keep=1, best_metric="loss", best_mode="min")
  for step, loss in ((1, 3.0), (2, 1.0), (3, 2.0), (4, None)):
    ckpt.save(step, STATE, None if loss is None else {"loss": loss})
  assert ckpt.all_steps() == [2, 4] and ckpt.best_step() == 2
  ckpt.close()


def _corrupt(step_dir: pathlib.Path) -> None:
  for path in step_dir.rglob("*"):
    if path.is_file() and path.stat().st_size > 0:
      path.write_bytes(b"\0garbage")


def test_restore_first_moves_broken_ones_aside_with_one_line_each(tmp_path, caplog):
  directory = tmp_path / "ckpt"
  _save_all(directory, [(1, None), (2, None), (3, None)], keep=3)
  _corrupt(directory / "3")
  _corrupt(directory / "2")
  ckpt = Checkpointer(directory, keep=3)
  step, state = ckpt.restore_first([3, 2, 1], STATE)
  assert step == 1 and np.array_equal(state["w"], STATE["w"] + 1)
  assert ckpt.all_steps() == [1]
  ckpt.close()
  warnings = [r for r in caplog.records if "corrupted or partial" in r.getMessage()]
  assert len(warnings) == 2
  assert all("\n" not in r.getMessage() and len(r.getMessage()) < 600 for r in warnings)
  assert len(list((tmp_path / "ckpt_corrupted").iterdir())) == 2


def test_nothing_restores_gives_none_and_keeps_the_files(tmp_path):
  directory = tmp_path / "ckpt"
  _save_all(directory, [(1, None)])
  _corrupt(directory / "1")
  ckpt = Checkpointer(directory)
  assert ckpt.restore_latest(STATE) is None
  ckpt.close()
  assert len(list((tmp_path / "ckpt_corrupted").iterdir())) == 1


def test_a_checkpoint_of_another_shape_is_a_mismatch_and_stays_in_place(tmp_path):
  directory = tmp_path / "ckpt"
  _save_all(directory, [(1, None), (2, None)])
  ckpt = Checkpointer(directory)
  wider = {"w": np.zeros(5, np.float32)}
  with pytest.raises(CheckpointMismatch, match=r"checkpoint 2 .* w is \(3,\) in the checkpoint, "
                                               r"\(5,\) for the config"):
    ckpt.restore_first([2, 1], wider)
  with pytest.raises(CheckpointMismatch, match="the config's model has b"):
    ckpt.restore_latest({**STATE, "b": np.zeros(1, np.float32)})
  assert ckpt.all_steps() == [1, 2]
  step, state = ckpt.restore_first([2, 1], STATE)  # the right shapes still restore
  assert step == 2 and np.array_equal(state["w"], STATE["w"] + 2)
  ckpt.close()
  assert not (tmp_path / "ckpt_corrupted").exists()


def test_shape_mismatch_names_parameters_first_and_counts_the_rest():
  stored = {("opt_state", "mu", "k"): (2, 3), ("params", "k"): (2, 3), ("step",): ()}
  wanted = {("opt_state", "mu", "k"): (4, 3), ("params", "k"): (4, 3), ("step",): ()}
  assert shape_mismatch(stored, stored) == ""
  assert shape_mismatch(stored, wanted) == ("params.k is (2, 3) in the checkpoint, (4, 3) for "
                                            "the config (and 1 more arrays)")


def test_held_back_replays_a_successful_attempt_and_drops_a_failed_ones_noise(caplog,
                                                                             monkeypatch):
  logger = logging.getLogger("asyncio")
  reported = []
  monkeypatch.setattr(sys, "unraisablehook", reported.append)
  unraisable = SimpleNamespace(exc_type=RuntimeError, exc_value=RuntimeError("x"),
                               exc_traceback=None, err_msg=None, object=None)
  with caplog.at_level(logging.INFO):
    with held_back():
      logger.info("kept")
      sys.unraisablehook(unraisable)
      assert not reported and not caplog.records  # held back until the attempt ends
    with held_back() as attempt:
      logger.error("Task exception was never retrieved, in any wording")
      sys.unraisablehook(unraisable)
      attempt.failed = RuntimeError("unreadable")
  assert [r.getMessage() for r in caplog.records] == ["kept"]
  assert reported == [unraisable] and sys.unraisablehook == reported.append


def test_a_checkpoint_without_its_tree_metadata_does_not_read_and_is_moved(tmp_path):
  directory = tmp_path / "ckpt"
  _save_all(directory, [(1, None), (2, None)])
  (directory / "2" / "default" / "_METADATA").unlink()
  ckpt = Checkpointer(directory)
  step, _ = ckpt.restore_first([2, 1], STATE)
  ckpt.close()
  assert step == 1 and len(list((tmp_path / "ckpt_corrupted").iterdir())) == 1


def test_a_failed_restores_late_callbacks_are_dropped_and_other_errors_are_not(monkeypatch):
  """What a failed orbax restore's other tensorstore reads raise when they complete after its
  asyncio loop closed ("Event loop is closed" from call_soon_threadsafe) is dropped by the hooks
  that report errors of threads; any other error still reaches them."""
  import asyncio
  import threading

  from attnlab.checkpointing import quiet_closed_loop_callbacks
  seen = []
  monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(str(v)))
  monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(str(args.exc_value)))
  monkeypatch.setattr(sys, "unraisablehook", lambda args: seen.append(str(args.exc_value)))
  quiet_closed_loop_callbacks()
  quiet_closed_loop_callbacks()  # idempotent
  loop = asyncio.new_event_loop()
  loop.close()

  def late_callback():
    loop.call_soon_threadsafe(print)

  def other_error():
    raise RuntimeError("something else")

  for target in (late_callback, other_error):
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
  for target in (late_callback, other_error):
    try:
      target()
    except RuntimeError:
      sys.excepthook(*sys.exc_info())
  assert seen == ["something else", "something else"]
