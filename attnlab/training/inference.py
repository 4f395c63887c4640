"""A run restored from its workdir: ``--mode=eval`` (``evaluate_checkpoint``) and
``--mode=decode`` (``decode_stream``), from ``--workdir`` alone.

The run's ``config.json`` is read back when no config is given (``load_config``); a config that
is given must describe the same model (``workdir.check_same_model``: the differing keys are
named). Decoding rebuilds the vocabularies from ``vocab.json`` and the shapes from
``run.json`` and never builds the dataset; evaluation builds the dataset's split it scores.
Both read ``vocab.json`` through ``workdir.read_vocab`` (its recorded checksum); evaluation
also compares it with the vocabularies the config's data builds.
A checkpoint that does not read is moved aside and the next one is used, as in training; one
that holds another model than the config describes is a config error
(``checkpointing.CheckpointMismatch``) and is left in place.

Both can use the mean parameters of the last or best K checkpoints instead (``average``:
``averaging``, which reads them and moves nothing); decoding can also restore several runs
that share their vocabularies as one ensemble (``restore_for_decoding``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from typing import IO, Iterable, Iterator, Sequence

import jax
import ml_collections
import numpy as np

from attnlab import decoding, export, run_config, run_record
from attnlab.config import ConfigError, build_model, validate
from attnlab.data import TaskData, Vocab, encode_batch, tokenizer_from_dict
from attnlab.data.tasks import Example
from attnlab.training import averaging, workdir as workdir_lib
from attnlab.training.evaluation import (copy_oovs, decode_batch, evaluate, is_copy_model,
                                         prediction_text, write_heatmaps)
from attnlab.training.preparation import Prepared, init_state, prepare
from attnlab.training.steps import TrainState


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was trained with (its ``config.json``), as a ConfigDict."""
  workdir_lib.check(workdir, create=False)
  path = os.path.join(workdir, run_record.CONFIG)
  if not os.path.isfile(path):
    raise workdir_lib.WorkdirError(f"{path} does not exist: --workdir is not a run's folder "
                                   "(or pass --config)")
  return run_config.from_json(workdir_lib.read_json(path))


def prepare_for_decoding(config: ml_collections.ConfigDict, workdir: str) -> Prepared:
  """The run's model, vocabularies and shapes from ``vocab.json`` and ``run.json``, without
  building the dataset (a workdir written before run.json existed: from the dataset)."""
  shapes_path = os.path.join(workdir, run_record.RUN)
  if not os.path.isfile(shapes_path):  # a run from before run.json and saved tokenizers
    prepared = prepare(config)
    workdir_lib.check_same_vocab(prepared.task, workdir)
    return prepared
  shapes = workdir_lib.read_json(shapes_path)
  vocab = workdir_lib.read_vocab(workdir)
  src_vocab, tgt_vocab = Vocab(tuple(vocab["src"])), Vocab(tuple(vocab["tgt"]))
  task = TaskData(config.data.task, (), (), (), src_vocab, tgt_vocab, is_text=False,
                  has_alignment=False, src_tokenizer=tokenizer_from_dict(vocab["src_tokenizer"]),
                  tgt_tokenizer=tokenizer_from_dict(vocab["tgt_tokenizer"]))
  model = build_model(config, len(src_vocab), len(tgt_vocab), shapes["max_src_len"])
  return Prepared(task=task, buckets=tuple(map(tuple, shapes["buckets"])), model=model,
                  max_src_len=shapes["max_src_len"], max_decode_len=shapes["max_decode_len"])


def restore_for_inference(config: ml_collections.ConfigDict, workdir: str, which: str = "best",
                          for_decoding: bool = False,
                          average: str | None = None) -> tuple[TrainState, Prepared, int]:
  """The prepared task/model and the state of the ``best`` or ``latest`` checkpoint.

  A checkpoint that does not restore is moved aside (as in training) and the next one is
  used: for ``best``, the best, then the newest first; for ``latest``, newest first.
  ``for_decoding``: the model and vocabularies come from the workdir (no dataset is built).
  ``average`` (``'last:K'`` or ``'best:K'``, in place of ``which``): the mean parameters of
  those checkpoints (``averaging``; nothing is moved), at the newest one's step.
  Raises ``workdir.WorkdirError`` (creating nothing) when the workdir does not exist or
  holds another model's run, ``checkpointing.CheckpointMismatch`` (moving nothing) when its
  checkpoints are not the shapes of the config's model (e.g. an edited config.json),
  FileNotFoundError when no checkpoint restores.
  """
  state, prepared, steps = restore_checkpoints(config, workdir, which, for_decoding, average)
  return state, prepared, steps[0]


