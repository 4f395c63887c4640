"""The one training loop: ``train_and_evaluate(config, workdir)``.

Its log / evaluate / checkpoint / signal rhythm is written once and drives a *stepper*:
``SingleModelStepper`` (one model, data-parallel over the device mesh, ``steps_per_dispatch``
steps a call) or ``multiseed.MultiSeedStepper`` (``num_seeds`` seeds vmapped). A stepper has
``state`` (what is checkpointed), ``step``, ``advance(step) -> (next step, raw metrics)``,
``train_metrics(raw, i)``, ``states()`` (one per model), ``labels`` / ``subdirs`` (per model:
the log-line prefix and the folder under the workdir its outputs go to), ``summary``,
``lower_train_step()`` (its train program on the largest batch shape, for its memory) and
``cost`` (summary.json's ``cost``, which the loop records: ``attnlab.training.cost``).

With ``eval.test_at_steps``, the test split is also evaluated at those training steps
(``writer.TEST_AT_STEP`` records, ``test_outcomes_step<k>.jsonl``), so variants that stop at
different steps can still be compared after equal amounts of training; early stopping then
never ends a run before the last of those steps.

Running the same command again resumes from the latest checkpoint (a finished run is a no-op
that says so). The data order is a pure function of (seed, step) and dropout keys are
``fold_in(rng, step)``, so a resumed run sees what an uninterrupted one would.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from attnlab import parallel, run_record
from attnlab.data import TrainBatches
from attnlab.training import early_stopping, run_page, workdir as workdir_lib
from attnlab.training.cost import TrainTimer, cost_summary, largest_batch, train_step_memory
from attnlab.training.evaluation import (evaluate, evaluate_test_beams, log_line,
                                         longest_example, scalars, write_heatmaps,
                                         write_test_outcomes)
from attnlab.training.multiseed import MultiSeedStepper, mean_and_std
from attnlab.training.preparation import (Prepared, data_parallel_mesh, init_state, prepare,
                                          train_batches)
from attnlab.training.signals import Interrupted, check_finite, stop_on_signals
from attnlab.training.steps import TrainState, make_schedule, sharded_train_step
from attnlab.training.writer import TEST_AT_STEP, MetricWriter

Array = jax.Array


def dispatch_group(batches: TrainBatches, step: int, tc: ml_collections.ConfigDict,
                   test_at_steps: tuple[int, ...] = ()) -> list[dict]:
  """Host batches of the next dispatch: up to ``tc.steps_per_dispatch`` consecutive steps from
  ``step`` whose batches share one shape, never past the next log/eval/checkpoint step or
  ``test_at_steps`` step."""
  following = [tc.num_steps] + [(step // every + 1) * every
                                for every in (tc.log_every, tc.eval_every, tc.checkpoint_every)]
  following += [s for s in test_at_steps if s > step]
  count = min(tc.steps_per_dispatch, min(following) - step)
  group = []
  for s in range(step, step + count):
    batch = batches.batch(s)
    batch.pop("index")
    if group and any(batch[k].shape != group[0][k].shape for k in batch):
      break
    group.append(batch)
  return group


def run_group(state: TrainState, group: list[dict], rng: Array, mesh: jax.sharding.Mesh,
              tc: ml_collections.ConfigDict) -> tuple[TrainState, dict]:
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


class SingleModelStepper:
  """The loop's stepper for one model: data-parallel over ``mesh`` (``parallel.*``), up to
  ``train.steps_per_dispatch`` steps per call; outputs in the workdir itself."""

  labels = ("",)
  subdirs = ("",)
  cost = None  # summary.json's "cost", set by the loop

  def __init__(self, config: ml_collections.ConfigDict, prepared: Prepared,
               mesh: jax.sharding.Mesh):
    self.config, self.prepared, self.mesh = config, prepared, mesh
    self.state = parallel.replicate(init_state(config, prepared), mesh)
    self.batches = train_batches(config, prepared, config.seed)
    self.rng = jax.random.fold_in(jax.random.key(config.seed), 1)  # 0 was used for init

  @property
  def step(self) -> int:
    return int(self.state.step)

  def advance(self, step: int) -> tuple[int, dict]:
    group = dispatch_group(self.batches, step, self.config.train,
                           tuple(self.config.eval.test_at_steps))
    self.state, metrics = run_group(self.state, group, self.rng, self.mesh, self.config.train)
    return step + len(group), metrics

  def train_metrics(self, raw: dict, index: int) -> dict:
    return scalars(jax.device_get(raw))

  def states(self) -> list[TrainState]:
    return [self.state]

  def lower_train_step(self) -> tuple[jax.stages.Lowered, str]:
    """The one-step train program (as ``run_group`` runs it) on ``cost.largest_batch``,
    lowered, and a description of it."""
    batch, tc = largest_batch(self.batches), self.config.train
    lowered = sharded_train_step(self.mesh, 1, tc.label_smoothing, tc.on_nonfinite).lower(
        self.state, parallel.shard_batch(batch, self.mesh), self.rng)
    return lowered, (f"one model on {self.mesh.size} device(s), batch {batch['src'].shape[0]}, "
                     f"src_len {batch['src'].shape[1]}, tgt_len {batch['tgt_in'].shape[1]}")

  def summary(self, per_model: list[dict], base: dict) -> dict:
    return {**base, **per_model[0], "cost": self.cost}


def make_stepper(config: ml_collections.ConfigDict, prepared: Prepared):
  """The stepper ``config`` asks for (``num_seeds > 1``: vmapped seeds); sets
  ``prepared.mesh`` where evaluation shards its batches."""
  if config.num_seeds > 1:
    return MultiSeedStepper(config, prepared)
  prepared.mesh = data_parallel_mesh(config)
  logging.info("%s", parallel.describe(prepared.mesh))
  return SingleModelStepper(config, prepared, prepared.mesh)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains (resuming from the workdir), evaluates, checkpoints; returns the summary.

  Holds the workdir's lock throughout (a second process gets ``WorkdirError``); a run that
  already finished returns its summary without training or evaluating again.

  Raises:
    Interrupted: SIGTERM or SIGINT arrived; a checkpoint of the current step was saved.
    NonFiniteError: a non-finite loss/gradient with ``train.on_nonfinite='stop'``.
    WorkdirError: the workdir is unusable, busy, or holds another model's run.
  """
  workdir_lib.check(workdir, create=True)
  workdir_lib.check_same_model(config, workdir)
  with workdir_lib.writer_lock(workdir):
    finished = workdir_lib.finished_summary(config, workdir)
    if finished is not None:
      logging.warning("this run is already complete at step %d (%s); nothing to do: "
                      "--mode=eval re-evaluates it, a larger train.num_steps trains on",
                      finished["step"], os.path.join(workdir, run_record.SUMMARY))
      return finished
    return _train(config, workdir)


