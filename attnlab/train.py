"""Training and evaluation: ``train_and_evaluate(config, workdir)``.

The workdir is the whole state of a run::

    workdir/config.json        the resolved config
    workdir/vocab.json         source and target vocabularies
    workdir/checkpoints/       orbax checkpoints (latest few + best on validation)
    workdir/metrics.jsonl      one JSON object per logged step and split
    workdir/tensorboard/       TensorBoard event files
    workdir/attention_*.png    attention heatmaps of test examples
    workdir/summary.json       final metrics

Running the same command again resumes from the latest checkpoint. The data
order is a pure function of (seed, step) and dropout keys are
``fold_in(rng, step)``, so a resumed run sees what an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
import time
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from attnlab import checkpointing, decoding, metrics as metrics_lib, plots
from attnlab.config import build_model, validate
from attnlab.data import (PAD, TaskData, TrainBatches, Vocab, build_task, eval_batches,
                          make_buckets)
from attnlab.data.corpus import tokenize as corpus_tokenize
from attnlab.data.tasks import Example

Array = jax.Array


class TrainState(train_state.TrainState):
  """Params, optimizer state and step (flax's TrainState)."""


# ---------------------------------------------------------------- optimizer

def make_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
  """Linear warmup to the peak learning rate, then cosine decay (to 10%) or constant."""
  tc = train_config
  if tc.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=tc.learning_rate, warmup_steps=tc.warmup_steps,
        decay_steps=max(tc.num_steps, tc.warmup_steps + 1), end_value=0.1 * tc.learning_rate)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, tc.learning_rate, max(tc.warmup_steps, 1)),
       optax.constant_schedule(tc.learning_rate)], [tc.warmup_steps])


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam(W) with the schedule, after global-norm gradient clipping."""
  parts = []
  if train_config.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(train_config.grad_clip))
  parts.append(optax.adamw(make_schedule(train_config), weight_decay=train_config.weight_decay))
  return optax.chain(*parts)


# ---------------------------------------------------------------- steps

def _target_mask(batch: dict) -> Array:
  """[batch, tgt_len] True at real target tokens (EOS included) of real examples."""
  return (batch["tgt_out"] != PAD) & batch["example_mask"][:, None]


def _forward(state: TrainState, params, batch: dict, deterministic: bool, rng=None):
  rngs = None if deterministic else {"dropout": rng}
  return state.apply_fn({"params": params}, batch["src"], batch["src_lengths"],
                        batch["tgt_in"], deterministic, rngs=rngs)


@functools.partial(jax.jit, static_argnames=("label_smoothing",), donate_argnums=0)
def train_step(state: TrainState, batch: dict, rng: Array,
               label_smoothing: float = 0.0) -> tuple[TrainState, dict]:
  """One optimizer step: (state, batch, rng) -> (state, metrics).

  Dropout draws from ``fold_in(rng, state.step)``.
  """
  step_rng = jax.random.fold_in(rng, state.step)
  mask = _target_mask(batch)

  def loss_fn(params):
    logits, _ = _forward(state, params, batch, False, step_rng)
    loss_sum, count = metrics_lib.sequence_cross_entropy(
        logits, batch["tgt_out"], mask, label_smoothing)
    return loss_sum / jnp.maximum(count, 1), count

  (loss, count), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  return new_state, {"loss": loss, "tokens": count, "l2_grads": optax.tree.norm(grads),
                     "l2_params": optax.tree.norm(new_state.params)}


@jax.jit
def eval_step(state: TrainState, batch: dict) -> dict:
  """Teacher-forced sums over one batch: loss, tokens, correct tokens, entropy."""
  logits, attention = _forward(state, state.params, batch, True)
  mask = _target_mask(batch)
  loss_sum, count = metrics_lib.sequence_cross_entropy(logits, batch["tgt_out"], mask)
  correct, _ = metrics_lib.token_correct(logits, batch["tgt_out"], mask)
  src_mask = jnp.arange(batch["src"].shape[1])[None, :] < batch["src_lengths"][:, None]
  entropy, rows = metrics_lib.attention_entropy(attention, mask, src_mask)
  return {"loss_sum": loss_sum, "tokens": count, "correct": correct, "entropy_sum": entropy,
          "entropy_rows": rows, "attention": attention}


def decode_batch(model, params, batch: dict, max_len: int, beam_size: int = 1,
                 alpha: float = 0.6) -> decoding.DecodeResult:
  """Greedy (beam_size 1) or beam-search decoding of a batch; beam: the best hypothesis."""
  variables = {"params": params}
  if beam_size == 1:
    return decoding.greedy_decode(model, variables, batch["src"], batch["src_lengths"], max_len)
  result = decoding.beam_search(model, variables, batch["src"], batch["src_lengths"], max_len,
                                beam_size=beam_size, alpha=alpha)
  return jax.tree.map(lambda x: x[:, 0], result)


# ---------------------------------------------------------------- text

def detokenize(task_name: str, tokens: Sequence[str]) -> str:
  """Tokens as text: characters joined for the date task, words spaced otherwise."""
  return ("" if task_name == "date" else " ").join(tokens)


def source_tokens(data_config: ml_collections.ConfigDict, line: str) -> tuple[str, ...]:
  """Tokenizes one line of raw input the way the task's sources are tokenized."""
  if data_config.task == "date":
    return tuple(line.strip().replace(" ", ""))
  if data_config.task == "corpus":
    return corpus_tokenize(line, data_config.get("lowercase", True))
  return tuple(line.split())


