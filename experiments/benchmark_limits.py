"""How far a train step is from this machine's limit: ``python -m experiments.benchmark_limits``.

For each named shape (``--shapes``; the real-text models attnlab trains, with their real
vocabulary sizes), one jitted train step on random batches of that shape:

* ``steps_per_s``: optimizer steps per second after compilation (median of ``--rounds``
  rounds of ``--steps`` steps);
* ``gflop``: the FLOPs of the step's matrix products (forward, backward and the optimizer),
  counted from its jaxpr with every ``scan`` loop's trip count (``experiments.flops.census``;
  an analytic count, not a measurement; the elementwise work is left out, and is small beside
  the products), in GFLOP; ``xla_gflop``: XLA's own cost analysis of the compiled program
  (``compiled.cost_analysis()["flops"]``), which counts a loop's body once whatever its trip
  count, and so misses most of a recurrent model's work (32 of 44 GFLOP at the multi30k
  shape; figures published before this count used it);
* ``gflop_per_s``: ``gflop x steps_per_s``, the achieved throughput;
* ``limit_gflop_per_s``: this machine's measured matmul throughput at the step's dominant
  product (the output projection, ``[batch * tgt_len, d] x [d, vocab]``) in the same dtype;
  ``of_limit``: the achieved share of it;
* ``page_faults_per_step``: the process's minor page faults per timed step (``getrusage``):
  fresh pages the kernel had to map and zero-fill, about none when glibc's malloc keeps freed
  memory (``--keep_host_memory``, the default; ``attnlab.host_memory``).

Then the matmul limit itself at a few sizes in float32 and bfloat16 (``--dtypes``), so a
reader sees what the CPU's vector units give (bfloat16 matmuls run on AMX where XLA's CPU
backend uses it, else are converted).

    python -m experiments.benchmark_limits --shapes multi30k,kjv --dtypes float32,bfloat16
    XLA_FLAGS=--xla_cpu_enable_fast_math=true python -m experiments.benchmark_limits \
        --shapes multi30k         # XLA_FLAGS is recorded in the JSON

Where the time of a step goes: ``experiments.benchmark_profile``; the fastest its products allow:
``experiments.benchmark_products``.

Shapes: ``multi30k`` (configs/multi30k.py: bi-GRU 256, Bahdanau decoder, additive score,
batch 128, 16 source and 16 target tokens, vocabularies 7,864 / 5,923), ``multi30k_tutorial``
(configs/multi30k.py:tutorial=true, hidden 512), ``kjv`` (configs/kjv_rv1909.py, the
long-sentence corpus: emb 128, bi-GRU 128, Bahdanau decoder, additive score, batch 64, 50 source
and 45 target words, vocabularies 8,000 / 8,000), ``date`` (configs/date.py: the seed's shape,
batch 32). ``train_step`` is the jitted step itself, reused by ``experiments.benchmark_torch``
(the same shapes in PyTorch, side by side). Figures are for the machine they ran on; measure
on an idle machine. Nothing here is a test.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import platform
import resource
import runpy
import statistics
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from absl import flags

from attnlab import host_memory, training
from attnlab.config import build_model
from experiments import cli, flops
from experiments.benchmark import begin, define_common_flags

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"
# name: (config file, argument, batch, src_len, tgt_len, src vocab, tgt vocab)
SHAPES = {
    "multi30k": ("multi30k.py", None, 128, 16, 16, 7864, 5923),
    "multi30k_tutorial": ("multi30k.py", "tutorial=true", 128, 16, 16, 7864, 5923),
    "kjv": ("kjv_rv1909.py", None, 64, 50, 45, 8000, 8000),
    "date": ("date.py", None, 32, 8, 11, 14, 24),
}


def config_of(name: str, dtype: str):
  """The config of shape ``name``, in ``dtype``."""
  path, arg = SHAPES[name][:2]
  config = runpy.run_path(str(REPO_CONFIGS / path))["get_config"](arg)
  config.model.dtype = dtype
  return config


def random_batch(batch: int, src_len: int, tgt_len: int, src_vocab: int, tgt_vocab: int,
                 seed: int = 0) -> dict:
  """A full (unpadded) batch of random ids: src [batch, src_len], tgt_* [batch, tgt_len]."""
  rng = np.random.default_rng(seed)
  src = rng.integers(4, src_vocab, (batch, src_len)).astype(np.int32)
  tgt = rng.integers(4, tgt_vocab, (batch, tgt_len)).astype(np.int32)
  return {"src": src, "src_lengths": np.full((batch,), src_len, np.int32),
          "tgt_in": np.concatenate([np.ones((batch, 1), np.int32), tgt[:, :-1]], 1),
          "tgt_out": tgt, "tgt_lengths": np.full((batch,), tgt_len, np.int32),
          "example_mask": np.ones((batch,), bool)}


def timed(fn, rounds: int) -> float:
  """The median wall time of ``rounds`` calls of ``fn`` (which blocks until done)."""
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def matmul_limit(m: int, k: int, n: int, dtype: str, rounds: int = 5, reps: int = 10) -> float:
  """Measured GFLOP/s of ``[m, k] x [k, n]`` in ``dtype`` (float32 accumulation for
  bfloat16, as the models' Dense layers do), ``reps`` products per timed call."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((m, k)), dtype)
  b = jnp.asarray(np.random.default_rng(1).standard_normal((k, n)), dtype)

  @jax.jit
  def products(a, b):
    def body(i, acc):
      return acc + jnp.dot(a + i.astype(dtype), b, preferred_element_type=jnp.float32)
    return jax.lax.fori_loop(0, reps, body, jnp.zeros((m, n), jnp.float32))

  products(a, b).block_until_ready()
  seconds = timed(lambda: products(a, b).block_until_ready(), rounds)
  return 2.0 * m * k * n * reps / seconds / 1e9


class TrainStep(NamedTuple):
  """attnlab's compiled train step at one shape: ``run(steps)`` takes that many optimizer
  steps on one random batch and waits for the last; ``flop``: the FLOPs of one step's products
  (``products``, the census of ``experiments.flops``); ``xla_flop``: XLA's count (module doc)."""
  config: object
  run: Callable[[int], None]
  flop: float
  parameters: int
  xla_flop: float
  products: collections.Counter


def train_step(name: str, dtype: str, batch: int | None = None) -> TrainStep:
  """The jitted, compiled train step of shape ``name`` in ``dtype`` (module doc), at the
  shape's batch size or ``batch``, warmed up by one step; the state is donated and carried
  from call to call."""
  config = config_of(name, dtype)
  _, _, full_batch, src_len, tgt_len, src_vocab, tgt_vocab = SHAPES[name]
  batch = batch or full_batch
  model = build_model(config, src_vocab, tgt_vocab, src_len)
  data = random_batch(batch, src_len, tgt_len, src_vocab, tgt_vocab)
  params = jax.jit(model.init)(jax.random.key(0), data["src"][:1], data["src_lengths"][:1],
                               data["tgt_in"][:1])["params"]
  state = training.TrainState.create(apply_fn=model.apply, params=params,
                                     tx=training.make_optimizer(config.train))
  data, rng = jax.device_put(data), jax.random.key(0)
  # The loss and the non-finite guard as training runs them (configs/multi30k.py smooths
  # labels, which adds a uniform term to the loss).
  step = jax.jit(functools.partial(training.steps.train_step_fn,
                                   label_smoothing=config.train.label_smoothing,
                                   on_nonfinite=config.train.on_nonfinite), donate_argnums=0)
  products = flops.census(jax.make_jaxpr(step)(state, data, rng).jaxpr)
  compiled = step.lower(state, data, rng).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  holder = {"state": compiled(state, data, rng)[0]}

  def run(steps: int) -> None:
    for _ in range(steps):
      holder["state"], metrics = compiled(holder["state"], data, rng)
    jax.block_until_ready(metrics)

  return TrainStep(config, run, float(flops.product_flop(products)),
                   int(sum(x.size for x in jax.tree.leaves(params))),
                   float((cost or {}).get("flops", float("nan"))), products)


def bench_shape(name: str, dtype: str, steps: int, rounds: int) -> dict:
  """One row: the train step of shape ``name`` (module doc)."""
  step = train_step(name, dtype)
  _, _, batch, src_len, tgt_len, src_vocab, tgt_vocab = SHAPES[name]
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  steps_per_s = steps / timed(lambda: step.run(steps), rounds)
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (steps * rounds)
  limit = matmul_limit(batch * tgt_len, step.config.model.hidden_dim, tgt_vocab, dtype)
  achieved = step.flop * steps_per_s / 1e9
  return {"shape": name, "dtype": dtype, "batch": batch, "src_len": src_len,
          "tgt_len": tgt_len, "src_vocab": src_vocab, "tgt_vocab": tgt_vocab,
          "parameters": step.parameters, "steps_per_s": steps_per_s, "gflop": step.flop / 1e9,
          "xla_gflop": step.xla_flop / 1e9,
          "gflop_per_s": achieved, "limit_gflop_per_s": limit, "of_limit": achieved / limit,
          "page_faults_per_step": faults}


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo), else ``platform.processor()``."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