def _write_run_files(config: ml_collections.ConfigDict, workdir: str, prepared: Prepared):
  """config.json, vocab.json and run.json: what eval and decode rebuild the run from."""
  workdir_lib.write_json(os.path.join(workdir, run_record.CONFIG), config.to_dict())
  workdir_lib.write_vocab(workdir, prepared.task)  # with its checksum (read_vocab checks it)
  workdir_lib.write_json(os.path.join(workdir, run_record.RUN), prepared.shapes())


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict:
  start_time = time.time()
  prepared = prepare(config)
  stepper = make_stepper(config, prepared)
  task = prepared.task
  writes = jax.process_index() == 0
  if writes:
    _write_run_files(config, workdir, prepared)
  logging.info("task %s: %d/%d/%d examples, buckets %s", task.name, len(task.train),
               len(task.valid), len(task.test), prepared.buckets)
  logging.info("model: %d parameters",
               sum(x.size for x in jax.tree.leaves(stepper.states()[0].params)))
  ckpt = workdir_lib.checkpointer(workdir, config)
  try:
    restored = ckpt.restore_latest(stepper.state)
  except BaseException:  # Ctrl-C while restoring: close orbax's threads before exiting
    ckpt.close()
    raise
  if restored is not None:
    stepper.state = restored
    logging.warning("resumed from step %d", stepper.step)
  start_step = stepper.step
  dirs = [os.path.join(workdir, d) for d in stepper.subdirs]
  for d in dirs:
    os.makedirs(d, exist_ok=True)
  writers = [MetricWriter(d, resume_step=start_step, config=config, task=task) for d in dirs]
  progress = None
  if sys.stderr.isatty() and writes:
    import tqdm  # progress bar with rate and ETA, on a terminal only
    progress = tqdm.tqdm(total=config.train.num_steps, initial=start_step, unit="step",
                         dynamic_ncols=True)
  history = early_stopping.valid_history(dirs, config.train.best_metric, start_step)
  try:
    with stop_on_signals() as received:
      _loop(config, prepared, stepper, writers, ckpt, progress, received, history)
    if start_step >= config.train.num_steps:
      logging.warning("training already complete at step %d", start_step)
    best = ckpt.best_step()
    if best not in (None, stepper.step):
      # Every run, stopped early or not, is tested with the checkpoint validation chose
      # (``train.best_metric``; with vmapped seeds, their mean).
      # A best checkpoint that no longer reads is moved aside (one line) and the run is
      # tested with its last state instead.
      found = ckpt.restore_first([best], stepper.state)
      if found is None:
        logging.warning("the best checkpoint, step %d, does not read; testing step %d",
                        best, stepper.step)
      else:
        logging.warning("trained to step %d; testing the best checkpoint, step %d",
                        stepper.step, best)
        stepper.state = found[1]
    return _finish(config, workdir, prepared, stepper, writers, ckpt, dirs, start_time)
  except BaseException:  # signals, errors, Ctrl-C in the final evaluation: close, then raise
    for writer in writers:
      writer.close()
    ckpt.close()
    raise
  finally:
    if progress is not None:
      progress.close()