def restore_checkpoints(config: ml_collections.ConfigDict, workdir: str, which: str = "best",
                        for_decoding: bool = False, average: str | None = None
                        ) -> tuple[TrainState, Prepared, list[int]]:
  """``restore_for_inference`` with every step the state comes from, newest first (one,
  unless ``average``)."""
  choice = averaging.parse_choice(average) if average else None
  workdir_lib.check(workdir, create=False)
  workdir_lib.check_same_model(config, workdir)
  if config.num_seeds > 1:
    raise ConfigError("num_seeds", "eval and decode modes restore one model, but this "
                      "workdir's checkpoints hold num_seeds stacked models (multi-seed)")
  checkpoints = os.path.join(workdir, run_record.CHECKPOINTS)
  if not os.path.isdir(checkpoints):
    raise FileNotFoundError(f"no checkpoint in {checkpoints}: train first (--mode=train)")
  averaged_steps = averaging.chosen_steps(workdir, choice) if choice else None
  if for_decoding:
    prepared = prepare_for_decoding(config, workdir)
  else:
    prepared = prepare(config)
    workdir_lib.check_same_vocab(prepared.task, workdir)
  if averaged_steps:
    return (averaging.restore_average(workdir, averaged_steps, init_state(config, prepared)),
            prepared, averaged_steps)
  ckpt = workdir_lib.checkpointer(workdir, config)
  try:
    steps = sorted(ckpt.all_steps(), reverse=True)
    best = ckpt.best_step()
    if which == "best" and best is not None:
      steps = [best] + [s for s in steps if s != best]
    restored = ckpt.restore_first(steps, init_state(config, prepared))
  finally:
    ckpt.close()
  if restored is None:
    raise FileNotFoundError(
        f"no checkpoint in {checkpoints}: train first (--mode=train)" if not steps else
        f"no checkpoint in {checkpoints} restores (moved to {checkpoints}_corrupted): "
        "train again (--mode=train)")
  step, state = restored
  return state, prepared, [step]


def restore_for_decoding(config: ml_collections.ConfigDict, workdirs: Sequence[str],
                         which: str = "best", average: str | None = None
                         ) -> tuple[TrainState, Prepared]:
  """The state and prepared model that decode ``workdirs[0]``'s run (``config``: its own,
  with any overrides) or, given several runs, their ``decoding.Ensemble``: the mean of their
  per-step output probabilities, with the mean of their attention as the alignment.

  Every run restores its ``which`` (or ``average``d) checkpoint with its own config.json;
  decode options (``eval.*``), tokenizers and the longest output are the first run's, the
  longest source the shortest member's. WorkdirError (one line) when a run's vocabularies
  (tokens or tokenizers) differ from the first's, or some are copy models and some not.
  """
  check_shared_vocabularies(workdirs)
  state, prepared, _ = restore_for_inference(config, workdirs[0], which, True, average)
  states, models, max_src_len = [state], [prepared.model], prepared.max_src_len
  for workdir in workdirs[1:]:
    member_config = load_config(workdir)
    validate(member_config)
    member_state, member, _ = restore_for_inference(member_config, workdir, which, True,
                                                    average)
    if is_copy_model(member.model) != is_copy_model(prepared.model):
      raise workdir_lib.WorkdirError(
          f"--ensemble member {workdir!r} and {workdirs[0]!r} are not both copy models (or "
          "both not): their output ids differ")
    states.append(member_state)
    models.append(member.model)
    max_src_len = min(max_src_len, member.max_src_len)
  if len(workdirs) == 1:
    return state, prepared
  ensemble = decoding.Ensemble(members=tuple(models))
  params = {f"members_{i}": s.params for i, s in enumerate(states)}
  return (state.replace(params=params),
          dataclasses.replace(prepared, model=ensemble, max_src_len=max_src_len))


