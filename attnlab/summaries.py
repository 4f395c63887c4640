"""What a run writes for people and tools: strict JSON, and TensorBoard summaries.

JSON: every JSON file a run writes is strict JSON; ``dumps`` and ``dump`` are the run
record's (``attnlab.run_record``, which owns the workdir's files), re-exported here for the
writers that stream JSON lines (metrics.jsonl, decode outputs).

TensorBoard: pure helpers the run's ``MetricWriter`` (``attnlab.training.writer``) feeds to
tensorboardX: the config as hparams (`flatten_hparams`, `session_hparams`,
`hparams_summaries`), per-length-bucket scalars (`bucket_scalars`), example translations as a
markdown table (`examples_markdown`), figures as image arrays (`figure_to_array`) and
optimizer steps per second (`StepRate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from attnlab import run_record

BY_LENGTH = "_by_length"  # suffix of evaluate()'s per-source-length-bucket metrics


# ---------------------------------------------------------------- JSON

# Strict JSON is the run record's (attnlab.run_record); re-exported for the TensorBoard writers.
dumps, dump = run_record.dumps, run_record.dump


# ---------------------------------------------------------------- hparams

HParam = bool | int | float | str


def flatten_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, HParam]:
  """The scalar and string leaves of a nested config dict, keyed by dotted path.

  ``{"model": {"attention": "dot", "hidden_dim": 32}, "seed": 0}`` ->
  ``{"model.attention": "dot", "model.hidden_dim": 32, "seed": 0}``. Lists, tuples and
  None are left out (TensorBoard's hparams are bools, numbers and strings).
  """
  flat = {}
  for key, value in config.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(flatten_hparams(value, name + "."))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
  return flat


def hparams_summaries(hparams: Mapping[str, HParam]) -> list:
  """TensorBoard's HParams-plugin summaries of one run: [session start, session end].

  Args:
    hparams: {name: value} of this run (`flatten_hparams`): strings and bools as such, ints
      and floats as numbers (``google.protobuf.Value`` has one number type, a double, and the
      plugin's one numeric type is ``DATA_TYPE_FLOAT64``: an int is exact, as ``4``, not
      ``4.000001``).

  Returns:
    ``Summary`` protos (tensorboardX's) to add to the run's own event file. No experiment
    summary: given none, TensorBoard builds the experiment from every session under
    ``--logdir`` (each hparam's type, domain and whether it ``differs`` across the sessions;
    the sessions' scalars as metrics), so a sweep's trials compare in one table. An
    experiment summary written by each run (as ``tensorboardX.summary.hparams`` does) holds
    that run's names only, with no domain and ``differs`` false, and TensorBoard takes the
    first one it finds for the whole logdir.
  """
  # only process 0 writes: tensorboardX is imported there alone
  from tensorboardX.proto import api_pb2, plugin_hparams_pb2, summary_pb2
  start = plugin_hparams_pb2.SessionStartInfo()
  for name, value in hparams.items():
    if isinstance(value, str):
      start.hparams[name].string_value = value
    elif isinstance(value, bool):  # before int: a bool is an int
      start.hparams[name].bool_value = value
    else:
      start.hparams[name].number_value = value
  end = plugin_hparams_pb2.SessionEndInfo(status=api_pb2.Status.Value("STATUS_SUCCESS"))

  def summary(tag: str, data) -> summary_pb2.Summary:
    content = data.SerializeToString()
    plugin = summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams", content=content)
    metadata = summary_pb2.SummaryMetadata(plugin_data=plugin)
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, metadata=metadata)])

  return [summary("_hparams_/session_start_info",
                  plugin_hparams_pb2.HParamsPluginData(session_start_info=start, version=0)),
          summary("_hparams_/session_end_info",
                  plugin_hparams_pb2.HParamsPluginData(session_end_info=end, version=0))]


def session_hparams(hparams: Mapping[str, HParam], directory: str) -> dict[str, HParam]:
  """The hparams of the session written in ``directory``: ``hparams``, with ``seed`` the
  seed's own where ``directory`` is one seed's of a vmapped run (``seed_<k>``, ``seed <= k <
  seed + num_seeds``: the layout of ``attnlab.training.multiseed``), so each seed's session
  says which seed it is."""
  seed = run_record.seed_of_folder(directory)
  first, count = hparams.get("seed", 0), hparams.get("num_seeds", 1)
  if seed is not None and count > 1 and first <= seed < first + count:
    return {**hparams, "seed": seed}
  return dict(hparams)


# ---------------------------------------------------------------- scalars

def bucket_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
  """Per-length-bucket means as flat scalars.

  ``{"exact_match_by_length": {"1-10": {"mean": 0.9, ...}}}`` ->
  ``{"exact_match_by_length/1-10": 0.9}``, for every ``*_by_length`` entry of ``evaluate``.
  """
  out = {}
  for name, buckets in metrics.items():
    if name.endswith(BY_LENGTH) and isinstance(buckets, Mapping):
      for label, cell in buckets.items():
        out[f"{name}/{label}"] = float(cell["mean"])
  return out


class StepRate:
  """Optimizer steps per second between successive calls.

  ``StepRate(step0, t0)``; ``rate(step, t)`` -> (step - previous step) / (t - previous t),
  then ``(step, t)`` becomes the previous point. None when no time passed.
  """

  def __init__(self, step: int, time_s: float):
    self.step, self.time_s = step, time_s

  def rate(self, step: int, time_s: float) -> float | None:
    elapsed = time_s - self.time_s
    value = (step - self.step) / elapsed if elapsed > 0 else None
    self.step, self.time_s = step, time_s
    return value


# ---------------------------------------------------------------- text and images

def _cell(text: str) -> str:
  """Text safe inside a markdown table cell."""
  return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ") or " "


def examples_markdown(rows: Sequence[Mapping[str, str]]) -> str:
  """A markdown table (TensorBoard's text dashboard renders it) of example translations.

  Args:
    rows: [n] of {column: text}, e.g. {"source", "reference", "prediction"}; the first row's
      keys are the columns.
  """
  if not rows:
    return ""
  columns = list(rows[0])
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(str(row[c])) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def figure_to_array(fig: Figure) -> np.ndarray:
  """Renders a matplotlib Figure with Agg (no pyplot): [height, width, 3] uint8 RGB."""
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].copy()