def _loop(config, prepared: Prepared, stepper, writers, ckpt, progress, received,
          history: list[float]) -> None:
  """Steps to ``train.num_steps``: logs, evaluates on the validation split and saves every
  ``log_every`` / ``eval_every`` / ``checkpoint_every`` steps and at the last; on a signal,
  saves and raises ``Interrupted``. ``history``: the validation ``best_metric`` so far (mean
  over seeds), extended here; the loop ends early when ``early_stopping.should_stop``."""
  tc, task = config.train, prepared.task
  valid = task.valid or task.test
  reported = [[int(s.nonfinite_steps)] for s in stepper.states()]
  step = stepper.step
  memory = train_step_memory(stepper) if tc.measure_memory else None
  timer = TrainTimer(step)
  patience = tc.early_stopping_patience
  deltas = (tc.early_stopping_min_delta, tc.early_stopping_min_relative_delta)
  test_steps = set(config.eval.test_at_steps)
  # Early stopping waits for the last matched-step test, so every run has every such point.
  stop_from = max(test_steps, default=0)
  while step < tc.num_steps and not (step >= stop_from and early_stopping.should_stop(
      history, tc.best_mode, patience, *deltas)):
    done, raw = stepper.advance(step)
    if progress is not None:
      progress.update(done - step)
    step = done
    is_last = done == tc.num_steps
    log_now = done % tc.log_every == 0 or is_last
    eval_now = done % tc.eval_every == 0 or is_last
    save_now = done % tc.checkpoint_every == 0 or is_last
    test_now = done in test_steps
    if log_now or eval_now or save_now or test_now or received:
      timer.stop(done, raw)  # a window of training alone: what follows is not timed
      for state, seen in zip(stepper.states(), reported):
        check_finite(state, config, seen)
    if received:
      ckpt.save(done, stepper.state)
      raise Interrupted(done, received[0])
    valid_metrics = []
    if log_now or eval_now or test_now:
      for i, state in enumerate(stepper.states()):
        records = None
        if log_now:
          train_scalars = stepper.train_metrics(raw, i)
          train_scalars["learning_rate"] = float(make_schedule(tc)(done)) * train_scalars.get(
              "learning_rate_scale", 1.0)  # reduce_on_plateau's scale (steps.make_optimizer)
          writers[i].write(done, "train", train_scalars)
        if test_now and task.test:  # matched-step comparisons (module doc)
          test_result, test_records = evaluate(state, prepared, task.test, config)
          writers[i].write(done, TEST_AT_STEP, test_result, test_records)
        if eval_now:
          result, records = evaluate(state, prepared, valid, config)
          writers[i].write(done, "valid", result, records)
          valid_metrics.append(scalars(result))
          logging.info("%sstep %d valid: %s", stepper.labels[i], done, valid_metrics[-1])
        if log_now:
          if records is None:  # show one validation example, rotating
            small = config.copy_and_resolve_references()
            small.eval.max_examples = min(len(valid), config.batching.eval_batch_size)
            _, records = evaluate(state, prepared, valid, small)
          record = records[(done // tc.log_every) % len(records)]
          line = stepper.labels[i] + log_line(done, train_scalars["loss"], record, task)
          if progress is not None:
            progress.write(line)  # above the bar (tqdm.write takes no flush: it flushes)
          else:
            print(line, flush=True)
    if valid_metrics:
      history.append(mean_and_std(valid_metrics)[0].get(tc.best_metric, float("nan")))
      if done >= stop_from and early_stopping.should_stop(history, tc.best_mode, patience,
                                                          *deltas):
        logging.warning("stopping early at step %d: validation %s has not improved for %d "
                        "evaluations", done, tc.best_metric, patience)
        save_now = True
    if save_now:
      ckpt.save(done, stepper.state, mean_and_std(valid_metrics)[0] if valid_metrics else None)
    if log_now or eval_now or save_now or test_now:
      timer.start(done)
  stepper.cost = cost_summary(timer, memory)


def stopped_early(ckpt, config: ml_collections.ConfigDict) -> bool:
  """Whether training ended before ``train.num_steps`` (``early_stopping``)."""
  return (ckpt.latest_step() or 0) < config.train.num_steps


def _finish(config, workdir: str, prepared: Prepared, stepper, writers, ckpt, dirs,
            start_time: float) -> dict:
  """The final test evaluation, heatmaps, summary.json and report.html of a trained run.

  With ``eval.test_beam_sizes``, each model's test split is decoded again with each size:
  its summary entry (``summary`` itself, or each of ``summary["seeds"]``) gets
  ``"test_beam": {str(size): metrics as "test"}`` and its folder
  ``test_outcomes_<greedy|beam<size>>.jsonl``; a multi-seed summary also gets the mean and
  std over seeds as ``"test_beam"`` / ``"test_beam_std"``.
  """
  task = prepared.task
  per_model, test_records_per_model = [], []
  for state, writer, directory in zip(stepper.states(), writers, dirs):
    test_metrics, test_records = evaluate(state, prepared, task.test or task.valid, config)
    writer.write(int(state.step), "test", test_metrics, test_records)
    writer.close()
    test_records_per_model.append(test_records)
    heatmaps = (write_heatmaps(test_records, task, directory, config.eval.num_heatmaps)
                if jax.process_index() == 0 else [])
    per_model.append({
        "nonfinite_steps": int(state.nonfinite_steps),
        "test": test_metrics,
        "heatmaps": [os.path.relpath(p, workdir) for p in heatmaps],
        "longest_test_example": longest_example(test_records, task),
    })
    # eval.test_beam_sizes: the same model on the same test sentences, decoded with each
    # beam too ("test_beam": {"5": metrics as "test"}, test_outcomes_beam5.jsonl).
    beams = evaluate_test_beams(state, prepared, task.test or task.valid, config)
    for beam_size, (beam_metrics, beam_records) in beams.items():
      if jax.process_index() == 0:
        write_test_outcomes(beam_records, directory, beam_size)
      logging.info("test, beam %d: %s", beam_size, scalars(beam_metrics))
    if beams:
      per_model[-1]["test_beam"] = {str(k): m for k, (m, _) in beams.items()}
  summary = stepper.summary(per_model, {"step": ckpt.latest_step() or stepper.step,
                                        "best_step": ckpt.best_step(),
                                        "tested_step": stepper.step,
                                        "stopped_early": stopped_early(ckpt, config),
                                        "wall_time_s": time.time() - start_time})
  if "seeds" in summary and "test_beam" in per_model[0]:  # as "test" / "test_std": over seeds
    means_and_stds = {k: mean_and_std([p["test_beam"][k] for p in per_model])
                      for k in per_model[0]["test_beam"]}
    summary["test_beam"] = {k: mean for k, (mean, _) in means_and_stds.items()}
    summary["test_beam_std"] = {k: std for k, (_, std) in means_and_stds.items()}
  if jax.process_index() == 0:
    workdir_lib.write_json(os.path.join(workdir, run_record.SUMMARY), summary)
    run_page.write_run_page(workdir, task, dirs, test_records_per_model)  # + attention examples
  ckpt.close()
  logging.info("test: %s", scalars(summary["test"]))
  return summary
