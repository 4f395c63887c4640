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

import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

from attnlab import checkpointing, decoding, metrics as metrics_lib, parallel, plots
from attnlab.attention import hard as hard_lib
from attnlab.config import ConfigError, build_model, validate, validate_task
from attnlab.data import (PAD, TaskData, TrainBatches, build_task, encode_batch, eval_batches,
                          make_buckets)
from attnlab.data.corpus import tokenize as corpus_tokenize
from attnlab.data.tasks import Example

Array = jax.Array


class TrainState(train_state.TrainState):
  """Params, optimizer state and step (flax's TrainState), plus non-finite bookkeeping.

  Attributes:
    nonfinite_steps: how many updates were skipped for a non-finite loss or gradient.
    first_nonfinite_step: the first such step, -1 while there was none.
    reward_baseline: hard attention trained with REINFORCE only: the moving average of the
      per-example reward (minus the target NLL), the baseline of the score-function
      estimator (``attnlab.attention.hard``); stays 0 for every other model.
  """

  nonfinite_steps: Array = dataclasses.field(default_factory=lambda: jnp.zeros((), jnp.int32))
  first_nonfinite_step: Array = dataclasses.field(
      default_factory=lambda: jnp.full((), -1, jnp.int32))
  reward_baseline: Array = dataclasses.field(default_factory=lambda: jnp.zeros((), jnp.float32))


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
                        batch["tgt_in"], deterministic, rngs=rngs,
                        src_ext=batch.get("src_ext"))


def _train_step(state: TrainState, batch: dict, rng: Array, label_smoothing: float = 0.0,
                on_nonfinite: str = "skip") -> tuple[TrainState, dict]:
  """One optimizer step: (state, batch, rng) -> (state, metrics); ``train_step`` is its jit.

  Dropout draws from ``fold_in(rng, state.step)``, hard and monotonic attention's
  samples and noise (rng stream ``'sample'``) from ``fold_in`` of that key by 1. Hard
  attention trained with REINFORCE adds the score-function surrogate
  (``Seq2Seq.hard_attention_loss``) to the loss and updates ``reward_baseline``; the
  coverage and guided-alignment losses (``Seq2Seq.attention_losses``, weights from
  ``train.coverage_loss_weight`` / ``guided_alignment_weight``) are added too and reported
  unweighted as ``coverage_loss`` / ``guided_alignment_loss``. The
  reported ``loss`` stays the target NLL, comparable across models. A non-finite loss or
  gradient never reaches the parameters: the update is skipped (the step still
  advances, so the data order is unchanged) and counted. With
  ``on_nonfinite='stop'`` every update after the first non-finite one is
  skipped too, so the parameters stay the last good ones until the host sees
  ``first_nonfinite_step`` and stops (no per-step host sync).
  """
  step_rng = jax.random.fold_in(rng, state.step)
  rngs = {"dropout": step_rng, "sample": jax.random.fold_in(step_rng, 1)}
  mask = _target_mask(batch)

  def loss_fn(params):
    (logits, attention), sown = state.apply_fn(
        {"params": params}, batch["src"], batch["src_lengths"], batch["tgt_in"], False,
        rngs=rngs, mutable=[hard_lib.SAMPLES], src_ext=batch.get("src_ext"))
    loss_sum, count = metrics_lib.sequence_cross_entropy(
        logits, batch["tgt_out"], mask, label_smoothing)
    loss = loss_sum / jnp.maximum(count, 1)
    extra = {}
    if sown:  # hard attention with REINFORCE sampled positions (static: depends on the model)
      token_nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["tgt_out"])
      rewards = -jnp.sum(jnp.where(mask, token_nll, 0.0), axis=1)  # [batch]
      surrogate, baseline = state.apply_fn(
          {"params": params}, sown, rewards, state.reward_baseline, mask,
          batch["example_mask"], state.step > 0, method="hard_attention_loss")
      extra = {"reinforce_loss": surrogate, "reward_baseline": baseline}
    # Coverage and guided-alignment losses (attnlab.losses), weighted by the model's
    # coverage_loss_weight / guided_alignment_weight; nothing when both are 0.
    attention_loss, attention_metrics = state.apply_fn(
        {"params": params}, attention, mask, batch["src_lengths"], batch.get("alignment"),
        method="attention_losses")
    extra = {**extra, **attention_metrics}
    return (loss + extra.get("reinforce_loss", 0.0) + attention_loss,
            (loss, count, extra))

  (_, (loss, count, extra)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  apply = finite & (state.first_nonfinite_step < 0) if on_nonfinite == "stop" else finite
  updated = state.apply_gradients(grads=grads)
  keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(apply, n, o), new, old)  # noqa: E731
  new_state = updated.replace(
      params=keep(updated.params, state.params),
      opt_state=keep(updated.opt_state, state.opt_state),
      nonfinite_steps=state.nonfinite_steps + (~finite).astype(jnp.int32),
      first_nonfinite_step=jnp.where((state.first_nonfinite_step < 0) & ~finite,
                                     state.step, state.first_nonfinite_step),
      reward_baseline=jnp.where(apply, extra.get("reward_baseline", state.reward_baseline),
                                state.reward_baseline))
  return new_state, {"loss": loss, "tokens": count, "l2_grads": grad_norm,
                     "l2_params": optax.tree.norm(new_state.params),
                     "nonfinite_steps": new_state.nonfinite_steps, **extra}


