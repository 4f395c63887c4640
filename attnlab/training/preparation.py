"""From a config to what training, evaluation and decoding run on: the task, its length
buckets, the model and the device mesh (``prepare``), and a model's fresh state
(``init_state``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections

from attnlab import parallel
from attnlab.config import ConfigError, build_model, validate, validate_task
from attnlab.data import TaskData, build_task, make_buckets
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
  boundaries = tuple(config.batching.get("bucket_boundaries", ())) or None
  try:
    buckets = make_buckets(everything, config.batching.num_buckets,
                           round_to=config.batching.round_to, boundaries=boundaries)
  except ValueError as e:  # explicit boundaries that do not cover the longest source
    raise ConfigError("batching.bucket_boundaries", str(e)) from None
  max_src_len = max(s for s, _ in buckets)
  max_decode_len = config.eval.max_decode_len or max(t for _, t in buckets)
  model = build_model(config, len(task.src_vocab), len(task.tgt_vocab), max_src_len)
  return Prepared(task=task, buckets=buckets, model=model, max_src_len=max_src_len,
                  max_decode_len=max_decode_len)


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
  try:
    parallel.check_divisible(config.batching.batch_size, mesh)
  except ValueError as e:
    raise ConfigError("batching.batch_size", str(e)) from None
  return mesh