def check_shared_vocabularies(workdirs: Sequence[str]) -> None:
  """WorkdirError (one line) unless every run's vocab.json holds the first's vocabularies and
  tokenizers (checked before any model is restored)."""
  if len(workdirs) < 2:
    return
  workdir_lib.check(workdirs[0], create=False)
  first = workdir_lib.read_vocab(workdirs[0])
  for workdir in workdirs[1:]:
    if not os.path.isdir(workdir):
      raise workdir_lib.WorkdirError(f"--ensemble member {workdir!r} does not exist")
    vocab = workdir_lib.read_vocab(workdir)
    differ = [k for k in ("src", "tgt", "src_tokenizer", "tgt_tokenizer")
              if vocab.get(k) != first.get(k)]
    if differ:
      raise workdir_lib.WorkdirError(
          f"--ensemble member {workdir!r} has other vocabularies than {workdirs[0]!r} "
          f"({', '.join(differ)} differ): the runs of an ensemble must share them")


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, which: str = "best",
                        split: str = "test", average: str | None = None) -> dict:
  """Evaluates a saved checkpoint (or the ``average`` of several: ``restore_for_inference``)
  on a split; writes ``eval_{split}.json`` and, one line per example,
  ``eval_{split}_examples.jsonl`` (source, reference, hypothesis, score, per-example
  metrics: ``attnlab.export``). Holds the workdir's lock."""
  workdir_lib.check(workdir, create=False)
  with workdir_lib.writer_lock(workdir):
    state, prepared, steps = restore_checkpoints(config, workdir, which, average=average)
    task = prepared.task
    examples = getattr(task, split)
    result, records = evaluate(state, prepared, examples, config)
    result = {"checkpoint": average or which, "step": steps[0], "split": split,
              **({"averaged_steps": steps} if average else {}), **result}
    workdir_lib.write_json(os.path.join(workdir, f"eval_{split}.json"), result)
    with_alignment = task.has_alignment and prepared.model.decoder != "none"
    export.write_jsonl(os.path.join(workdir, f"eval_{split}_examples.jsonl"),
                       [export.example_row(r, task.src_tokenizer.detokenize,
                                            task.tgt_tokenizer.detokenize,
                                            prediction_text(r, task), with_alignment)
                        for r in records])
  return result


def checked_source(config, prepared: Prepared, line: str, number: int) -> tuple[str, ...]:
  """The tokens of input line ``number`` (1-based), cut to the model's longest source under
  ``eval.on_long_input='truncate'``; ValueError naming the line otherwise."""
  tokens = prepared.task.src_tokenizer.tokenize(line)
  if len(tokens) <= prepared.max_src_len:
    return tokens
  message = (f"input line {number} has {len(tokens)} tokens; the model's longest source is "
             f"{prepared.max_src_len}")
  if config.eval.on_long_input == "error":
    raise ValueError(message + " (add --config.eval.on_long_input=truncate to cut such lines)")
  logging.warning("%s: truncated", message)
  return tokens[:prepared.max_src_len]


def decode_sources(state: TrainState, prepared: Prepared, config, sources: Sequence[tuple],
                   rows: int, nbest: int = 1) -> list[dict]:
  """Decodes up to ``rows`` non-empty sources in one batch of ``rows`` rows (one compiled
  shape whatever their number); one record per source (``evaluate``'s keys, no reference) of
  its best hypothesis, with ``nbest > 1`` (beam search, ``eval.beam_size >= nbest``) the next
  ones under ``"nbest"`` (records of the same keys, best first; a beam's impossible fillers
  left out)."""
  task = prepared.task
  examples = [Example(src=src, tgt=()) for src in sources]
  batch = encode_batch(examples, range(len(examples)), task.src_vocab, task.tgt_vocab,
                       (prepared.max_src_len, prepared.max_decode_len), rows,
                       copy=is_copy_model(prepared.model))
  inputs = {k: batch[k] for k in ("src", "src_lengths", "src_ext") if k in batch}
  if nbest > 1:  # every beam, sorted best first: [rows, beam_size, ...]
    decoded = jax.device_get(decoding.beam_search(
        prepared.model, {"params": state.params}, inputs["src"], inputs["src_lengths"],
        prepared.max_decode_len, beam_size=config.eval.beam_size,
        alpha=config.eval.length_penalty, beta=config.eval.coverage_penalty,
        src_ext=inputs.get("src_ext")))
  else:  # the best only: [rows, ...]
    decoded = jax.device_get(decode_batch(
        prepared.model, state.params, inputs, prepared.max_decode_len, config.eval.beam_size,
        config.eval.length_penalty, config.eval.coverage_penalty))
  records = []
  for row, example in enumerate(examples):
    oovs = copy_oovs(task, example, prepared.model)
    indices = [(row, b) for b in range(nbest)] if nbest > 1 else [(row,)]
    hypotheses = [hypothesis_record(decoded, i, example, oovs) for i in indices
                  if decoded.scores[i] > decoding.NEG_INF / 2]
    records.append({**hypotheses[0], "nbest": hypotheses[1:]})
  return records


def hypothesis_record(decoded: decoding.DecodeResult, index: tuple, example: Example,
                      oovs) -> dict:
  """The record of the hypothesis at ``index`` ((row,) or (row, beam)) of a decoded batch
  (host arrays)."""
  length = int(decoded.lengths[index])
  return {"example": example, "oovs": oovs,
          "prediction": [int(t) for t in decoded.tokens[index][:length]],
          "decode_attention": decoded.attention[index][:length, :len(example.src)],
          "score": float(decoded.scores[index]), "log_prob": float(decoded.log_probs[index])}