train_step = jax.jit(_train_step, static_argnames=("label_smoothing", "on_nonfinite"),
                     donate_argnums=0)


def _train_steps(state: TrainState, batches: dict, rng: Array, label_smoothing: float = 0.0,
                 on_nonfinite: str = "skip") -> tuple[TrainState, dict]:
  """``len(batches)`` optimizer steps in one program: batches [steps, batch, ...] -> the
  state after the last step and that step's metrics (``train_step`` applied in turn, to float
  rounding: XLA may fuse the scanned program differently)."""
  def body(state, batch):
    state, metrics = _train_step(state, batch, rng, label_smoothing, on_nonfinite)
    return state, metrics

  state, metrics = jax.lax.scan(body, state, batches)
  return state, jax.tree.map(lambda x: x[-1], metrics)


@functools.lru_cache(maxsize=None)
def sharded_train_step(mesh: jax.sharding.Mesh, steps: int = 1, label_smoothing: float = 0.0,
                       on_nonfinite: str = "skip"):
  """``train_step`` (steps=1), or ``steps`` of them per dispatch, jitted with explicit shardings.

  Parameters, optimizer state, the key and the metrics are replicated over ``mesh``; batches
  are split by rows over its ``data`` axis ([batch, ...], or [steps, batch, ...] when
  ``steps > 1``). Returns ``step(state, batch, rng) -> (state, metrics)`` (state donated).
  """
  rep = parallel.replicated(mesh)
  fn = functools.partial(_train_steps if steps > 1 else _train_step,
                         label_smoothing=label_smoothing, on_nonfinite=on_nonfinite)
  return jax.jit(fn, in_shardings=(rep, parallel.batch_sharded(mesh, stacked=steps > 1), rep),
                 out_shardings=(rep, rep), donate_argnums=0)


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