def cores() -> int:
  """The CPU cores this process may run on."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def machine() -> dict:
  """What the figures were measured on: devices, versions, CPU, cores, XLA_FLAGS, the
  load average when asked (other work on a shared machine) and whether glibc's malloc kept
  freed memory (``attnlab.host_memory``)."""
  return {"devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
          "jaxlib": jaxlib.__version__, "python": platform.python_version(),
          "cpu": cpu_model(), "cores": cores(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "load_average": list(os.getloadavg()), "keep_host_memory": host_memory.kept()}


MATMULS = ((2048, 256, 6000), (2048, 512, 6000), (2880, 128, 8000), (1024, 1024, 1024))


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("shapes", ["multi30k", "date"], f"Shapes: {', '.join(SHAPES)}.",
                    flag_values=fv)
  flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "model.dtype values.", flag_values=fv)
  flags.DEFINE_integer("steps", 5, "Steps per timed round.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("rounds", 3, "Timed rounds (the median is reported).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_boolean("no_shapes", False, "Only the matmul limit (no train steps).",
                       flag_values=fv)
  define_common_flags(fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  unknown = [s for s in args.shapes if s not in SHAPES]
  bad_dtypes = [d for d in args.dtypes if d not in ("float32", "bfloat16")]
  if unknown or bad_dtypes or not args.shapes or not args.dtypes:
    cli.fail(f"--shapes: valid {', '.join(SHAPES)}; --dtypes: float32, bfloat16; got "
             f"{','.join(args.shapes)} / {','.join(args.dtypes)}")
  out = begin(args)
  result = {**machine(), "rows": [], "matmul": []}
  if not args.no_shapes:
    print("shape              dtype     steps/s   GFLOP/step  GFLOP/s  limit GFLOP/s  of limit"
          "  page faults/step")
  for name in () if args.no_shapes else args.shapes:
    for dtype in args.dtypes:
      row = bench_shape(name, dtype, args.steps, args.rounds)
      result["rows"].append(row)
      print(f"{name:18s} {dtype:8s} {row['steps_per_s']:8.2f} {row['gflop']:11.2f} "
            f"{row['gflop_per_s']:8.1f} {row['limit_gflop_per_s']:14.1f} "
            f"{row['of_limit']:8.0%} {row['page_faults_per_step']:17.0f}", flush=True)
  print("\nmatmul limit ([m, k] x [k, n], GFLOP/s)")
  for m, k, n in MATMULS:
    for dtype in args.dtypes:
      value = matmul_limit(m, k, n, dtype)
      result["matmul"].append({"m": m, "k": k, "n": n, "dtype": dtype, "gflop_per_s": value})
      print(f"[{m}, {k}] x [{k}, {n}] {dtype:8s} {value:8.1f}", flush=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(out)
  return result


if __name__ == "__main__":
  cli.run(main)
