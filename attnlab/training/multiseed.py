"""Several seeds of one config in one program: ``jax.vmap`` over parameters, optimizer state
and RNG keys (``config.num_seeds > 1``; ``loop.train_and_evaluate`` drives ``MultiSeedStepper``).

Seed ``s`` (``0 <= s < num_seeds``) is the run ``--config.seed=config.seed + s`` would be: the
same initial parameters (``preparation.init_state`` with that seed), the same data order
(``TrainBatches`` with that seed) and the same dropout keys (``fold_in(key(seed), 1)``, then
``fold_in(., step)`` inside ``steps.train_step``). Its results equal a separate run's to float
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
such a workdir. Multi-seed runs on one device, one step per dispatch: ``config.validate``
refuses ``num_seeds > 1`` with ``train.steps_per_dispatch > 1`` or ``parallel.num_devices > 1``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from attnlab import run_record
from attnlab.data import TrainBatches
from attnlab.training.cost import largest_batch
from attnlab.training.evaluation import scalars
from attnlab.training.preparation import Prepared, train_batches
from attnlab.training.steps import Objective, TrainState, make_optimizer, train_step

Array = jax.Array


def seed_values(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of the runs this config stands for: seed, seed + 1, ..., seed + num_seeds - 1."""
  return [config.seed + s for s in range(config.num_seeds)]


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


def init_states(config: ml_collections.ConfigDict, prepared: Prepared) -> TrainState:
  """Each seed's ``preparation.init_state``, stacked: a TrainState with [num_seeds, ...] leaves.

  The same computation as ``preparation.init_state``, jitted once and run once per seed's key, so
  seed s starts exactly where a separate run with seed + s does.
  """
  src_len, tgt_len = prepared.buckets[0]  # the dummy shapes of train.init_state

  @jax.jit
  def init_params(key):
    return prepared.model.init(key, jnp.ones((1, src_len), jnp.int32), jnp.ones((1,), jnp.int32),
                               jnp.ones((1, tgt_len), jnp.int32),
                               src_ext=jnp.ones((1, src_len), jnp.int32))["params"]

  tx = make_optimizer(config.train)
  objective = Objective.create(config.train, prepared.model.options)
  return stack([TrainState.create(apply_fn=prepared.model.apply,
                                        params=init_params(jax.random.key(seed)), tx=tx,
                                        objective=objective)
                for seed in seed_values(config)])


def dropout_keys(config: ml_collections.ConfigDict) -> Array:
  """[num_seeds] the keys a single run gives ``train_step`` for each seed."""
  return jnp.stack([jax.random.fold_in(jax.random.key(seed), 1)  # 0 was used for init
                    for seed in seed_values(config)])


def seed_batches(config: ml_collections.ConfigDict,
                 prepared: Prepared) -> list[TrainBatches]:
  """Each seed's training batches (the data order of a separate run with that seed)."""
  return [train_batches(config, prepared, seed) for seed in seed_values(config)]


@functools.partial(jax.jit, static_argnames=("label_smoothing", "on_nonfinite"),
                   donate_argnums=0)
def multi_train_step(states: TrainState, batches: dict, rngs: Array, active: Array,
                     label_smoothing: float = 0.0,
                     on_nonfinite: str = "skip") -> tuple[TrainState, dict]:
  """``steps.train_step`` of every seed at once; only the ``active`` seeds keep the update.

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
    new_state, metrics = train_step(state, batch, rng, label_smoothing=label_smoothing,
                                          on_nonfinite=on_nonfinite)
    return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new_state, state), metrics

  return jax.vmap(one)(states, batches, rngs, active)


def step_all(states: TrainState, batches: Sequence[TrainBatches], step: int, rngs: Array,
             train_config: ml_collections.ConfigDict) -> tuple[TrainState, list[dict]]:
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


def mean_and_std(dicts: Sequence[dict]) -> tuple[dict, dict]:
  """Mean and (population) std over ``dicts`` of the scalar entries all of them have."""
  values = [scalars(d) for d in dicts]
  keys = [k for k in values[0] if all(k in v for v in values)]
  return ({k: float(np.mean([v[k] for v in values])) for k in keys},
          {k: float(np.std([v[k] for v in values])) for k in keys})


class MultiSeedStepper:
  """The loop's stepper for ``config.num_seeds`` seeds vmapped in one program (module doc):
  one step per ``advance``; per-seed outputs under ``seed_<k>/``."""

  cost = None  # summary.json's "cost", set by the loop

  def __init__(self, config: ml_collections.ConfigDict, prepared: Prepared):
    self.config, self.prepared = config, prepared
    self.seeds = seed_values(config)
    self.state = init_states(config, prepared)
    self.batches = seed_batches(config, prepared)
    self.rngs = dropout_keys(config)
    self.labels = [f"seed {seed} | " for seed in self.seeds]
    self.subdirs = [run_record.seed_folder(seed) for seed in self.seeds]

  @property
  def step(self) -> int:
    return int(self.state.step[0])

  def advance(self, step: int) -> tuple[int, list]:
    """Global step ``step`` of every seed; returns (the next step, raw per-seed metrics)."""
    self.state, metrics = step_all(self.state, self.batches, step, self.rngs, self.config.train)
    return step + 1, metrics

  def train_metrics(self, raw: list, index: int) -> dict:
    """Seed ``index``'s train metrics from ``advance``'s raw metrics, as floats."""
    return scalars(unstack(jax.device_get(raw[index]), index))

  def states(self) -> list[TrainState]:
    """Each seed's state (a view of the stacked one)."""
    return [unstack(self.state, s) for s in range(len(self.seeds))]

  def lower_train_step(self) -> tuple[jax.stages.Lowered, str]:
    """The vmapped step of all seeds (``multi_train_step``) on seed 0's
    ``cost.largest_batch`` for every seed, lowered, and a description of it."""
    batch, tc = largest_batch(self.batches[0]), self.config.train
    stacked = {k: np.stack([v] * len(self.seeds)) for k, v in batch.items()}
    lowered = multi_train_step.lower(self.state, stacked, self.rngs,
                                     np.ones(len(self.seeds), bool),
                                     label_smoothing=tc.label_smoothing,
                                     on_nonfinite=tc.on_nonfinite)
    return lowered, (f"{len(self.seeds)} seeds vmapped, batch {batch['src'].shape[0]} each, "
                     f"src_len {batch['src'].shape[1]}, tgt_len {batch['tgt_in'].shape[1]}")

  def summary(self, per_model: list[dict], base: dict) -> dict:
    """summary.json: ``test`` / ``test_std`` are the mean / std over seeds, ``seeds`` each
    seed's own entry."""
    mean, std = mean_and_std([p["test"] for p in per_model])
    return {**base, "num_seeds": len(self.seeds),
            "nonfinite_steps": sum(p["nonfinite_steps"] for p in per_model),
            "test": mean, "test_std": std,
            "seeds": [{"seed": seed, "workdir": subdir, **p}
                      for seed, subdir, p in zip(self.seeds, self.subdirs, per_model)],
            "cost": self.cost}