def prepare(config: ml_collections.ConfigDict) -> Prepared:
  """Validates the config, builds the task, the length buckets and the model."""
  validate(config)
  try:
    task = build_task(config.data)
  except (ValueError, OSError) as e:  # bad corpus: missing, empty, not UTF-8, lines without tabs
    raise DataError(f"config.data ({config.data.task}): {e}") from e
  validate_task(config, task.has_alignment)
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
  copy = is_copy_model(prepared.model)
  for batch in eval_batches(examples, task.src_vocab, task.tgt_vocab,
                            config.batching.eval_batch_size, prepared.buckets, copy=copy):
    device_batch = _on_mesh({k: v for k, v in batch.items() if k != "index"}, prepared.mesh)
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
          "oovs": copy_oovs(task, examples[index], prepared.model),
      }
  # A copy model's references are in extended ids too: a copied OOV word counts as correct.
  references = [task.tgt_vocab.encode(r["example"].tgt) if r["oovs"] is None
                else task.tgt_vocab.encode_extended(r["example"].tgt, r["oovs"])
                for r in records]
  predictions = [r["prediction"] for r in records]
  correct = np.array([metrics_lib.strip_special(p) == ref
                      for p, ref in zip(predictions, references)], float)
  src_lengths = np.array([len(r["example"].src) for r in records])
  boundaries = _length_boundaries(config, src_lengths)
  result = {
      "loss": sums["loss_sum"] / max(sums["tokens"], 1),
      "perplexity": (metrics_lib.perplexity(sums["loss_sum"], max(sums["tokens"], 1))
                     if np.isfinite(sums["loss_sum"]) else float("nan")),
      "token_accuracy": sums["correct"] / max(sums["tokens"], 1),
      "exact_match": float(correct.mean()),
      "exact_match_by_length": metrics_lib.per_bucket_mean(correct, src_lengths, boundaries),
      "num_examples": len(records),
  }
  if prepared.model.decoder != "none":
    result["attention_entropy"] = sums["entropy_sum"] / max(sums["entropy_rows"], 1)
  if task.is_text:
    hyps = [" ".join(task.tgt_vocab.decode(r["prediction"], r["oovs"])) for r in records]
    refs = [" ".join(r["example"].tgt) for r in records]
    result["bleu"] = metrics_lib.corpus_bleu(hyps, refs)
    sentence_bleu = np.array([metrics_lib.corpus_bleu([h], [r]) for h, r in zip(hyps, refs)])
    result["bleu_by_length"] = metrics_lib.per_bucket_mean(sentence_bleu, src_lengths, boundaries)
  if task.has_alignment and prepared.model.decoder != "none":
    result["alignment_error_rate"] = metrics_lib.corpus_alignment_error_rate(
        [r["forced_attention"] for r in records], [r["example"].alignment for r in records])
    result["alignment_error_rate_by_length"] = metrics_lib.per_bucket_alignment_error_rate(
        [r["forced_attention"] for r in records], [r["example"].alignment for r in records],
        src_lengths, boundaries)
  return result, records


def _on_mesh(batch: dict, mesh) -> dict:
  """An evaluation batch split by rows over ``mesh`` when it divides evenly (one process);
  otherwise left on the host, and the jitted call computes it whole on every device."""
  if (mesh is None or jax.process_count() > 1 or
      any(np.ndim(v) == 0 or np.shape(v)[0] % mesh.devices.size for v in batch.values())):
    return batch
  return parallel.shard_batch(batch, mesh)


def _scalars(metrics: dict) -> dict:
  """The scalar entries of a metrics dict, as Python floats."""
  return {k: float(v) for k, v in metrics.items()
          if isinstance(v, (int, float, np.number)) or (isinstance(v, np.ndarray) and v.ndim == 0)}


# ---------------------------------------------------------------- outputs

