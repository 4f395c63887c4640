"""Checkpoint averaging: the mean parameters of a run's last k, or best k, checkpoints.

Averaging the weights of the last few checkpoints (Vaswani et al. 2017, sec. 6.1; fairseq's
``average_checkpoints.py``) smooths the noise of the final updates; averaging the best few
by validation loss does the same around the best point. Only the parameters are averaged:
the optimizer state and the counters are the newest chosen checkpoint's (what eval and decode
restore into; training on from an average is not its purpose).

* ``parse_choice("last:5")`` -> ``Choice("last", 5)``: the user's spelling, checked.
* ``chosen_steps(workdir, choice)``: which saved steps, newest first.
* ``mean_tree(trees)``: the leafwise mean of parameter trees (``jax.tree.map``).
* ``restore_average(workdir, steps, target)``: the averaged state, reading the
  checkpoints without changing anything in the workdir (``checkpointing.read_steps``).
* ``write_averaged_workdir(...)``: a new, self-contained workdir holding the average.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from attnlab import checkpointing, run_record
from attnlab.training import workdir as workdir_lib
from attnlab.training.steps import TrainState

HOW = ("last", "best")
# The files of a workdir that eval and decode read (``training.inference``), copied as they are.
RUN_FILES = (run_record.CONFIG, run_record.VOCAB, run_record.RUN)


class Choice(NamedTuple):
  """Which checkpoints to average: the ``k`` newest (``how='last'``) or the ``k`` with the
  lowest validation loss (``how='best'``)."""
  how: str
  k: int


def parse_choice(text: str) -> Choice:
  """``'last:K'`` or ``'best:K'`` (K >= 1) as a Choice; WorkdirError (one line) otherwise."""
  how, _, k = text.partition(":")
  if how not in HOW or not k.isdigit() or int(k) < 1:
    raise workdir_lib.WorkdirError(f"--average={text!r}: use last:K or best:K, K >= 1 the "
                                   "number of checkpoints to average (e.g. last:5)")
  return Choice(how, int(k))


def validation_losses(workdir: str) -> dict[int, float]:
  """{step: validation loss} from ``workdir/metrics.jsonl`` (the last record of a step wins:
  a resumed run writes again what it had written after its last checkpoint)."""
  losses = {}
  for record in run_record.read_jsonl(os.path.join(workdir, run_record.METRICS)):
    if record.get("split") == "valid" and isinstance(record.get("loss"), (int, float)):
      losses[int(record["step"])] = float(record["loss"])
  return losses


def select_steps(steps: Iterable[int], losses: dict[int, float], choice: Choice) -> list[int]:
  """The ``choice.k`` saved ``steps`` to average, newest first: the newest, or those with the
  lowest validation ``losses`` (ties: the newer); WorkdirError when there are fewer."""
  steps = sorted(set(steps), reverse=True)
  if choice.how == "best":
    steps = sorted((s for s in steps if s in losses), key=lambda s: (losses[s], -s))
  if len(steps) < choice.k:
    kept = ("checkpoints" if choice.how == "last" else
            "checkpoints with a validation loss (metrics.jsonl)")
    raise workdir_lib.WorkdirError(
        f"{choice.how}:{choice.k} needs {choice.k} checkpoints; the run has {len(steps)} "
        f"{kept}: train with a larger train.keep_checkpoints (and train.eval_every = "
        "train.checkpoint_every for best:K), or average fewer")
  return sorted(steps[:choice.k], reverse=True)


def chosen_steps(workdir: str, choice: Choice) -> list[int]:
  """The steps of the workdir's checkpoints that ``choice`` names, newest first."""
  ckpt_dir = os.path.join(workdir, run_record.CHECKPOINTS)
  saved = [int(n) for n in os.listdir(ckpt_dir) if n.isdigit()] if os.path.isdir(
      ckpt_dir) else []
  if not saved:
    raise FileNotFoundError(f"no checkpoint in {ckpt_dir}: train first (--mode=train)")
  return select_steps(saved, validation_losses(workdir), choice)


