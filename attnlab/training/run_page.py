"""What a finished run writes for people to look at: attention examples and ``report.html``.

``write_run_page`` (called once by the training loop as a run finishes, on process 0) writes,
per model directory (the workdir, or ``seed_<k>/`` of a multi-seed run),
``attention_examples.json``: a fixed selection of test examples with their tokens and
attention, then the run's page ``WORKDIR/report.html`` (``attnlab.atlas.run``, from the
workdir's files alone).

The selection has two parts:

* **spread**: up to ``NUM_SPREAD`` examples spread over source lengths, the longest included.
  It depends on the test examples alone (never on the model), so every trial of a sweep (which
  share their test set) saves the same indices, and ``experiments.atlas`` shows one sentence
  under every variant.
* **worst**: the ``NUM_WORST`` lowest-scoring examples of this model (sentence BLEU for text
  tasks, else the fraction of reference positions predicted right; ties: lower index first).

attention_examples.json::

    {"task", "quality": "sentence BLEU" | "token accuracy", "has_attention", "has_alignment",
     "num_examples": size of the evaluated test set,
     "examples": [{"index", "spread", "worst", "src", "target", "prediction" (EOS included),
                   "attention": [len(prediction), len(src)] decoding attention (null: none),
                   "forced_attention": [len(target) + 1, len(src)] teacher-forced (rows: the
                   reference's words, then EOS), "gold": [[tgt, src], ...] or null,
                   "quality", "exact_match", "log_prob", optional "sentence_bleu" and
                   "alignment_error_rate" (of the teacher-forced attention, as the metric)},
                  ...]}   (ordered by source length, then index)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from attnlab import metrics as metrics_lib, run_record, summaries
from attnlab.data import TaskData
from attnlab.data.tasks import Example
from attnlab.training.evaluation import prediction_text, prediction_tokens

NUM_SPREAD = 10
NUM_WORST = 6
EXAMPLES_FILE = run_record.EXAMPLES


def spread_indices(examples: Sequence[Example], count: int = NUM_SPREAD) -> list[int]:
  """Up to ``count`` indices of ``examples`` spread over source lengths, ordered by length.

  With at least ``count`` distinct lengths: the first example of each of ``count`` lengths
  evenly spaced from the shortest to the longest (both included). With fewer: the first
  example of every length, then the second of every length, ... A pure function of the
  examples' lengths and order.
  """
  by_length: dict[int, list[int]] = {}
  for i, example in enumerate(examples):
    by_length.setdefault(len(example.src), []).append(i)
  lengths = sorted(by_length)
  if not lengths or count <= 0:
    return []
  if len(lengths) >= count:
    picks = np.linspace(0, len(lengths) - 1, count).round().astype(int)
    chosen = [by_length[lengths[k]][0] for k in dict.fromkeys(picks.tolist())]
  else:
    chosen, rank = [], 0
    while len(chosen) < min(count, len(examples)):
      chosen += [by_length[n][rank] for n in lengths if rank < len(by_length[n])]
      rank += 1
    chosen = chosen[:count]
  return sorted(chosen, key=lambda i: (len(examples[i].src), i))


def quality(record: dict, task: TaskData) -> float:
  """How good one prediction is, in [0, 1]: sentence BLEU / 100 where the record has it (text
  tasks), else the fraction of reference positions whose token the prediction has there."""
  if "sentence_bleu" in record:
    return record["sentence_bleu"] / 100.0
  predicted, reference = prediction_text(record, task), list(record["example"].tgt)
  right = sum(p == r for p, r in zip(predicted, reference))
  return right / max(len(reference), len(predicted), 1)


def worst_indices(records: Sequence[dict], task: TaskData, count: int = NUM_WORST) -> list[int]:
  """The ``count`` lowest-``quality`` records (ties: lower index first)."""
  scored = sorted(range(len(records)), key=lambda i: (quality(records[i], task), i))
  return scored[:count]


def _matrix(weights) -> list[list[float]]:
  return np.round(np.asarray(weights, float), 3).tolist()


def example_json(index: int, record: dict, task: TaskData, has_attention: bool) -> dict:
  """One record as attention_examples.json holds it (module doc)."""
  example = record["example"]
  entry = {"index": index, "src": list(example.src), "target": list(example.tgt),
           "prediction": prediction_tokens(record, task),
           "attention": _matrix(record["decode_attention"]) if has_attention else None,
           "forced_attention": _matrix(record["forced_attention"]) if has_attention else None,
           "gold": [list(link) for link in example.alignment] if example.alignment else None,
           "quality": round(quality(record, task), 4),
           "exact_match": bool(record.get("exact_match", False)),
           "log_prob": round(float(record["log_prob"]), 4)}
  if "sentence_bleu" in record:
    entry["sentence_bleu"] = round(record["sentence_bleu"], 2)
  if has_attention and example.alignment:
    entry["alignment_error_rate"] = round(metrics_lib.alignment_error_rate(
        record["forced_attention"], example.alignment), 4)
  return entry


def attention_examples(records: Sequence[dict], task: TaskData) -> dict:
  """The contents of attention_examples.json (module doc) for ``evaluate``'s test records."""
  has_attention = any(np.any(np.asarray(r["decode_attention"])) for r in records)
  spread = set(spread_indices([r["example"] for r in records]))
  worst = set(worst_indices(records, task))
  chosen = sorted(spread | worst, key=lambda i: (len(records[i]["example"].src), i))
  examples = []
  for i in chosen:
    entry = example_json(i, records[i], task, has_attention)
    examples.append({"spread": i in spread, "worst": i in worst, **entry})
  return {"task": task.name, "quality": "sentence BLEU" if task.is_text else "token accuracy",
          "has_attention": bool(has_attention), "has_alignment": bool(task.has_alignment),
          "num_examples": len(records), "examples": examples}


def write_run_page(workdir: str, task: TaskData, dirs: Sequence[str],
                   records_per_model: Sequence[Sequence[dict]]) -> str | None:
  """Writes attention_examples.json into each model's directory, then WORKDIR/report.html.

  A page that cannot be written (a broken plotting install, say) is a warning, not a failed
  run: the run's results are already in summary.json. Returns the page's path, or None.
  """
  for directory, records in zip(dirs, records_per_model):
    if records:  # compact strict JSON, one example a line, written atomically
      contents = attention_examples(records, task)
      examples = contents.pop("examples")
      text = summaries.dumps(contents)[:-1] + ', "examples": [\n' + ",\n".join(
          summaries.dumps(e, separators=(",", ":")) for e in examples) + "\n]}\n"
      path = os.path.join(directory, EXAMPLES_FILE)
      with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
      os.replace(path + ".tmp", path)
  try:
    from attnlab.atlas import run  # altair: imported only when a run finishes
    return str(run.write_run_page(workdir))
  except Exception as e:  # noqa: BLE001  the page is a view of files already written
    logging.warning("report.html not written: %s: %s", type(e).__name__, e)
    return None