# ---------------------------------------------------------------- evaluation

@dataclasses.dataclass
class Prepared:
  """Everything built from a config before training: task, shapes, model."""

  task: TaskData
  buckets: tuple
  model: Any
  max_src_len: int
  max_decode_len: int


def prepare(config: ml_collections.ConfigDict) -> Prepared:
  """Validates the config, builds the task, the length buckets and the model."""
  validate(config)
  task = build_task(config.data)
  everything = task.train + task.valid + task.test
  buckets = make_buckets(everything, config.batching.num_buckets,
                         round_to=config.batching.round_to)
  max_src_len = max(s for s, _ in buckets)
  max_decode_len = config.eval.max_decode_len or max(t for _, t in buckets)
  model = build_model(config, len(task.src_vocab), len(task.tgt_vocab), max_src_len)
  return Prepared(task=task, buckets=buckets, model=model, max_src_len=max_src_len,
                  max_decode_len=max_decode_len)


def _length_boundaries(config, lengths: np.ndarray) -> list[int]:
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
  task knows the true alignment.
  """
  task = prepared.task
  if config.eval.max_examples:
    examples = examples[:config.eval.max_examples]
  sums = {"loss_sum": 0.0, "tokens": 0, "correct": 0, "entropy_sum": 0.0, "entropy_rows": 0}
  records = [None] * len(examples)
  for batch in eval_batches(examples, task.src_vocab, task.tgt_vocab,
                            config.batching.eval_batch_size, prepared.buckets):
    device_batch = {k: v for k, v in batch.items() if k != "index"}
    out = eval_step(state, device_batch)
    decoded = decode_batch(prepared.model, state.params, device_batch, prepared.max_decode_len,
                           config.eval.beam_size, config.eval.length_penalty)
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
      }
  references = [task.tgt_vocab.encode(r["example"].tgt) for r in records]
  predictions = [r["prediction"] for r in records]
  correct = np.array([metrics_lib.strip_special(p) == ref
                      for p, ref in zip(predictions, references)], float)
  src_lengths = np.array([len(r["example"].src) for r in records])
  boundaries = _length_boundaries(config, src_lengths)
  result = {
      "loss": sums["loss_sum"] / max(sums["tokens"], 1),
      "perplexity": metrics_lib.perplexity(sums["loss_sum"], max(sums["tokens"], 1)),
      "token_accuracy": sums["correct"] / max(sums["tokens"], 1),
      "exact_match": float(correct.mean()),
      "exact_match_by_length": metrics_lib.per_bucket_mean(correct, src_lengths, boundaries),
      "num_examples": len(records),
  }
  if prepared.model.decoder != "none":
    result["attention_entropy"] = sums["entropy_sum"] / max(sums["entropy_rows"], 1)
  if task.is_text:
    hyps = [" ".join(task.tgt_vocab.decode(p)) for p in predictions]
    refs = [" ".join(r["example"].tgt) for r in records]
    result["bleu"] = metrics_lib.corpus_bleu(hyps, refs)
    sentence_bleu = np.array([metrics_lib.corpus_bleu([h], [r]) for h, r in zip(hyps, refs)])
    result["bleu_by_length"] = metrics_lib.per_bucket_mean(sentence_bleu, src_lengths, boundaries)
  if task.has_alignment and prepared.model.decoder != "none":
    result["alignment_error_rate"] = metrics_lib.corpus_alignment_error_rate(
        [r["forced_attention"] for r in records], [r["example"].alignment for r in records])
  return result, records


def _scalars(metrics: dict) -> dict:
  """The scalar entries of a metrics dict, as Python floats."""
  return {k: float(v) for k, v in metrics.items()
          if isinstance(v, (int, float, np.number)) or (isinstance(v, np.ndarray) and v.ndim == 0)}


# ---------------------------------------------------------------- outputs

class MetricWriter:
  """metrics.jsonl plus TensorBoard scalars, written by process 0 only."""

  def __init__(self, workdir: str):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    from tensorboardX import SummaryWriter  # imported here: only process 0 writes
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
    self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, metrics: dict) -> None:
    if not self.enabled:
      return
    record = {"step": step, "split": split, **metrics}
    self.jsonl.write(json.dumps(record, default=float) + "\n")
    self.jsonl.flush()
    for key, value in _scalars(metrics).items():
      self.tb.add_scalar(f"{split}/{key}", value, step)
    self.tb.flush()

  def close(self) -> None:
    if self.enabled:
      self.jsonl.close()
      self.tb.close()


def write_heatmaps(records: Sequence[dict], task: TaskData, directory: str, count: int,
                   prefix: str = "attention") -> list[str]:
  """Attention heatmaps (source on x, output on y) of the first ``count`` records."""
  paths = []
  for i, record in enumerate(records[:count]):
    src = list(record["example"].src)
    out = [task.tgt_vocab.tokens[t] for t in record["prediction"]]
    path = os.path.join(directory, f"{prefix}_{i}.png")
    plots.plot_attention(record["decode_attention"], src, out, path,
                         title=f"{detokenize(task.name, src)} -> "
                               f"{detokenize(task.name, task.tgt_vocab.decode(record['prediction']))}")
    paths.append(path)
  return paths


def _log_line(step: int, loss: float, record: dict, task: TaskData) -> str:
  example = record["example"]
  return (f"step {step:6d} | loss {loss:.4f} | input {detokenize(task.name, example.src)} | "
          f"target {detokenize(task.name, example.tgt)} | prediction "
          f"{detokenize(task.name, task.tgt_vocab.decode(record['prediction']))}")


# ---------------------------------------------------------------- the loop

def init_state(config: ml_collections.ConfigDict, prepared: Prepared) -> TrainState:
  """Fresh parameters (from config.seed) and optimizer state."""
  src_len, tgt_len = prepared.buckets[0]
  dummy_src = jnp.ones((1, src_len), jnp.int32)
  dummy_tgt = jnp.ones((1, tgt_len), jnp.int32)
  params = jax.jit(prepared.model.init)(
      jax.random.key(config.seed), dummy_src, jnp.ones((1,), jnp.int32), dummy_tgt)["params"]
  return TrainState.create(apply_fn=prepared.model.apply, params=params,
                           tx=make_optimizer(config.train))


def _checkpointer(workdir: str, config) -> checkpointing.Checkpointer:
  return checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    keep=config.train.keep_checkpoints,
                                    best_metric=config.train.best_metric,
                                    best_mode=config.train.best_mode)


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=2, default=float)
  os.replace(tmp, path)  # atomic: a crash never leaves half a file


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from the workdir), evaluates, checkpoints; returns the summary."""
  start_time = time.time()
  prepared = prepare(config)
  task = prepared.task
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, "config.json"), config.to_dict())
  _write_json(os.path.join(workdir, "vocab.json"),
              {"src": list(task.src_vocab.tokens), "tgt": list(task.tgt_vocab.tokens)})
  logging.info("task %s: %d/%d/%d examples, buckets %s", task.name, len(task.train),
               len(task.valid), len(task.test), prepared.buckets)

  state = init_state(config, prepared)
  logging.info("model: %d parameters", sum(x.size for x in jax.tree.leaves(state.params)))
  ckpt = _checkpointer(workdir, config)
  if ckpt.latest_step() is not None:
    state = ckpt.restore(ckpt.latest_step(), state)
    logging.info("resumed from step %d", int(state.step))
  start_step = int(state.step)

  batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab,
                         config.batching.batch_size, prepared.buckets, config.seed)
  rng = jax.random.fold_in(jax.random.key(config.seed), 1)  # 0 was used for init
  writer = MetricWriter(workdir)
  tc = config.train
  progress = None
  if sys.stderr.isatty() and jax.process_index() == 0:
    import tqdm  # progress bar with rate and ETA, on a terminal only
    progress = tqdm.tqdm(total=tc.num_steps, initial=start_step, unit="step", dynamic_ncols=True)
  valid = task.valid or task.test
  train_metrics = None
  for step in range(start_step, tc.num_steps):
    batch = batches.batch(step)
    batch.pop("index")
    state, train_metrics = train_step(state, batch, rng, tc.label_smoothing)
    done = step + 1
    if progress is not None:
      progress.update(1)
    is_last = done == tc.num_steps
    if done % tc.log_every == 0 or is_last:
      scalars = _scalars(jax.device_get(train_metrics))
      scalars["learning_rate"] = float(make_schedule(tc)(done))
      writer.write(done, "train", scalars)
    eval_metrics = None
    if done % tc.eval_every == 0 or is_last:
      eval_metrics, records = evaluate(state, prepared, valid, config)
      writer.write(done, "valid", eval_metrics)
      logging.info("step %d valid: %s", done, json.dumps(_scalars(eval_metrics)))
    if done % tc.log_every == 0 or is_last:
      if eval_metrics is None:  # show one validation example, rotating
        config_small = config.copy_and_resolve_references()
        config_small.eval.max_examples = min(len(valid), config.batching.eval_batch_size)
        _, records = evaluate(state, prepared, valid, config_small)
      line = _log_line(done, scalars["loss"], records[(done // tc.log_every) % len(records)], task)
      (progress.write if progress is not None else print)(line)
    if done % tc.checkpoint_every == 0 or is_last:
      ckpt.save(done, state, _scalars(eval_metrics) if eval_metrics else None)
  if progress is not None:
    progress.close()
  if train_metrics is None:  # resumed a finished run: still write the final evaluation
    logging.info("training already complete at step %d", start_step)

  test_metrics, test_records = evaluate(state, prepared, task.test or valid, config)
  writer.write(int(state.step), "test", test_metrics)
  writer.close()
  heatmaps = write_heatmaps(test_records, task, workdir, config.eval.num_heatmaps)
  summary = {
      "step": int(state.step),
      "best_step": ckpt.best_step(),
      "test": test_metrics,
      "wall_time_s": time.time() - start_time,
      "heatmaps": [os.path.basename(p) for p in heatmaps],
  }
  _write_json(os.path.join(workdir, "summary.json"), summary)
  ckpt.close()
  logging.info("test: %s", json.dumps(_scalars(test_metrics)))
  return summary


# ---------------------------------------------------------------- eval and decode modes

def restore_for_inference(config: ml_collections.ConfigDict, workdir: str,
                          which: str = "best") -> tuple[TrainState, Prepared, int]:
  """The prepared task/model and the state of the ``best`` or ``latest`` checkpoint."""
  prepared = prepare(config)
  ckpt = _checkpointer(workdir, config)
  step = ckpt.best_step() if which == "best" else ckpt.latest_step()
  if step is None:
    ckpt.close()
    raise FileNotFoundError(f"no checkpoint in {os.path.join(workdir, 'checkpoints')}: "
                            "train first (--mode=train)")
  state = ckpt.restore(step, init_state(config, prepared))
  ckpt.close()
  return state, prepared, step


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, which: str = "best",
                        split: str = "test") -> dict:
  """Evaluates a saved checkpoint on a split; writes ``eval_{split}.json``."""
  state, prepared, step = restore_for_inference(config, workdir, which)
  examples = getattr(prepared.task, split)
  result, _ = evaluate(state, prepared, examples, config)
  result = {"checkpoint": which, "step": step, "split": split, **result}
  _write_json(os.path.join(workdir, f"eval_{split}.json"), result)
  return result


def decode_lines(config: ml_collections.ConfigDict, workdir: str, lines: Sequence[str],
                 which: str = "best", heatmap_dir: str | None = None) -> list[str]:
  """Translates raw input lines with a saved checkpoint; empty lines pass through.

  Unknown words become ``<unk>``; a line longer than the model's longest
  source raises ValueError naming the line.
  """
  state, prepared, _ = restore_for_inference(config, workdir, which)
  task = prepared.task
  tokens = [source_tokens(config.data, line) for line in lines]
  for number, toks in enumerate(tokens, 1):
    if len(toks) > prepared.max_src_len:
      raise ValueError(f"input line {number} has {len(toks)} tokens; the model's longest "
                       f"source is {prepared.max_src_len}")
  wanted = [i for i, toks in enumerate(tokens) if toks]
  examples = [Example(src=tokens[i], tgt=()) for i in wanted]
  outputs = [""] * len(lines)
  if not examples:
    return outputs
  batch_size = config.batching.eval_batch_size
  shape = (prepared.max_src_len, prepared.max_decode_len)
  from attnlab.data import encode_batch
  records = []
  for start in range(0, len(examples), batch_size):
    chunk = list(range(start, min(start + batch_size, len(examples))))
    batch = encode_batch(examples, chunk, task.src_vocab, task.tgt_vocab, shape, batch_size)
    decoded = jax.device_get(decode_batch(
        prepared.model, state.params, {k: batch[k] for k in ("src", "src_lengths")},
        prepared.max_decode_len, config.eval.beam_size, config.eval.length_penalty))
    for row, index in enumerate(chunk):
      length = int(decoded.lengths[row])
      prediction = [int(t) for t in decoded.tokens[row, :length]]
      outputs[wanted[index]] = detokenize(task.name, task.tgt_vocab.decode(prediction))
      records.append({"example": examples[index], "prediction": prediction,
                      "decode_attention": decoded.attention[row, :length, :len(examples[index].src)]})
  if heatmap_dir:
    os.makedirs(heatmap_dir, exist_ok=True)
    write_heatmaps(records, task, heatmap_dir, len(records), prefix="decode")
  return outputs
