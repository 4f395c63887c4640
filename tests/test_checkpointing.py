"""attnlab.checkpointing: retention counts every checkpoint and keeps the best; a checkpoint
that does not restore is moved aside and the next one is used."""

import pathlib

import numpy as np

from attnlab.checkpointing import Checkpointer

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