def mean_tree(trees: Iterable[Any]) -> Any:
  """The leafwise mean of trees of the same structure (float leaves: parameters).

  A running mean, m_k = m_{k-1} + (x_k - m_{k-1}) / k: the trees can come one at a time (a
  generator reading checkpoints), and the mean of identical trees is that tree exactly (a sum
  then a division can round).
  """
  mean = None
  for k, tree in enumerate(trees, 1):
    mean = tree if mean is None else jax.tree.map(
        lambda m, x, k=k: m + (x - m) / jnp.asarray(k, m.dtype), mean, tree)
  if mean is None:
    raise ValueError("mean_tree needs at least one tree")
  return mean


def restore_average(workdir: str, steps: list[int], target: TrainState) -> TrainState:
  """The state whose parameters are the mean of the checkpoints at ``steps`` (newest first:
  ``chosen_steps``), the rest the newest one's. Reads the checkpoints one at a time and moves
  or writes nothing (``checkpointing.read_steps``)."""
  newest = {}

  def params():
    for _, state in checkpointing.read_steps(os.path.join(workdir, run_record.CHECKPOINTS),
                                             steps, target):
      newest.setdefault("state", state)
      yield state.params

  averaged = mean_tree(params())
  return newest["state"].replace(params=averaged)


def check_new_folder(out: str, source: str) -> None:
  """``out`` can become a new workdir: not there yet (or an empty folder), not ``source`` nor
  inside its checkpoints; WorkdirError (one line) otherwise: nothing is ever written over."""
  if os.path.realpath(out) == os.path.realpath(source):
    raise workdir_lib.WorkdirError(f"--out {out!r} is --workdir: name a new folder")
  if os.path.realpath(out).startswith(
      os.path.realpath(os.path.join(source, run_record.CHECKPOINTS))):
    raise workdir_lib.WorkdirError(f"--out {out!r} is inside the run's checkpoints: name a "
                                   "folder of its own")
  if os.path.lexists(out) and not (os.path.isdir(out) and not os.listdir(out)):
    raise workdir_lib.WorkdirError(f"--out {out!r} already exists: name a new folder (nothing "
                                   "is written over)")
  if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
    raise workdir_lib.WorkdirError(f"--out {out!r}: its parent folder does not exist")


def write_averaged_workdir(source: str, out: str, config: ml_collections.ConfigDict,
                           state: TrainState, steps: list[int], choice: Choice) -> None:
  """A new workdir ``out`` that eval and decode use as any run's: the source's config.json,
  vocab.json and run.json, one checkpoint (at the newest averaged step) holding ``state``,
  and averaged.json (source, choice, steps, their validation losses). Written in a temporary
  folder beside ``out`` and renamed into place, so ``out`` is whole or absent."""
  check_new_folder(out, source)
  parent = os.path.dirname(os.path.abspath(out))
  tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(out))}.tmp-{os.getpid()}")
  os.mkdir(tmp)  # as any new folder (the umask's mode); FileExistsError: never written over
  try:
    for name in RUN_FILES:
      if os.path.isfile(os.path.join(source, name)):
        shutil.copy2(os.path.join(source, name), os.path.join(tmp, name))
    ckpt = workdir_lib.checkpointer(tmp, config)
    try:
      # No validation metric ranks it: the only checkpoint, best and latest alike.
      with checkpointing.without_logs("Requested `tracked_metric`"):
        ckpt.save(steps[0], state)
    finally:
      ckpt.close()
    losses = validation_losses(source)
    workdir_lib.write_json(os.path.join(tmp, run_record.AVERAGED), {
        "source": os.path.abspath(source), "how": choice.how, "k": choice.k, "steps": steps,
        "valid_loss": {str(s): losses.get(s) for s in steps}})
    os.replace(tmp, out)  # an empty folder named --out is replaced too
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