class MetricWriter:
  """metrics.jsonl plus TensorBoard scalars, written by process 0 only.

  resume_step: records after this step (written by a run that died after its
  last checkpoint) are dropped, so a resumed run's file reads like an
  uninterrupted run's.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self.enabled = jax.process_index() == 0
    if not self.enabled:
      return
    from tensorboardX import SummaryWriter  # imported here: only process 0 writes
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        kept = [line for line in f if _step_of(line) <= resume_step]
      with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(kept)
      os.replace(path + ".tmp", path)
    self.jsonl = open(path, "a", encoding="utf-8")
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


def _step_of(line: str) -> int:
  """The step of a metrics.jsonl line; a torn last line (a crash mid-write) counts as later."""
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return sys.maxsize


def is_copy_model(model) -> bool:
  """Whether ``model`` is a copy model (pointer-generator: predicts extended ids)."""
  return bool(getattr(model, "copy", False))


def copy_oovs(task: TaskData, example: Example, model) -> tuple[str, ...] | None:
  """A copy model's extended-vocabulary slots for ``example``: its source words outside the
  target vocabulary (extended id ``len(tgt_vocab) + k`` is the k-th); None for other models."""
  return task.tgt_vocab.source_oovs(example.src) if is_copy_model(model) else None


def _prediction_tokens(record: dict, task: TaskData) -> list[str]:
  """Every predicted token of a record (EOS included), copied OOVs as their source words."""
  return [task.tgt_vocab.token(t, record.get("oovs")) for t in record["prediction"]]


def _prediction_text(record: dict, task: TaskData) -> list[str]:
  """The predicted sentence of a record (up to EOS), copied OOVs as their source words."""
  return task.tgt_vocab.decode(record["prediction"], record.get("oovs"))


def write_heatmaps(records: Sequence[dict], task: TaskData, directory: str, count: int,
                   prefix: str = "attention") -> list[str]:
  """Attention heatmaps (source on x, output on y) of the first ``count`` records."""
  paths = []
  for i, record in enumerate(records[:count]):
    src = list(record["example"].src)
    out = _prediction_tokens(record, task)
    path = os.path.join(directory, f"{prefix}_{i}.png")
    plots.plot_attention(record["decode_attention"], src, out, path,
                         title=f"{detokenize(task.name, src)} -> "
                               f"{detokenize(task.name, _prediction_text(record, task))}")
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
          "prediction": _prediction_tokens(record, task),
          "attention": np.round(np.asarray(record["decode_attention"], float), 4).tolist()}


def _log_line(step: int, loss: float, record: dict, task: TaskData) -> str:
  example = record["example"]
  return (f"step {step:6d} | loss {loss:.4f} | input {detokenize(task.name, example.src)} | "
          f"target {detokenize(task.name, example.tgt)} | prediction "
          f"{detokenize(task.name, _prediction_text(record, task))}")


# ---------------------------------------------------------------- the loop

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


def _dispatch_group(batches: TrainBatches, step: int, tc) -> list[dict]:
  """Host batches of the next dispatch: up to ``tc.steps_per_dispatch`` consecutive steps from
  ``step`` whose batches share one shape, never past the next log/eval/checkpoint step."""
  following = [tc.num_steps] + [(step // every + 1) * every
                                for every in (tc.log_every, tc.eval_every, tc.checkpoint_every)]
  count = min(tc.steps_per_dispatch, min(following) - step)
  group = []
  for s in range(step, step + count):
    batch = batches.batch(s)
    batch.pop("index")
    if group and any(batch[k].shape != group[0][k].shape for k in batch):
      break
    group.append(batch)
  return group


def _run_group(state: TrainState, group: list[dict], rng: Array, mesh, tc):
  """Runs a dispatch group: one ``steps_per_dispatch``-step program when the group is full,
  else one step at a time. Returns the state and the last step's metrics."""
  options = (tc.label_smoothing, tc.on_nonfinite)
  if len(group) > 1 and len(group) == tc.steps_per_dispatch:
    stacked = {k: np.stack([b[k] for b in group]) for k in group[0]}
    return sharded_train_step(mesh, len(group), *options)(
        state, parallel.shard_batch(stacked, mesh, stacked=True), rng)
  step_fn = sharded_train_step(mesh, 1, *options)
  for batch in group:
    state, metrics = step_fn(state, parallel.shard_batch(batch, mesh), rng)
  return state, metrics


def init_state(config: ml_collections.ConfigDict, prepared: Prepared) -> TrainState:
  """Fresh parameters (from config.seed) and optimizer state."""
  src_len, tgt_len = prepared.buckets[0]
  dummy_src = jnp.ones((1, src_len), jnp.int32)
  dummy_tgt = jnp.ones((1, tgt_len), jnp.int32)
  params = jax.jit(prepared.model.init)(
      jax.random.key(config.seed), dummy_src, jnp.ones((1,), jnp.int32), dummy_tgt,
      src_ext=dummy_src)["params"]  # src_ext: read by copy models only
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


class Interrupted(Exception):
  """Training stopped by SIGTERM/SIGINT after saving a checkpoint at ``step``."""

  def __init__(self, step: int, signum: int):
    super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint "
                     "saved, run the same command again to resume")
    self.step, self.signum = step, signum


class NonFiniteError(FloatingPointError):
  """The loss or a gradient became NaN/inf and ``train.on_nonfinite='stop'``."""


@contextlib.contextmanager
def _stop_on_signals():
  """Turns SIGTERM and SIGINT into a flag the loop checks after each step.

  Yields a list that holds the signal number once one arrived. Only the main
  thread can install handlers; elsewhere the flag simply never sets.
  """
  received: list[int] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  handler = lambda signum, frame: received.append(signum)  # noqa: E731
  previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


