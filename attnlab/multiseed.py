"""Several seeds of one config in one program: ``jax.vmap`` over parameters, optimizer state
and RNG keys (``config.num_seeds > 1``; ``train.train_and_evaluate`` dispatches here).

Seed ``s`` (``0 <= s < num_seeds``) is the run ``--config.seed=config.seed + s`` would be: the
same initial parameters (``train.init_state`` with that seed), the same data order
(``TrainBatches`` with that seed) and the same dropout keys (``fold_in(key(seed), 1)``, then
``fold_in(., step)`` inside ``train.train_step``). Its results equal a separate run's to float
tolerance (vmapped matmuls may sum in another order), which tests/test_multiseed.py checks.

Different seeds shuffle the data differently, so at one step their batches can fall in
different length buckets, i.e. have different shapes. Padding them to one shape would change
the dropout masks (random bits depend on the shape) and so break the equality above. Instead,
each step runs the vmapped step once per distinct bucket among the seeds, every seed computing
on a batch of that shape but only the seeds whose batch it is keeping the update
(``jnp.where``). With ``batching.num_buckets=1`` (or luck) that is one call per step; at worst
it is ``num_buckets`` calls, still one compiled program per bucket as in a single run.

The workdir::

    workdir/config.json, vocab.json   as a single run
    workdir/checkpoints/              the stacked state [num_seeds, ...] of all seeds
    workdir/seed_<k>/                 seed k's metrics.jsonl, tensorboard/, attention_*.png
    workdir/summary.json              "seeds": one entry per seed (its full test metrics);
                                      "test" / "test_std": mean / std over seeds of scalars

``experiments.report`` reads ``summary["seeds"]``; eval and decode modes (one model) refuse
such a workdir.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from attnlab import train
from attnlab.data import TrainBatches

Array = jax.Array


def seed_values(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of the runs this config stands for: seed, seed + 1, ..., seed + num_seeds - 1."""
  return [config.seed + s for s in range(config.get("num_seeds", 1))]


def _with_seed(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  single = ml_collections.ConfigDict(config.to_dict())
  single.seed, single.num_seeds = seed, 1
  return single


def stack(trees: Sequence) -> object:
  """Stacks pytrees of one structure leaf by leaf on a new leading [num_seeds] axis.

  The static fields (``apply_fn``, ``tx`` of a TrainState) are taken from the first tree:
  optax builds new closures per call, so equal optimizers do not compare equal.
  """
  treedef = jax.tree.structure(trees[0])
  leaves = [jax.tree.leaves(t) for t in trees]
  return jax.tree.unflatten(treedef, [jnp.stack(xs) for xs in zip(*leaves)])


def unstack(tree, index: int):
  """Seed ``index``'s slice of a stacked pytree."""
  return jax.tree.map(lambda x: x[index], tree)


def init_states(config: ml_collections.ConfigDict, prepared: train.Prepared) -> train.TrainState:
  """Each seed's ``train.init_state``, stacked: a TrainState with [num_seeds, ...] leaves.

  The same computation as ``train.init_state``, jitted once and run once per seed's key, so
  seed s starts exactly where a separate run with seed + s does.
  """
  src_len, tgt_len = prepared.buckets[0]  # the dummy shapes of train.init_state

  @jax.jit
  def init_params(key):
    return prepared.model.init(key, jnp.ones((1, src_len), jnp.int32), jnp.ones((1,), jnp.int32),
                               jnp.ones((1, tgt_len), jnp.int32),
                               src_ext=jnp.ones((1, src_len), jnp.int32))["params"]

  tx = train.make_optimizer(config.train)
  return stack([train.TrainState.create(apply_fn=prepared.model.apply,
                                        params=init_params(jax.random.key(seed)), tx=tx)
                for seed in seed_values(config)])


def dropout_keys(config: ml_collections.ConfigDict) -> Array:
  """[num_seeds] the keys ``train.train_and_evaluate`` gives ``train_step`` for each seed."""
  return jnp.stack([jax.random.fold_in(jax.random.key(seed), 1)  # 0 was used for init
                    for seed in seed_values(config)])


def seed_batches(config: ml_collections.ConfigDict,
                 prepared: train.Prepared) -> list[TrainBatches]:
  """Each seed's training batches (the data order of a separate run with that seed)."""
  task = prepared.task
  return [TrainBatches(task.train, task.src_vocab, task.tgt_vocab, config.batching.batch_size,
                       prepared.buckets, seed, copy=train.is_copy_model(prepared.model))
          for seed in seed_values(config)]


@functools.partial(jax.jit, static_argnames=("label_smoothing", "on_nonfinite"),
                   donate_argnums=0)
def multi_train_step(states: train.TrainState, batches: dict, rngs: Array, active: Array,
                     label_smoothing: float = 0.0,
                     on_nonfinite: str = "skip") -> tuple[train.TrainState, dict]:
  """``train.train_step`` of every seed at once; only the ``active`` seeds keep the update.

  Args:
    states: stacked TrainState, leaves [num_seeds, ...].
    batches: stacked batches, each entry [num_seeds, batch, ...] (one shape for all seeds).
    rngs: [num_seeds] dropout keys.
    active: [num_seeds] bool; an inactive seed's state comes back unchanged (its row of
      ``batches`` is a stand-in of the right shape).

  Returns:
    (states, metrics) with metrics entries [num_seeds].
  """

  def one(state, batch, rng, keep):
    new_state, metrics = train.train_step(state, batch, rng, label_smoothing=label_smoothing,
                                          on_nonfinite=on_nonfinite)
    return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_state, state), metrics

  return jax.vmap(one)(states, batches, rngs, active)