def translation(record: dict, task: TaskData) -> export.Translation:
  """A decoded record as an ``export.Translation`` (output tokens and attention rows without
  EOS)."""
  target = tuple(prediction_text(record, task))
  return export.Translation(
      text=task.tgt_tokenizer.detokenize(target), source=tuple(record["example"].src),
      target=target,
      attention=np.asarray(record["decode_attention"][:len(target)], np.float32),
      score=record["score"], log_prob=record["log_prob"],
      alternatives=tuple(translation(r, task) for r in record.get("nbest", ())))


def decode_stream(config: ml_collections.ConfigDict, workdir: str, lines: Iterable[str],
                  which: str = "best", heatmap_dir: str | None = None,
                  batch_size: int = 1, nbest: int = 1) -> Iterator[export.Translation]:
  """Translates raw input lines as they arrive, one ``export.Translation`` per line, in order:
  ``translations`` with the ``which`` checkpoint, restored before the first line is read."""
  state, prepared, _ = restore_for_inference(config, workdir, which, for_decoding=True)
  yield from translations(state, prepared, config, lines, heatmap_dir, batch_size, nbest)


def translations(state: TrainState, prepared: Prepared, config: ml_collections.ConfigDict,
                 lines: Iterable[str], heatmap_dir: str | None = None,
                 batch_size: int = 1, nbest: int = 1) -> Iterator[export.Translation]:
  """Translates raw input lines with a restored model, one ``export.Translation`` per line.

  Up to ``batch_size`` lines are read and decoded together: 1 (a pipe, a terminal) yields each
  translation as soon as its line arrives; a larger batch (a file, whose lines are all there)
  is faster. Empty lines pass through as empty translations; unknown words become ``<unk>``; a
  line longer than the model's longest source is truncated with a warning, or
  (``eval.on_long_input='error'``) gives an empty translation whose ``error`` names the line,
  as does an ``InputError`` in ``lines`` (``text_lines(..., per_line=True)``): the lines after
  it are decoded all the same. ``nbest``: each translation also holds the next best
  hypotheses (``decode_sources``). ``heatmap_dir``: also write the attention heatmap of each
  non-empty line, ``decode_{k}.png`` for the k-th (from 0).
  """
  task = prepared.task
  lines = iter(lines)
  number = decoded = 0
  while chunk := list(itertools.islice(lines, batch_size)):
    sources, errors = [], []
    for k, line in enumerate(chunk, number + 1):
      try:
        if isinstance(line, InputError):
          raise line
        sources.append(checked_source(config, prepared, line, k))
        errors.append(None)
      except ValueError as e:  # this line only: its output is empty, the stream goes on
        sources.append(())
        errors.append(str(e))
    number += len(chunk)
    wanted = [src for src in sources if src]
    records = (decode_sources(state, prepared, config, wanted, batch_size, nbest) if wanted
               else [])
    if heatmap_dir and records:
      os.makedirs(heatmap_dir, exist_ok=True)
      write_heatmaps(records, task, heatmap_dir, len(records), prefix="decode", start=decoded)
    decoded += len(records)
    in_order = iter(records)
    for line, src, error in zip(chunk, sources, errors):
      line = line if isinstance(line, str) else ""
      yield (dataclasses.replace(translation(next(in_order), task), line=line) if src else
             export.Translation(text="", line=line, error=error))


class InputError(ValueError):
  """An input line that is not text (one line naming the file and the line)."""


def text_lines(stream: IO[bytes], name: str,
               per_line: bool = False) -> Iterator[str | InputError]:
  """The lines of a binary stream as text, without their line ends, one at a time (memory
  stays flat); InputError naming ``name`` and the 1-based line at the first that is not
  UTF-8 (``per_line``: yielded in that line's place, and reading goes on)."""
  for number, raw in enumerate(stream, 1):
    try:
      yield raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
      error = InputError(f"{name} line {number} is not UTF-8 text (byte "
                         f"0x{raw[e.start]:02x} at position {e.start + 1}: {e.reason})")
      if not per_line:
        raise error from None
      yield error


def decode_lines(config: ml_collections.ConfigDict, workdir: str, lines: Sequence[str],
                 which: str = "best", heatmap_dir: str | None = None) -> list[str]:
  """Translates raw input lines with a saved checkpoint (``decode_stream`` in batches of
  ``batching.eval_batch_size``): one output line per input line; ValueError naming the first
  line that could not be decoded (too long under ``eval.on_long_input='error'``)."""
  outputs = []
  for t in decode_stream(config, workdir, lines, which, heatmap_dir,
                         config.batching.eval_batch_size):
    if t.error:
      raise ValueError(t.error)
    outputs.append(t.text)
  return outputs
