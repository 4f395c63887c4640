"""From a config to what training, evaluation and decoding run on: the task, its length
buckets, the model and the device mesh (``prepare``), a model's fresh state (``init_state``)
and its training batches (``train_batches``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections

from attnlab import parallel
from attnlab.config import ConfigError, build_model, validate, validate_task
from attnlab.data import TaskData, TrainBatches, build_task, make_buckets
from attnlab.data.batching import bucket_of, token_batch_rows
from attnlab.training.steps import TrainState, new_state


class DataError(ValueError):
  """The task's data cannot be built (a bad corpus file, impossible sizes)."""


@dataclasses.dataclass
class Prepared:
  """Everything built from a config before training: task, shapes, model, and the device
  mesh evaluation shards its batches over (None: the default device)."""

  task: TaskData
  buckets: tuple
  model: Any
  max_src_len: int
  max_decode_len: int
  mesh: jax.sharding.Mesh | None = None

  def shapes(self) -> dict:
    """What decoding needs besides the vocabularies (a workdir's run.json)."""
    return {"max_src_len": self.max_src_len, "max_decode_len": self.max_decode_len,
            "buckets": [list(b) for b in self.buckets]}


def prepare(config: ml_collections.ConfigDict) -> Prepared:
  """Validates the config, builds the task, the length buckets and the model."""
  validate(config)
  try:
    task = build_task(config.data)
  except (ValueError, OSError) as e:  # bad corpus: missing, empty, not UTF-8, lines without tabs
    raise DataError(f"config.data ({config.data.task}): {e}") from e
  validate_task(config, task.has_alignment, task.is_text)
  everything = task.train + task.valid + task.test
  boundaries = tuple(config.batching.bucket_boundaries) or None
  try:
    buckets = make_buckets(everything, config.batching.num_buckets,
                           round_to=config.batching.round_to, boundaries=boundaries,
                           tgt_quantile=config.batching.tgt_quantile)
  except ValueError as e:  # explicit boundaries that do not cover the longest source
    raise ConfigError("batching.bucket_boundaries", str(e)) from None
  _check_max_tokens(config, task, buckets)
  max_src_len = max(s for s, _ in buckets)
  max_decode_len = config.eval.max_decode_len or max(t for _, t in buckets)
  model = build_model(config, len(task.src_vocab), len(task.tgt_vocab), max_src_len)
  return Prepared(task=task, buckets=buckets, model=model, max_src_len=max_src_len,
                  max_decode_len=max_decode_len)


def _check_max_tokens(config: ml_collections.ConfigDict, task: TaskData, buckets) -> None:
  """A token budget must hold one row of every padded shape the training data falls in."""
  max_tokens = config.batching.max_tokens
  if not max_tokens:
    return
  used = sorted({bucket_of(len(e.src), buckets, len(e.tgt) + 1) for e in task.train})
  for b, rows in zip(used, token_batch_rows([buckets[b] for b in used], max_tokens)):
    if rows == 0:
      raise ConfigError("batching.max_tokens", f"must hold one training example of the padded "
                        f"shape (src_len, tgt_len) = {buckets[b]}: at least {max(buckets[b])}, "
                        f"got {max_tokens}")


def train_batches(config: ml_collections.ConfigDict, prepared: Prepared,
                  seed: int) -> TrainBatches:
  """The training batches of a run with ``seed``: ``batching.batch_size`` rows, or with
  ``batching.max_tokens`` the rows of each bucket that fit the budget, a multiple of the
  device count of ``prepared.mesh`` (each device gets whole rows).

  Raises:
    ConfigError: the budget holds fewer rows of a training bucket than there are devices.
  """
  task = prepared.task
  devices = prepared.mesh.size if prepared.mesh is not None else 1
  try:
    return TrainBatches(task.train, task.src_vocab, task.tgt_vocab, config.batching.batch_size,
                        prepared.buckets, seed, copy=config.model.copy,
                        max_tokens=config.batching.max_tokens, rows_multiple=devices)
  except ValueError as e:  # sizes were validated: only a budget short of the device count
    raise ConfigError("batching.max_tokens", f"{e} on {devices} device(s)") from None


def init_state(config: ml_collections.ConfigDict, prepared: Prepared) -> TrainState:
  """Fresh parameters (from ``config.seed``) and optimizer state of the prepared model."""
  return new_state(prepared.model, config.train, config.seed, *prepared.buckets[0])


def data_parallel_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The mesh of ``config.parallel`` (every device by default); the training batch must split
  evenly over it (ConfigError naming ``batching.batch_size`` otherwise)."""
  try:
    mesh = parallel.make_mesh(config.parallel.num_devices)
  except ValueError as e:
    raise ConfigError("parallel.num_devices", str(e)) from None
  if config.batching.max_tokens:
    return mesh  # token batches: train_batches rounds each bucket's rows to the device count
  try:
    parallel.check_divisible(config.batching.batch_size, mesh)
  except ValueError as e:
    raise ConfigError("batching.batch_size", str(e)) from None
  return mesh