def _check_finite(state: TrainState, config, reported: list[int]) -> None:
  """Stops (mode 'stop') or warns (mode 'skip') about skipped non-finite updates."""
  first = int(state.first_nonfinite_step)
  if first < 0:
    return
  if config.train.on_nonfinite == "stop":
    raise NonFiniteError(
        f"non-finite loss or gradient at step {first + 1}; the update was not applied and "
        "the last good checkpoint is kept (train.on_nonfinite='skip' skips such updates)")
  count = int(state.nonfinite_steps)
  if count > reported[0]:
    logging.warning("skipped %d update(s) with a non-finite loss or gradient (first at step %d)",
                    count, first + 1)
    reported[0] = count


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from the workdir), evaluates, checkpoints; returns the summary.

  Raises:
    Interrupted: SIGTERM or SIGINT arrived; a checkpoint of the current step was saved.
    NonFiniteError: a non-finite loss/gradient with ``train.on_nonfinite='stop'``.
  """
  if config.get("num_seeds", 1) > 1:
    from attnlab import multiseed  # imported here: multiseed builds on this module
    return multiseed.train_and_evaluate(config, workdir)
  start_time = time.time()
  prepared = prepare(config)
  mesh = prepared.mesh = data_parallel_mesh(config)
  task = prepared.task
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    _write_json(os.path.join(workdir, "config.json"), config.to_dict())
    _write_json(os.path.join(workdir, "vocab.json"),
                {"src": list(task.src_vocab.tokens), "tgt": list(task.tgt_vocab.tokens)})
  logging.info("%s", parallel.describe(mesh))
  logging.info("task %s: %d/%d/%d examples, buckets %s", task.name, len(task.train),
               len(task.valid), len(task.test), prepared.buckets)

  state = parallel.replicate(init_state(config, prepared), mesh)
  logging.info("model: %d parameters", sum(x.size for x in jax.tree.leaves(state.params)))
  ckpt = _checkpointer(workdir, config)
  restored = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
    logging.warning("resumed from step %d", int(state.step))
  start_step = int(state.step)

  batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab,
                         config.batching.batch_size, prepared.buckets, config.seed,
                         copy=is_copy_model(prepared.model))
  rng = jax.random.fold_in(jax.random.key(config.seed), 1)  # 0 was used for init
  writer = MetricWriter(workdir, resume_step=start_step)
  tc = config.train
  progress = None
  if sys.stderr.isatty() and jax.process_index() == 0:
    import tqdm  # progress bar with rate and ETA, on a terminal only
    progress = tqdm.tqdm(total=tc.num_steps, initial=start_step, unit="step", dynamic_ncols=True)
  valid = task.valid or task.test
  reported_nonfinite = [int(state.nonfinite_steps)]
  try:
    with _stop_on_signals() as received:
      step = start_step
      while step < tc.num_steps:
        group = _dispatch_group(batches, step, tc)
        state, train_metrics = _run_group(state, group, rng, mesh, tc)
        done = step = step + len(group)
        if progress is not None:
          progress.update(len(group))
        is_last = done == tc.num_steps
        log_now = done % tc.log_every == 0 or is_last
        eval_now = done % tc.eval_every == 0 or is_last
        save_now = done % tc.checkpoint_every == 0 or is_last
        if log_now or eval_now or save_now or received:
          _check_finite(state, config, reported_nonfinite)
        if received:
          ckpt.save(done, state)
          raise Interrupted(done, received[0])
        if log_now:
          scalars = _scalars(jax.device_get(train_metrics))
          scalars["learning_rate"] = float(make_schedule(tc)(done))
          writer.write(done, "train", scalars)
        eval_metrics = None
        if eval_now:
          eval_metrics, records = evaluate(state, prepared, valid, config)
          writer.write(done, "valid", eval_metrics)
          logging.info("step %d valid: %s", done, json.dumps(_scalars(eval_metrics)))
        if log_now:
          if eval_metrics is None:  # show one validation example, rotating
            config_small = config.copy_and_resolve_references()
            config_small.eval.max_examples = min(len(valid), config.batching.eval_batch_size)
            _, records = evaluate(state, prepared, valid, config_small)
          record = records[(done // tc.log_every) % len(records)]
          line = _log_line(done, scalars["loss"], record, task)
          (progress.write if progress is not None else print)(line, flush=True)
        if save_now:
          ckpt.save(done, state, _scalars(eval_metrics) if eval_metrics else None)
  except BaseException:
    writer.close()
    ckpt.close()
    raise
  finally:
    if progress is not None:
      progress.close()
  if start_step >= tc.num_steps:
    logging.warning("training already complete at step %d", start_step)

  test_metrics, test_records = evaluate(state, prepared, task.test or valid, config)
  writer.write(int(state.step), "test", test_metrics)
  writer.close()
  heatmaps = (write_heatmaps(test_records, task, workdir, config.eval.num_heatmaps)
              if jax.process_index() == 0 else [])
  summary = {
      "step": int(state.step),
      "best_step": ckpt.best_step(),
      "nonfinite_steps": int(state.nonfinite_steps),
      "test": test_metrics,
      "wall_time_s": time.time() - start_time,
      "heatmaps": [os.path.basename(p) for p in heatmaps],
      "longest_test_example": longest_example(test_records, task),
  }
  if jax.process_index() == 0:
    _write_json(os.path.join(workdir, "summary.json"), summary)
  ckpt.close()
  logging.info("test: %s", json.dumps(_scalars(test_metrics)))
  return summary


# ---------------------------------------------------------------- eval and decode modes

def restore_for_inference(config: ml_collections.ConfigDict, workdir: str,
                          which: str = "best") -> tuple[TrainState, Prepared, int]:
  """The prepared task/model and the state of the ``best`` or ``latest`` checkpoint."""
  if config.get("num_seeds", 1) > 1:
    raise ConfigError("num_seeds", "eval and decode modes restore one model, but this "
                      "workdir's checkpoints hold num_seeds stacked models (attnlab.multiseed)")
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
  source raises ValueError naming the line, or is truncated with a warning
  (``eval.on_long_input``).
  """
  state, prepared, _ = restore_for_inference(config, workdir, which)
  task = prepared.task
  tokens = [source_tokens(config.data, line) for line in lines]
  for number, toks in enumerate(tokens, 1):
    if len(toks) > prepared.max_src_len:
      message = (f"input line {number} has {len(toks)} tokens; the model's longest source is "
                 f"{prepared.max_src_len}")
      if config.eval.on_long_input == "error":
        raise ValueError(message + " (eval.on_long_input='truncate' cuts such lines)")
      logging.warning("%s: truncated", message)
      tokens[number - 1] = toks[:prepared.max_src_len]
  wanted = [i for i, toks in enumerate(tokens) if toks]
  examples = [Example(src=tokens[i], tgt=()) for i in wanted]
  outputs = [""] * len(lines)
  if not examples:
    return outputs
  batch_size = config.batching.eval_batch_size
  shape = (prepared.max_src_len, prepared.max_decode_len)
  records = []
  for start in range(0, len(examples), batch_size):
    chunk = list(range(start, min(start + batch_size, len(examples))))
    batch = encode_batch(examples, chunk, task.src_vocab, task.tgt_vocab, shape, batch_size,
                         copy=is_copy_model(prepared.model))
    decoded = jax.device_get(decode_batch(
        prepared.model, state.params,
        {k: batch[k] for k in ("src", "src_lengths", "src_ext") if k in batch},
        prepared.max_decode_len, config.eval.beam_size, config.eval.length_penalty,
        config.eval.coverage_penalty))
    for row, index in enumerate(chunk):
      length = int(decoded.lengths[row])
      prediction = [int(t) for t in decoded.tokens[row, :length]]
      oovs = copy_oovs(task, examples[index], prepared.model)
      outputs[wanted[index]] = detokenize(task.name, task.tgt_vocab.decode(prediction, oovs))
      records.append({"example": examples[index], "prediction": prediction, "oovs": oovs,
                      "decode_attention": decoded.attention[row, :length, :len(examples[index].src)]})
  if heatmap_dir:
    os.makedirs(heatmap_dir, exist_ok=True)
    write_heatmaps(records, task, heatmap_dir, len(records), prefix="decode")
  return outputs
