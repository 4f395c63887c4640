"""The workdir as a resource: checks, the writer's lock, checkpoints, the vocabulary.

What the workdir holds (config.json, vocab.json, run.json, checkpoints/, metrics.jsonl,
summary.json, seed_<k>/, ...) and how its files are read and written (strict JSON,
atomically) is the run record's, ``attnlab.run_record``; this module adds what needs the running
process: JAX, the config and the task. Besides those files, ``tensorboard/`` holds TensorBoard
events and ``attention_*.png`` attention heatmaps of test examples.

* ``check(path, create)``: the workdir is a directory that exists (eval, decode) or can be
  created and written (train); a clear ``WorkdirError`` otherwise, never a traceback.
* ``lock(path)``: an exclusive, advisory lock on ``path/.lock`` (``fcntl.flock``) for the
  processes that write a run (train, eval); a second one gets ``WorkdirError`` naming the
  holder's PID and host, which the holder records in the file while it holds the lock
  (``run_record.read_holder``: what a sweep reads to tell a locked workdir from a failure). The
  kernel drops the lock when its holder dies, even by ``kill -9``.
* ``check_same_model(config, path)``: the config describes the model whose checkpoints the
  workdir holds (its ``config.json``); differing keys are named.
* ``read_vocab(path)``: the run's vocab.json, refused when it no longer matches the checksum
  recorded when it was written (an edited or damaged file would map ids to other tokens):
  the one check eval and decode share (eval also compares it with the config's data).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from typing import Iterator

import jax
import ml_collections

from attnlab import checkpointing, run_config, run_record
from attnlab.data import TaskData

# Config keys that decide the shapes of a run's checkpoints: a differing value means the
# checkpoints cannot be this config's model (train.*, eval.* and data sizes may change).
MODEL_KEYS = ("num_seeds", "data.task", "model")


class WorkdirError(run_record.RecordError):
  """The workdir cannot be used as asked (one line, for the command line's exit status 2)."""


def check(path: str, create: bool) -> None:
  """Raises WorkdirError unless ``path`` is a writable directory (made when ``create``) or,
  without ``create``, an existing directory (nothing is created)."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"--workdir {path!r} is a file, not a directory")
  if not create:
    if not os.path.isdir(path):
      raise WorkdirError(f"--workdir {path!r} does not exist: train there first (--mode=train)")
    return
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:  # a parent is a file, or not writable
    raise WorkdirError(f"cannot create --workdir {path!r}: {e.strerror}") from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise WorkdirError(f"--workdir {path!r} is not writable")


@contextlib.contextmanager
def lock(path: str) -> Iterator[None]:
  """Holds an exclusive lock on the workdir ``path`` (which must exist) while inside."""
  lock_path = os.path.join(path, run_record.LOCK)
  fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      held_by = run_record.describe_holder(run_record.read_holder(path))
      raise WorkdirError(f"--workdir {path!r} is in use by {held_by}: wait for it "
                         "to finish or stop it, or use another workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(run_record.holder()).encode())
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # released: the file records no holder
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
  return flat


def differing_model_keys(config: dict, saved: dict) -> list[str]:
  """The ``MODEL_KEYS`` entries (flattened, e.g. ``model.hidden_dim``) whose values differ
  between two config dicts. A key that only one of them has (a plug-in's option) is not
  compared."""
  new, old = _flatten(config), _flatten(saved)
  keys = sorted(k for k in set(new) & set(old)
                if any(k == m or k.startswith(m + ".") for m in MODEL_KEYS))
  return [k for k in keys if new[k] != old[k]]


def check_same_model(config: ml_collections.ConfigDict, path: str) -> None:
  """Raises WorkdirError when ``path/config.json`` (with today's keys:
  ``run_config.upgrade_config``) describes another model than ``config`` (nothing to compare
  when the workdir has no config.json yet)."""
  saved_path = os.path.join(path, run_record.CONFIG)
  if not os.path.isfile(saved_path):
    return
  try:
    saved = run_config.upgrade_config(read_json(saved_path))
  except run_record.RecordError as e:
    raise WorkdirError(str(e)) from None
  current = json.loads(json.dumps(config.to_dict(), default=float))  # as config.json holds it
  differing = differing_model_keys(current, saved)
  if differing:
    old, new = _flatten(saved), _flatten(current)
    shown = ", ".join(f"{k} ({old[k]!r} in the workdir, {new[k]!r} now)"
                      for k in differing[:4])
    more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
    raise WorkdirError(f"--workdir {path!r} holds a run of another model: {shown}{more}; "
                       "use the run's own config or another workdir")


write_json = run_record.write_json  # strict JSON, atomically


def read_json(path: str):
  """A JSON file of the workdir; WorkdirError (one line) when it is missing or damaged."""
  try:
    return run_record.read_json(path)
  except run_record.RecordError as e:
    raise WorkdirError(str(e)) from None


def checkpointer(path: str, config: ml_collections.ConfigDict) -> checkpointing.Checkpointer:
  """The checkpoints of the workdir ``path`` (``path/checkpoints``), kept and ranked as
  ``config.train`` says."""
  return checkpointing.Checkpointer(os.path.join(path, run_record.CHECKPOINTS),
                                    keep=config.train.keep_checkpoints,
                                    best_metric=config.train.best_metric,
                                    best_mode=config.train.best_mode)


def writer_lock(path: str):
  """The workdir's exclusive lock, taken by process 0 (the one that writes outputs)."""
  return lock(path) if jax.process_index() == 0 else contextlib.nullcontext()


def finished_summary(config: ml_collections.ConfigDict, path: str) -> dict | None:
  """The summary of a run in ``path`` that already trained ``config.train.num_steps`` steps
  (or stopped early: ``attnlab.training.early_stopping``) and was evaluated (its
  summary.json), else None. Reads no checkpoint."""
  checkpoints = os.path.join(path, run_record.CHECKPOINTS)
  steps = [int(n) for n in os.listdir(checkpoints) if n.isdigit()] if os.path.isdir(
      checkpoints) else []
  if not steps or not run_record.is_finished(path):
    return None
  summary = run_record.read_json_or_none(os.path.join(path, run_record.SUMMARY))
  if not isinstance(summary, dict):
    return None  # a damaged summary: evaluate again
  step = summary.get("step", -1)
  if summary.get("stopped_early"):  # the test saw the best checkpoint, before the last one
    return summary
  return summary if step >= config.train.num_steps <= max(steps) else None


VOCAB_CHECKSUM = "sha256"  # the vocab.json key of the checksum of the rest of the file


def vocab_checksum(vocab: dict) -> str:
  """SHA-256 (hex) of a vocab.json object without its checksum, as JSON with sorted keys."""
  content = {k: v for k, v in vocab.items() if k != VOCAB_CHECKSUM}
  text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_vocab(path: str, task: TaskData) -> None:
  """``path/vocab.json``: the task's vocabularies and tokenizers, and their checksum."""
  vocab = {"src": list(task.src_vocab.tokens), "tgt": list(task.tgt_vocab.tokens),
           "src_tokenizer": task.src_tokenizer.to_dict(),
           "tgt_tokenizer": task.tgt_tokenizer.to_dict()}
  vocab = json.loads(run_record.dumps(vocab))  # as it will be read back
  write_json(os.path.join(path, run_record.VOCAB), {**vocab, VOCAB_CHECKSUM: vocab_checksum(vocab)})


def read_vocab(path: str) -> dict:
  """``path/vocab.json``; WorkdirError when it is missing, damaged, or differs from the
  checksum recorded with it (a workdir written before checksums were recorded: unchecked)."""
  vocab_path = os.path.join(path, run_record.VOCAB)
  vocab = read_json(vocab_path)
  if not isinstance(vocab, dict) or not {"src", "tgt"} <= set(vocab):
    raise WorkdirError(f"{vocab_path} is damaged: it holds no src and tgt vocabularies")
  recorded = vocab.get(VOCAB_CHECKSUM)
  if recorded is not None and recorded != vocab_checksum(vocab):
    raise WorkdirError(f"{vocab_path} was changed after training (its content no longer "
                       "matches the checksum recorded with it): the model's ids would map to "
                       "other tokens; restore the run's own vocab.json")
  return vocab


def check_same_vocab(task: TaskData, path: str) -> None:
  """The vocabularies built from the config are the run's (its vocab.json, checked by
  ``read_vocab``): the same ids."""
  if not os.path.isfile(os.path.join(path, run_record.VOCAB)):
    return
  saved = read_vocab(path)
  for side, vocab in (("src", task.src_vocab), ("tgt", task.tgt_vocab)):
    if list(vocab.tokens) != saved.get(side):
      raise WorkdirError(
          f"the config's data builds another {side} vocabulary ({len(vocab.tokens)} tokens) "
          f"than the run in {path!r} was trained with ({len(saved.get(side) or [])}): "
          "use the run's own data config")