def step_all(states: train.TrainState, batches: Sequence[TrainBatches], step: int, rngs: Array,
             train_config: ml_collections.ConfigDict) -> tuple[train.TrainState, list[dict]]:
  """Global step ``step`` for every seed, each on its own batch (see the module doc).

  Returns:
    The new stacked states and, per seed, its metrics (device arrays, entries [num_seeds];
    take row s) of the call in which it was active.
  """
  own = []
  for seed_batches_ in batches:
    batch = seed_batches_.batch(step)
    batch.pop("index")
    own.append(batch)
  groups: dict[tuple, list[int]] = {}
  for s, batch in enumerate(own):
    groups.setdefault(tuple(batch["src"].shape + batch["tgt_in"].shape), []).append(s)
  per_seed: list[dict] = [{}] * len(own)
  for shape in sorted(groups):
    members = groups[shape]
    stand_in = own[members[0]]
    stacked = {key: np.stack([own[s][key] if s in members else stand_in[key]
                              for s in range(len(own))]) for key in stand_in}
    active = np.array([s in members for s in range(len(own))])
    states, metrics = multi_train_step(states, stacked, rngs, active,
                                       label_smoothing=train_config.label_smoothing,
                                       on_nonfinite=train_config.on_nonfinite)
    for s in members:
      per_seed[s] = metrics
  return states, per_seed


