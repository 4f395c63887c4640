"""Evaluation: batched greedy / beam decoding, ``evaluate`` (every metric, overall and per
source-length bucket, and one record per example), the text of records (log line,
heatmaps, the longest example), all shared by training, eval and decode.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from attnlab import (decoding, export, length_buckets, metrics as metrics_lib, parallel, plots,
                     position_metrics, run_record)
from attnlab.data import TaskData, eval_batches
from attnlab.data.tasks import Example
from attnlab.training.preparation import Prepared
from attnlab.training.steps import TrainState, eval_step


def decode_batch(model, params, batch: dict, max_len: int, beam_size: int = 1,
                 alpha: float = 0.6, coverage_penalty: float = 0.0) -> decoding.DecodeResult:
  """Greedy (beam_size 1) or beam-search decoding of a batch; beam: the best hypothesis
  (ranked with length penalty ``alpha`` and coverage penalty ``coverage_penalty``).

  A copy model reads ``batch['src_ext']`` and predicts extended ids (``copy_oovs``)."""
  variables = {"params": params}
  src_ext = batch.get("src_ext")
  if beam_size == 1:
    return decoding.greedy_decode(model, variables, batch["src"], batch["src_lengths"], max_len,
                                  src_ext=src_ext)
  result = decoding.beam_search(model, variables, batch["src"], batch["src_lengths"], max_len,
                                beam_size=beam_size, alpha=alpha, beta=coverage_penalty,
                                src_ext=src_ext)
  return jax.tree.map(lambda x: x[:, 0], result)


def length_boundaries(config, lengths: np.ndarray) -> list[int]:
  """Upper bounds of the per-length buckets: ``eval.length_boundaries``, else tens."""
  if config.eval.length_boundaries:
    return sorted(int(b) for b in config.eval.length_boundaries)
  longest = int(lengths.max())
  if longest <= 10:
    return [longest]
  return list(range(10, longest, 10)) + [longest]


def evaluate(state: TrainState, prepared: Prepared, examples: Sequence[Example],
             config: ml_collections.ConfigDict) -> tuple[dict, list[dict]]:
  """Metrics of ``state`` on ``examples``, and one record per example.

  Teacher-forced loss, perplexity, token accuracy and attention entropy;
  exact match (greedy or beam decoding, never teacher-forced), overall and per
  source-length bucket; BLEU for text tasks; alignment error rate where the
  task knows the true alignment. For corpora (examples with their raw ``reference``):
  ``detokenized_bleu``, sacrebleu's standard BLEU of the detokenized output against the raw
  references (13a, ``-lc`` when the target tokenizer lowercases), with
  ``detokenized_bleu_signature``.

  Per source-length bucket (``*_by_length``: {label: {"count", "mean", "std", "low", "high",
  "mean_length"}}, ``length_buckets.per_bucket_statistic``): ``exact_match``; ``bleu``, the
  corpus BLEU of the bucket's sentences (sacrebleu, tokenized as the overall BLEU);
  ``alignment_error_rate``, the bucket's link counts pooled; (low, high) a 95% percentile
  bootstrap interval over the bucket's sentences. ``sentence_bleu_by_length`` is the mean of
  the sentences' smoothed sentence BLEUs, kept for comparison only: a short sentence has few
  or no 3- and 4-grams, so smoothing and the brevity penalty weigh on it far more than on
  a long one, and the mean falls with length even where corpus BLEU does not.

  Per target position (``position_metrics``; buckets with the same boundaries, EOS step
  included): ``token_accuracy_by_position`` {label: {"count", "mean"}}, teacher-forced; and
  ``first_error_by_position`` {"none": exact sentences, label: sentences first wrong there}.

  The alignment error rate scores the argmax link of each real target token of the
  teacher-forced attention (not the EOS step, which no gold link can match).

  A record holds the ``example``, its ``prediction`` (ids, EOS included), ``decode_attention``
  [len(prediction), src_len], teacher-forced ``forced_attention`` [tgt_len + 1, src_len],
  ``forced_correct`` [tgt_len + 1] (the teacher-forced argmax was the reference token),
  ``first_error`` (``position_metrics.first_error`` of the decoding, None when exact),
  ``oovs``, the decoder's ``score`` and ``log_prob``, ``exact_match``, ``length_bucket`` (the
  label of its source length's bucket) and, for text tasks, ``sentence_bleu`` and
  ``bleu_stats`` (``metrics.bleu_statistics``, [10]) and ``hypothesis``, the output as text
  (detokenized for corpora, the text ``detokenized_bleu`` scores; else its tokens joined by
  spaces, as ``bleu`` scores them); with a true alignment,
  ``alignment_counts`` [|A∩S|, |A∩P|, |A|, |S|].
  """
  task = prepared.task
  if config.eval.max_examples:
    examples = examples[:config.eval.max_examples]
  sums = {"loss_sum": 0.0, "tokens": 0, "correct": 0, "entropy_sum": 0.0, "entropy_rows": 0}
  records = [None] * len(examples)
  copy = is_copy_model(prepared.model)
  for batch in eval_batches(examples, task.src_vocab, task.tgt_vocab,
                            config.batching.eval_batch_size, prepared.buckets, copy=copy):
    device_batch = on_mesh({k: v for k, v in batch.items() if k != "index"}, prepared.mesh)
    out = eval_step(state, device_batch)
    decoded = decode_batch(prepared.model, state.params, device_batch, prepared.max_decode_len,
                           config.eval.beam_size, config.eval.length_penalty,
                           config.eval.coverage_penalty)
    out, decoded = jax.device_get((out, decoded))
    for key in sums:
      sums[key] += out[key].item()
    for row, index in enumerate(batch["index"]):
      if index < 0:
        continue
      length = int(decoded.lengths[row])
      records[index] = {
          "example": examples[index],
          "prediction": [int(t) for t in decoded.tokens[row, :length]],
          "decode_attention": decoded.attention[row, :length, :batch["src_lengths"][row]],
          "forced_attention": out["attention"][row, :batch["tgt_lengths"][row],
                                               :batch["src_lengths"][row]],
          "forced_correct": out["token_correct"][row, :batch["tgt_lengths"][row]].tolist(),
          "oovs": copy_oovs(task, examples[index], prepared.model),
          "score": float(decoded.scores[row]),
          "log_prob": float(decoded.log_probs[row]),
      }
  # A copy model's references are in extended ids too: a copied OOV word counts as correct.
  references = [task.tgt_vocab.encode(r["example"].tgt) if r["oovs"] is None
                else task.tgt_vocab.encode_extended(r["example"].tgt, r["oovs"])
                for r in records]
  predictions = [r["prediction"] for r in records]
  correct = np.array([metrics_lib.strip_special(p) == ref
                      for p, ref in zip(predictions, references)], float)
  for record, match, prediction, reference in zip(records, correct, predictions, references):
    record["exact_match"] = bool(match)
    record["first_error"] = position_metrics.first_error(
        metrics_lib.strip_special(prediction), reference)
  src_lengths = np.array([len(r["example"].src) for r in records])
  boundaries = length_boundaries(config, src_lengths)
  for record, label in zip(records, length_buckets.bucket_of(src_lengths, boundaries)):
    record["length_bucket"] = label

  def by_length(stats, name, sentence_values):
    return length_buckets.per_bucket_statistic(stats, name, src_lengths, boundaries,
                                               sentence_values)

  result = {
      "loss": sums["loss_sum"] / max(sums["tokens"], 1),
      "perplexity": (metrics_lib.perplexity(sums["loss_sum"], max(sums["tokens"], 1))
                     if np.isfinite(sums["loss_sum"]) else float("nan")),
      "token_accuracy": sums["correct"] / max(sums["tokens"], 1),
      "exact_match": float(correct.mean()),
      "exact_match_by_length": by_length(
          np.stack([correct, np.ones_like(correct)], -1).astype(np.int64), "exact_match",
          correct),
      "num_examples": len(records),
  }
  # Where outputs go wrong (attention vs the decoder's length extrapolation), by target
  # position in the source-length buckets' boundaries: teacher-forced accuracy, first errors.
  positions = length_boundaries(config, np.array([len(r["forced_correct"]) for r in records]))
  result["token_accuracy_by_position"] = position_metrics.accuracy_by_position(
      [r["forced_correct"] for r in records], positions)
  result["first_error_by_position"] = position_metrics.first_errors_by_position(
      [r["first_error"] for r in records], positions)
  if prepared.model.decoder != "none":
    result["attention_entropy"] = sums["entropy_sum"] / max(sums["entropy_rows"], 1)
  if task.is_text:
    hyps = [" ".join(task.tgt_vocab.decode(r["prediction"], r["oovs"])) for r in records]
    refs = [" ".join(r["example"].tgt) for r in records]
    result["bleu"] = metrics_lib.corpus_bleu(hyps, refs)
    bleu_stats = metrics_lib.bleu_statistics(hyps, refs)  # [n, 10]
    sentence_bleu = np.array([metrics_lib.bleu_from_statistics(s) for s in bleu_stats])
    for record, stats, bleu in zip(records, bleu_stats, sentence_bleu):
      record["bleu_stats"] = stats.tolist()
      record["sentence_bleu"] = float(bleu)
    result["bleu_by_length"] = by_length(bleu_stats, "bleu", sentence_bleu)
    result["sentence_bleu_by_length"] = length_buckets.per_bucket_mean(
        sentence_bleu, src_lengths, boundaries)
    corpus = all(r["example"].reference is not None for r in records)  # raw references
    for record, hyp in zip(records, hyps):
      record["hypothesis"] = (task.tgt_tokenizer.detokenize(prediction_text(record, task))
                              if corpus else hyp)
    if corpus:
      result["detokenized_bleu"], result["detokenized_bleu_signature"] = (
          metrics_lib.detokenized_bleu(
              [r["hypothesis"] for r in records], [r["example"].reference for r in records],
              lowercase=bool(getattr(task.tgt_tokenizer, "lowercase", False))))
  if task.has_alignment and prepared.model.decoder != "none":
    # Only the rows of real target tokens: the EOS row has no gold link to hit.
    counts = np.array([[c["a_and_s"], c["a_and_p"], c["a"], c["s"]] for c in (
        metrics_lib.alignment_counts(r["forced_attention"], r["example"].alignment,
                                     tgt_length=len(r["example"].tgt)) for r in records)],
                      np.int64)  # [n, 4]: |A∩S|, |A∩P|, |A|, |S|
    for record, row in zip(records, counts):
      record["alignment_counts"] = row.tolist()
    result["alignment_error_rate"] = metrics_lib.aer_from_counts(*counts.sum(0).tolist())
    result["alignment_error_rate_by_length"] = by_length(
        counts, "alignment_error_rate", [metrics_lib.aer_from_counts(*c) for c in counts.tolist()])
  return result, records


decoding_name = run_record.decoding_name  # greedy (1) or beam<k>: the run record names them


def evaluate_test_beams(state: TrainState, prepared: Prepared, examples: Sequence[Example],
                        config: ml_collections.ConfigDict) -> dict[int, tuple[dict, list[dict]]]:
  """{beam size: ``evaluate``'s (metrics, records)} of ``examples`` decoded with each of
  ``config.eval.test_beam_sizes`` instead of ``eval.beam_size`` (the final test evaluation's
  extra decodings; the teacher-forced metrics do not depend on it and come out equal). A
  size equal to ``eval.beam_size`` is skipped: ``evaluate`` with ``config`` is that one."""
  results = {}
  for beam_size in config.eval.test_beam_sizes:
    if beam_size == config.eval.beam_size:
      continue
    beam_config = config.copy_and_resolve_references()
    beam_config.eval.beam_size = int(beam_size)
    results[int(beam_size)] = evaluate(state, prepared, examples, beam_config)
  return results


def write_test_outcomes(records: Sequence[dict], directory: str, beam_size: int) -> str:
  """``test_outcomes_<decoding>.jsonl`` (e.g. ``test_outcomes_beam5.jsonl``) in ``directory``:
  the per-sentence outcomes (``export.outcome_row``) of a test evaluation decoded with
  ``beam_size``, as ``test_outcomes.jsonl`` holds those of ``eval.beam_size``'s. Returns
  the path."""
  path = os.path.join(directory, run_record.outcomes_file(decoding_name(beam_size)))
  export.write_jsonl(path, [export.outcome_row(r, i) for i, r in enumerate(records)])
  return path


def on_mesh(batch: dict, mesh) -> dict:
  """An evaluation batch split by rows over ``mesh`` when it divides evenly (one process);
  otherwise left on the host, and the jitted call computes it whole on every device."""
  if (mesh is None or jax.process_count() > 1 or
      any(np.ndim(v) == 0 or np.shape(v)[0] % mesh.devices.size for v in batch.values())):
    return batch
  return parallel.shard_batch(batch, mesh)


def scalars(metrics: dict) -> dict:
  """The scalar entries of a metrics dict, as Python floats."""
  return {k: float(v) for k, v in metrics.items()
          if isinstance(v, (int, float, np.number)) or (isinstance(v, np.ndarray) and v.ndim == 0)}


def is_copy_model(model) -> bool:
  """Whether ``model`` is a copy model (pointer-generator: predicts extended ids)."""
  return bool(getattr(model, "copy", False))


def copy_oovs(task: TaskData, example: Example, model) -> tuple[str, ...] | None:
  """A copy model's extended-vocabulary slots for ``example``: its source words outside the
  target vocabulary (extended id ``len(tgt_vocab) + k`` is the k-th); None for other models."""
  return task.tgt_vocab.source_oovs(example.src) if is_copy_model(model) else None


def prediction_tokens(record: dict, task: TaskData) -> list[str]:
  """Every predicted token of a record (EOS included), copied OOVs as their source words."""
  return [task.tgt_vocab.token(t, record.get("oovs")) for t in record["prediction"]]


def prediction_text(record: dict, task: TaskData) -> list[str]:
  """The predicted sentence of a record (up to EOS), copied OOVs as their source words."""
  return task.tgt_vocab.decode(record["prediction"], record.get("oovs"))


def heatmap_parts(record: dict, task: TaskData) -> tuple:
  """(weights [out_len, src_len], source tokens, output tokens, title) of a record's heatmap."""
  src = list(record["example"].src)
  title = (f"{task.src_tokenizer.detokenize(src)} -> "
           f"{task.tgt_tokenizer.detokenize(prediction_text(record, task))}")
  return record["decode_attention"], src, prediction_tokens(record, task), title


def write_heatmaps(records: Sequence[dict], task: TaskData, directory: str, count: int,
                   prefix: str = "attention", start: int = 0) -> list[str]:
  """Attention heatmaps (source on x, output on y) of the first ``count`` records, numbered
  from ``start``: ``{prefix}_{start}.png``, ..."""
  paths = []
  for i, record in enumerate(records[:count], start):
    weights, src, out, title = heatmap_parts(record, task)
    path = os.path.join(directory, f"{prefix}_{i}.png")
    plots.plot_attention(weights, src, out, path, title=title)
    paths.append(path)
  return paths


def longest_example(records: Sequence[dict], task: TaskData) -> dict:
  """The record with the longest source (the first of equals) as JSON: tokens and attention.

  Every trial of a sweep shares its test set, so this is the same example in all of them
  (``experiments.report`` draws its attention across variants). ``attention`` is the
  decoding attention [len(prediction), len(src)], rows = predicted tokens (EOS included).
  """
  index = max(range(len(records)), key=lambda i: len(records[i]["example"].src))
  record = records[index]
  return {"index": index, "src": list(record["example"].src),
          "target": list(record["example"].tgt),
          "prediction": prediction_tokens(record, task),
          "attention": np.round(np.asarray(record["decode_attention"], float), 4).tolist()}


def log_line(step: int, loss: float, record: dict, task: TaskData) -> str:
  """The line training prints at each log step: loss, and one example's translation."""
  example = record["example"]
  source, target = task.src_tokenizer, task.tgt_tokenizer
  return (f"step {step:6d} | loss {loss:.4f} | input {source.detokenize(example.src)} | "
          f"target {target.detokenize(example.tgt)} | prediction "
          f"{target.detokenize(prediction_text(record, task))}")

