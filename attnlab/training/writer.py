"""What a run writes while it trains: ``MetricWriter`` (metrics.jsonl and TensorBoard),
written by process 0 only, cut back to the checkpoint when a run resumes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Sequence

import jax
import ml_collections

from attnlab import export, plots, run_record, summaries
from attnlab.data import TaskData
from attnlab.training.evaluation import heatmap_parts, prediction_text, scalars

# The split of the test evaluations at fixed training steps (``eval.test_at_steps``).
TEST_AT_STEP = run_record.TEST_AT_STEP


class MetricWriter:
  """metrics.jsonl plus TensorBoard summaries, written by process 0 only.

  metrics.jsonl holds one strict-JSON object per ``write`` (non-finite floats as ``null``,
  ``summaries.dumps``). TensorBoard gets, under ``{split}/``: every scalar metric; the
  per-source-length-bucket means (``exact_match_by_length/1-10``); for ``train``,
  ``steps_per_second`` (optimizer steps per wall-clock second since the previous train
  record, evaluation included; the first since the writer opened, so compilation included),
  which goes to metrics.jsonl too. Given ``evaluate``'s records and a ``task``: the first
  ``num_text_examples`` translations as a text table (``{split}/examples``); for ``test``, the
  first ``config.eval.num_heatmaps`` attention heatmaps as images (``test/attention/{i}``) and
  ``config``'s scalar and string fields as hparams (a vmapped seed's session with its own
  ``seed``), with no experiment summary, so TensorBoard's HParams dashboard builds one over
  every run under ``tensorboard --logdir ROOT`` and compares a sweep's trials on their scalars
  (``summaries.hparams_summaries``).
  With ``test`` records, ``test_outcomes.jsonl`` beside metrics.jsonl: one line per test
  sentence with its length and the sufficient statistics of its metrics
  (``attnlab.export.outcome_row``), from which ``experiments.report`` draws intervals; with
  ``test_at_step`` records (``eval.test_at_steps``), ``test_outcomes_step<step>.jsonl``.

  resume_step: records after this step (written by a run that died after its
  last checkpoint) are dropped, so a resumed run's file reads like an
  uninterrupted run's.
  """

  def __init__(self, workdir: str, resume_step: int = 0,
               config: ml_collections.ConfigDict | None = None, task: TaskData | None = None,
               num_text_examples: int = 4):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    self.hparams = None if config is None else summaries.session_hparams(
        summaries.flatten_hparams(config.to_dict()), workdir)
    self.num_heatmaps = 0 if config is None else config.eval.num_heatmaps
    self.task, self.num_text_examples = task, num_text_examples
    self.rate = summaries.StepRate(resume_step, time.monotonic())
    self.directory = workdir
    from tensorboardX import SummaryWriter  # imported here: only process 0 writes
    path = os.path.join(workdir, run_record.METRICS)
    if os.path.exists(path):
      # Bytes, not text: a line that is not UTF-8 (torn mid-character, or garbled) is a line
      # step_of cannot read, dropped as a torn line is, never a UnicodeDecodeError.
      with open(path, "rb") as f:
        kept = [line for line in f if step_of(line) <= resume_step]
      with open(path + ".tmp", "wb") as f:
        f.writelines(kept)
      os.replace(path + ".tmp", path)
    self.jsonl = open(path, "a", encoding="utf-8")
    # purge_step: TensorBoard hides the events a resumed run writes again, as metrics.jsonl
    # drops its records after the checkpoint.
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                            purge_step=resume_step + 1 if resume_step else None)

  def write(self, step: int, split: str, metrics: dict,
            records: Sequence[dict] | None = None) -> None:
    """Writes ``metrics`` of ``split`` at ``step``; ``records``: ``evaluate``'s, for the
    example translations and (``test``) the attention heatmaps."""
    if not self.enabled:
      return
    if split == "train":
      rate = self.rate.rate(step, time.monotonic())
      metrics = metrics if rate is None else {**metrics, "steps_per_second": rate}
    record = {"step": step, "split": split, **metrics}
    self.jsonl.write(summaries.dumps(record) + "\n")
    self.jsonl.flush()
    values = scalars(metrics)
    for key, value in {**values, **summaries.bucket_scalars(metrics)}.items():
      self.tb.add_scalar(f"{split}/{key}", value, step)
    if records and self.task is not None:
      self._write_examples(step, split, records)
    if split in ("test", TEST_AT_STEP) and records:
      name = run_record.outcomes_file(None if split == "test" else run_record.step_name(step))
      export.write_jsonl(os.path.join(self.directory, name),
                         [export.outcome_row(r, i) for i, r in enumerate(records)])
    if split == "test" and self.hparams is not None:
      for summary in summaries.hparams_summaries(self.hparams):
        self.tb.file_writer.add_summary(summary, step)
    self.tb.flush()

  def _write_examples(self, step: int, split: str, records: Sequence[dict]) -> None:
    task = self.task
    source, target = task.src_tokenizer, task.tgt_tokenizer
    rows = [{"source": source.detokenize(r["example"].src),
             "reference": target.detokenize(r["example"].tgt),
             "prediction": target.detokenize(prediction_text(r, task))}
            for r in records[:self.num_text_examples]]
    self.tb.add_text(f"{split}/examples", summaries.examples_markdown(rows), step)
    if split == "test":
      for i, r in enumerate(records[:self.num_heatmaps]):
        weights, src, out, title = heatmap_parts(r, task)
        image = summaries.figure_to_array(plots.attention_figure(weights, src, out, title))
        self.tb.add_image(f"test/attention/{i}", image, step, dataformats="HWC")

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tb.close()


def step_of(line: str | bytes) -> int:
  """The step of a metrics.jsonl line, for dropping what a resumed run writes again: a line
  that is not a JSON record (torn by a crash mid-write, or bytes that are not UTF-8) and the
  final test record (written once training is done, so a run that stopped before its summary
  evaluates again) count as later than any step."""
  try:
    # UTF-8 alone (json.loads would guess UTF-16 from some bytes); UnicodeDecodeError is a
    # ValueError.
    record = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    return sys.maxsize if record.get("split") == "test" else int(record["step"])
  except (ValueError, KeyError, TypeError, AttributeError):
    return sys.maxsize

