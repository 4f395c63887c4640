"""Decode and evaluation outputs in standard formats, one line per sentence.

Alignments (``--alignments=FILE`` in decode mode) are in Pharaoh format, as fast_align and
OpenNMT write them: one line per input line, space-separated links ``i-j`` with ``i`` the
0-based source token index and ``j`` the 0-based output token index; each output token
(EOS excluded) is linked to the source position of its largest decoding attention weight
(the first of equals). Tokens are the task's (characters for the date task). An empty input
line, or an empty output, gives an empty line, so the file has as many lines as the input.

Scored hypotheses (``--output_format=jsonl`` on stdout, or ``--scores=FILE``; ``--nbest=N``):
JSON Lines, one object per input line, ``{"source": the input line, "hypotheses": [{"text",
"score", "log_prob", "alignment"}...]}``, best first (up to N; ``alignment``, the Pharaoh line,
with ``--alignments``); an empty input line has no hypotheses, and a line that failed (too
long, not UTF-8) none and an ``error``.

Attention weights (``--alignment_weights=FILE``) are JSON Lines, one object per input line:
``{"source": [src_len tokens], "target": [out_len tokens], "weights": [out_len][src_len]}``,
rows the output tokens (EOS excluded) as in the alignment file.

Evaluation examples (``DIR/eval_{split}_examples.jsonl`` in eval mode): one object per example
with ``source``, ``reference``, ``hypothesis`` (text), ``score`` (the decoder's ranking score:
the sum of token log-probabilities for greedy decoding, length- and coverage-penalized for
beam search), ``log_prob`` (the sum of token log-probabilities), ``exact_match``, and
``sentence_bleu`` (text tasks) and ``alignment_error_rate`` (tasks that know the true alignment;
of the teacher-forced attention, as the corpus metric) where they apply.

Test outcomes (``WORKDIR/test_outcomes.jsonl``, or ``WORKDIR/seed_<k>/`` per seed of a
multi-seed run, written with the final test metrics): one object per test sentence, in test-set
order: ``index``, ``src_length``, ``tgt_length``, ``length_bucket`` (its label in the summary's
``*_by_length``), ``exact_match`` (0 or 1), ``first_error`` (the 1-based output position where
the decoding first differs from the reference, null when exact) and ``forced_correct`` (per
target position, EOS last: 1 where the teacher-forced argmax is the reference token;
``attnlab.position_metrics``), and the sufficient statistics of the corpus
metrics: ``bleu_stats`` (text tasks; sacrebleu's [hyp_len, ref_len, matching 1..4-grams,
total 1..4-grams], ``metrics.bleu_statistics``) and ``alignment_counts`` (tasks that know the
true alignment; [|A∩S|, |A∩P|, |A|, |S|], ``metrics.alignment_counts``). Corpus BLEU and AER of
any subset of sentences are functions of their summed statistics: ``attnlab.intervals``
bootstraps them, ``experiments.report`` pools seeds and compares runs with them. Text tasks
also keep the ``hypothesis``, the decoded output as text: for corpora detokenized, so that
sacrebleu on these lines against the raw test references gives ``detokenized_bleu`` (the
references stay with the data, which the repository does not copy).

All JSON is strict: non-finite floats are ``null`` (``attnlab.run_record.dumps``); whole files
are written through the run record (``attnlab.run_record``), which names them.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from attnlab import metrics as metrics_lib
from attnlab import run_record

WEIGHT_DECIMALS = 6  # attention weights are float32: 6 decimals keep their precision


@dataclasses.dataclass(frozen=True)
class Translation:
  """One decoded input line.

  Attributes:
    text: the output line (empty for an empty input line).
    source: [src_len] source tokens as the model saw them (after truncation).
    target: [out_len] output tokens, EOS excluded.
    attention: [out_len, src_len] decoding attention of each output token.
    score: the decoder's ranking score; log_prob: the sum of token log-probabilities
      (both None for an empty input line).
    line: the input line as read.
    alternatives: the next best hypotheses (``--nbest``), best first, as Translations.
    error: why the line could not be decoded (its output is then empty), None otherwise.
  """

  text: str
  source: tuple[str, ...] = ()
  target: tuple[str, ...] = ()
  attention: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.float32))
  score: float | None = None
  log_prob: float | None = None
  line: str = ""
  alternatives: tuple[Translation, ...] = ()
  error: str | None = None


def alignment_links(attention) -> list[tuple[int, int]]:
  """Hard alignment of an attention matrix: [out_len, src_len] -> [(src, out)] links.

  Each output position ``j`` (a row) links to ``argmax_i attention[j, i]`` (the first of
  equals); links come in output order. An empty matrix gives no links.
  """
  attention = np.asarray(attention)
  if attention.ndim != 2:
    raise ValueError(f"attention must be [out_len, src_len], got shape {attention.shape}")
  if attention.shape[0] == 0:
    return []
  if attention.shape[1] == 0:
    raise ValueError(f"{attention.shape[0]} output tokens cannot align to an empty source")
  return [(int(i), j) for j, i in enumerate(np.argmax(attention, axis=1))]


def pharaoh(links: Sequence[tuple[int, int]]) -> str:
  """Links [(src, out)] as one Pharaoh line: ``"0-0 2-1 1-2"``."""
  return " ".join(f"{i}-{j}" for i, j in links)


def weights_record(translation: Translation) -> dict:
  """The ``--alignment_weights`` JSON object of one translation (module doc)."""
  weights = np.round(np.asarray(translation.attention, np.float64), WEIGHT_DECIMALS)
  return {"source": list(translation.source), "target": list(translation.target),
          "weights": weights.tolist()}


def scored_record(translation: Translation, with_alignment: bool = False) -> dict:
  """The ``--scores`` / ``--output_format=jsonl`` JSON object of one input line (module doc)."""
  hypotheses = []
  for h in (translation, *translation.alternatives) if translation.source else ():
    hypothesis = {"text": h.text, "score": h.score, "log_prob": h.log_prob}
    if with_alignment:
      hypothesis["alignment"] = pharaoh(alignment_links(h.attention))
    hypotheses.append(hypothesis)
  row: dict[str, Any] = {"source": translation.line, "hypotheses": hypotheses}
  if translation.error:
    row["error"] = translation.error
  return row


def is_regular_file(stream: IO) -> bool:
  """Whether ``stream`` reads a regular file (not a pipe or terminal): its lines are all
  there already, so decoding may batch them without delaying any output."""
  try:
    return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
  except (AttributeError, OSError, ValueError):  # no file descriptor (e.g. io.StringIO)
    return False


class DecodeWriter:
  """Writes each translation as it comes: its text (or, ``jsonl``, its scored hypotheses) to
  ``out``, its Pharaoh alignment, its weights and its scored hypotheses to the optional files,
  every one flushed at once (a Unix filter).

  Raises OSError when a file cannot be opened.
  """

  def __init__(self, out: IO[str], alignments: str | None = None,
               alignment_weights: str | None = None, scores: str | None = None,
               jsonl: bool = False):
    self.out = out
    self.files = []
    self.jsonl = jsonl
    self.alignments = self._open(alignments)
    self.weights = self._open(alignment_weights)
    self.scores = self._open(scores)

  def _open(self, path: str | None):
    if not path:
      return None
    f = open(path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    self.files.append(f)
    return f

  def write(self, translation: Translation) -> None:
    if self.alignments is not None:
      self.alignments.write(pharaoh(alignment_links(translation.attention)) + "\n")
      self.alignments.flush()
    if self.weights is not None:
      self.weights.write(run_record.dumps(weights_record(translation)) + "\n")
      self.weights.flush()
    scored = None
    if self.scores is not None or self.jsonl:
      scored = run_record.dumps(scored_record(translation, self.alignments is not None))
    if self.scores is not None:
      self.scores.write(scored + "\n")
      self.scores.flush()
    self.out.write((scored if self.jsonl else translation.text) + "\n")
    self.out.flush()

  def close(self) -> None:
    for f in self.files:
      f.close()

  def __enter__(self) -> DecodeWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def example_row(record: dict, source_text: Callable[[Sequence[str]], str],
                target_text: Callable[[Sequence[str]], str], prediction: Sequence[str],
                with_alignment: bool) -> dict:
  """The ``eval_{split}_examples.jsonl`` object of one ``training.evaluate`` record.

  Args:
    record: an evaluate record: ``example``, ``score``, ``log_prob``, ``exact_match``,
      ``sentence_bleu`` (text tasks), ``forced_attention`` [tgt_len + 1, src_len].
    source_text, target_text: tokens -> text (the task's ``src_tokenizer.detokenize`` and
      ``tgt_tokenizer.detokenize``).
    prediction: the predicted tokens, EOS excluded.
    with_alignment: add ``alignment_error_rate`` (the task knows the true alignment and the
      model attends).
  """
  example = record["example"]
  row: dict[str, Any] = {
      "source": source_text(example.src), "reference": target_text(example.tgt),
      "hypothesis": target_text(prediction),
      "score": record["score"], "log_prob": record["log_prob"],
      "exact_match": bool(record["exact_match"]),
  }
  if "sentence_bleu" in record:
    row["sentence_bleu"] = record["sentence_bleu"]
  if with_alignment:  # the rows of real target tokens only, as the corpus metric
    row["alignment_error_rate"] = metrics_lib.alignment_error_rate(
        record["forced_attention"], example.alignment, tgt_length=len(example.tgt))
  return row


def outcome_row(record: dict, index: int) -> dict:
  """The ``test_outcomes.jsonl`` object of one ``training.evaluate`` record (module doc):
  what `attnlab.intervals` needs to resample the test set without decoding again."""
  example = record["example"]
  row: dict[str, Any] = {
      "index": index, "src_length": len(example.src), "tgt_length": len(example.tgt),
      "length_bucket": record["length_bucket"], "exact_match": int(record["exact_match"]),
  }
  if "first_error" in record:  # where the output first goes wrong (position_metrics)
    row["first_error"] = record["first_error"]
    row["forced_correct"] = [int(x) for x in record["forced_correct"]]
  for key in ("bleu_stats", "alignment_counts"):
    if key in record:
      row[key] = [int(x) for x in record[key]]
  if "hypothesis" in record:
    row["hypothesis"] = record["hypothesis"]
  return row


write_jsonl = run_record.write_jsonl  # one strict-JSON object per line, atomically