def _mean_and_std(dicts: Sequence[dict]) -> tuple[dict, dict]:
  scalars = [train._scalars(d) for d in dicts]  # pylint: disable=protected-access
  keys = [k for k in scalars[0] if all(k in s for s in scalars)]
  return ({k: float(np.mean([s[k] for s in scalars])) for k in keys},
          {k: float(np.std([s[k] for s in scalars])) for k in keys})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """``train.train_and_evaluate`` for ``config.num_seeds`` seeds at once; returns the summary.

  Resumes from the workdir's stacked checkpoint; the best checkpoint is ranked by the mean
  over seeds of ``train.best_metric``.
  """
  # pylint: disable=protected-access  (the loop's pieces live in attnlab.train)
  start_time = time.time()
  prepared = train.prepare(config)
  task = prepared.task
  seeds = seed_values(config)
  os.makedirs(workdir, exist_ok=True)
  train._write_json(os.path.join(workdir, "config.json"), config.to_dict())
  train._write_json(os.path.join(workdir, "vocab.json"),
                    {"src": list(task.src_vocab.tokens), "tgt": list(task.tgt_vocab.tokens)})
  logging.info("task %s: %d/%d/%d examples, buckets %s, seeds %s", task.name, len(task.train),
               len(task.valid), len(task.test), prepared.buckets, seeds)

  states = init_states(config, prepared)
  ckpt = train._checkpointer(workdir, config)
  restored = ckpt.restore_latest(states)
  if restored is not None:
    states = restored
    logging.warning("resumed %d seeds from step %d", len(seeds), int(states.step[0]))
  start_step = int(states.step[0])

  batches = seed_batches(config, prepared)
  rngs = dropout_keys(config)
  seed_dirs = [os.path.join(workdir, f"seed_{seed}") for seed in seeds]
  for d in seed_dirs:
    os.makedirs(d, exist_ok=True)
  writers = [train.MetricWriter(d, resume_step=start_step) for d in seed_dirs]
  tc = config.train
  valid = task.valid or task.test
  reported = [[int(n)] for n in np.asarray(states.nonfinite_steps)]
  try:
    with train._stop_on_signals() as received:
      for step in range(start_step, tc.num_steps):
        states, metrics = step_all(states, batches, step, rngs, tc)
        done = step + 1
        is_last = done == tc.num_steps
        log_now = done % tc.log_every == 0 or is_last
        eval_now = done % tc.eval_every == 0 or is_last
        save_now = done % tc.checkpoint_every == 0 or is_last
        if log_now or eval_now or save_now or received:
          for s in range(len(seeds)):
            train._check_finite(unstack(states, s), config, reported[s])
        if received:
          ckpt.save(done, states)
          raise train.Interrupted(done, received[0])
        valid_metrics = []
        for s, seed in enumerate(seeds):
          state = unstack(states, s) if (log_now or eval_now) else None
          records = None
          if log_now:
            scalars = train._scalars(unstack(jax.device_get(metrics[s]), s))
            scalars["learning_rate"] = float(train.make_schedule(tc)(done))
            writers[s].write(done, "train", scalars)
          if eval_now:
            result, records = train.evaluate(state, prepared, valid, config)
            writers[s].write(done, "valid", result)
            valid_metrics.append(train._scalars(result))
            logging.info("seed %d step %d valid: %s", seed, done, json.dumps(valid_metrics[-1]))
          if log_now:
            if records is None:  # show one validation example, rotating
              config_small = config.copy_and_resolve_references()
              config_small.eval.max_examples = min(len(valid), config.batching.eval_batch_size)
              _, records = train.evaluate(state, prepared, valid, config_small)
            record = records[(done // tc.log_every) % len(records)]
            print(f"seed {seed} | " + train._log_line(done, scalars["loss"], record, task),
                  flush=True)
        if save_now:
          ckpt.save(done, states, _mean_and_std(valid_metrics)[0] if valid_metrics else None)
  except BaseException:
    for writer in writers:
      writer.close()
    ckpt.close()
    raise
  if start_step >= tc.num_steps:
    logging.warning("training already complete at step %d", start_step)

  per_seed = []
  for s, seed in enumerate(seeds):
    state = unstack(states, s)
    test_metrics, test_records = train.evaluate(state, prepared, task.test or valid, config)
    writers[s].write(int(state.step), "test", test_metrics)
    writers[s].close()
    heatmaps = train.write_heatmaps(test_records, task, seed_dirs[s], config.eval.num_heatmaps)
    per_seed.append({
        "seed": seed,
        "workdir": os.path.basename(seed_dirs[s]),
        "nonfinite_steps": int(state.nonfinite_steps),
        "test": test_metrics,
        "heatmaps": [os.path.relpath(p, workdir) for p in heatmaps],
        "longest_test_example": train.longest_example(test_records, task),
    })
  mean, std = _mean_and_std([p["test"] for p in per_seed])
  summary = {
      "step": int(states.step[0]),
      "best_step": ckpt.best_step(),
      "num_seeds": len(seeds),
      "nonfinite_steps": sum(p["nonfinite_steps"] for p in per_seed),
      "test": mean,  # mean over seeds of the scalar test metrics
      "test_std": std,  # their (population) standard deviation over seeds
      "wall_time_s": time.time() - start_time,
      "seeds": per_seed,
  }
  train._write_json(os.path.join(workdir, "summary.json"), summary)
  ckpt.close()
  logging.info("test, mean over %d seeds: %s", len(seeds), json.dumps(mean))
  return summary
