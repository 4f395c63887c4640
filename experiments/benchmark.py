"""Speed and memory of training and decoding: prints tables, writes JSON.

    python -m experiments.benchmark                      # everything, a few minutes on a CPU
    python -m experiments.benchmark --quick              # a smoke run of each part (below)
    python -m experiments.benchmark --out bench.json --src_lens 10,100,200 --batch_sizes 32
    python -m experiments.benchmark --help               # every flag

Three parts:

* ``date``: the date task as ``configs/date.py`` trains it (emb 16, hidden 32, Luong
  decoder, ``general`` attention, bidirectional GRU), batch 32, through the real training
  loop (``training.dispatch_group`` / ``training.run_group``: host batching, sharding over the
  devices, dispatch), with ``train.steps_per_dispatch`` 1 and more. Reports optimizer
  steps/s after warm-up, and the number and total time of XLA compilations (one program per
  length bucket and dispatch size). Then greedy and beam-search decoding of the test set
  with the trained model: sentences/s.
* ``buckets``: train-step compilations over two epochs of toy translation with 4 length
  buckets: one per bucket.
* ``grid``: train steps/s, target tokens/s, compile time, and peak memory of one jitted
  train step, for decoder style (``--decoders``) x score function (``--attentions``) x source
  length (``--src_lens``) x batch size (``--batch_sizes``), model width ``--emb_dim`` and
  ``--hidden_dim`` (the config's names, as in ``experiments.benchmark_mechanisms``), on random
  batches (fixed target length). Peak memory is XLA's own accounting of
  the compiled program (``compiled.memory_analysis()``: arguments + outputs + temporaries),
  the same on every backend; each row is measured with and without ``model.remat``
  (``--no_remat`` skips that). The target length is fixed (``--tgt_len``), so the growth of
  peak memory with source length is what each decoder step's attention (and the encoder)
  adds per source position: a least-squares line per (style, score, batch) is printed,
  with its R^2 (1 = exactly linear).
* devices: what ran it (``jax.devices()``), in the JSON.

The results go to ``--out`` (refused if it exists: a benchmark is never overwritten), by
default a new ``attnlab-benchmark-*.json`` in the temporary directory; the path is printed.

``--quick`` is a smoke run: each part once, on one decoder and score, two length buckets,
three source lengths and no remat column: 6 train-step programs, the costly ones, among
some 60 XLA compilations. Its time is compiling, not running: a minute or two on a 2-core
CPU (a train step of these scanned RNNs takes seconds to compile however small its shapes),
as it prints at the end.

Figures are for the machine they ran on; compare rows of one run. Nothing here is a test.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from attnlab import host_memory, parallel, training
from attnlab.attention import score_names
from attnlab.data import TrainBatches
from experiments import benchmark_grid, cli

_COMPILES: list[float] = []


def _on_event(event: str, duration: float, **_) -> None:
  if event == "/jax/core/compile/backend_compile_duration":
    _COMPILES.append(duration)


jax.monitoring.register_event_duration_secs_listener(_on_event)


def _compiles_since(start: int) -> tuple[int, float]:
  """(count, seconds) of XLA backend compilations since ``len(_COMPILES) == start``."""
  return len(_COMPILES) - start, float(sum(_COMPILES[start:]))


# ---------------------------------------------------------------- date task, real loop

def date_config(steps_per_dispatch: int, quick: bool):
  from configs.date import get_config
  config = get_config("quick" if quick else None)
  config.batching.batch_size = 32
  config.train.steps_per_dispatch = steps_per_dispatch
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 10**6
  config.train.num_steps = 10**6
  return config


class _Loop:
  """The training loop's own parts for one config (``training.dispatch_group`` /
  ``training.run_group``: host batches, placement on the mesh, dispatch); ``run`` steps it."""

  def __init__(self, config):
    self.config = config
    self.prepared = training.prepare(config)
    self.mesh = training.data_parallel_mesh(config)
    task = self.prepared.task
    self.batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab,
                                config.batching.batch_size, self.prepared.buckets, config.seed)
    self.state = parallel.replicate(training.init_state(config, self.prepared), self.mesh)
    self.rng = jax.random.key(1)
    self.step = 0

  def run(self, count: int) -> None:
    """``count`` more optimizer steps (whole dispatch groups), waiting for the last."""
    end = self.step + count
    while self.step < end:
      group = training.dispatch_group(self.batches, self.step, self.config.train)
      self.state, metrics = training.run_group(
          self.state, group, self.rng, self.mesh, self.config.train)
      self.step += len(group)
    jax.block_until_ready(metrics)


def bench_date(steps_per_dispatch: Sequence[int], steps: int, quick: bool,
               decode_beam: int = 4) -> dict:
  """Optimizer steps/s of the date task's training loop, then decoding sentences/s."""
  rows = []
  for k in steps_per_dispatch:
    config = date_config(k, quick)
    loop = _Loop(config)
    prepared, batches = loop.prepared, loop.batches
    mark = len(_COMPILES)
    t0 = time.perf_counter()
    loop.run(max(batches.steps_per_epoch, 2 * k))  # warm-up: every bucket's programs compile
    warm_s = time.perf_counter() - t0
    compiles, compile_s = _compiles_since(mark)
    # Timed in blocks: the median block is the figure, the best shows the machine's noise.
    block = max(k, (steps // 5) // k * k)
    rates, first = [], loop.step
    for _ in range(max(1, steps // block)):
      t0 = time.perf_counter()
      loop.run(block)
      rates.append(block / (time.perf_counter() - t0))
    new_compiles, _ = _compiles_since(mark + compiles)
    tokens_per_step = np.mean([int((batches.batch(s)["tgt_out"] != 0).sum())
                               for s in range(first, loop.step)])
    rows.append({"steps_per_dispatch": k, "steps": loop.step - first,
                 "steps_per_s": float(np.median(rates)), "steps_per_s_best": max(rates),
                 "target_tokens_per_s": float(np.median(rates)) * tokens_per_step,
                 "buckets": len(prepared.buckets), "compiles": compiles, "compile_s": compile_s,
                 "compiles_after_warmup": new_compiles, "warmup_s": warm_s})
  # Decoding with the last (trained) state.
  state = loop.state
  decode = []
  examples = prepared.task.test
  for beam in (1, decode_beam):
    config.eval.beam_size = beam
    # Compiles (not timed).
    training.evaluate(state, prepared, examples[:config.batching.eval_batch_size], config)
    t0 = time.perf_counter()
    metrics, _ = training.evaluate(state, prepared, examples, config)
    elapsed = time.perf_counter() - t0
    decode.append({"beam_size": beam, "sentences": len(examples),
                   "sentences_per_s": len(examples) / elapsed,
                   "exact_match": metrics["exact_match"],
                   "note": "evaluate(): teacher-forced metrics + decoding + scoring"})
  return {"config": "configs/date.py, batch 32 (emb 16, hidden 32, luong, general, bi-GRU)",
          "train": rows, "decode": decode}


def bench_buckets(quick: bool) -> dict:
  """Train-step compilations over two epochs of a task with several length buckets: one per
  bucket (the batches of a bucket share their padded shape), none after that. 4 buckets, 2
  with ``quick`` (each is a compilation of some seconds)."""
  from configs.toy_translation import get_config
  config = get_config("quick")
  config.data.max_len = 20
  config.batching.num_buckets = 2 if quick else 4
  config.train.num_steps = 10**6
  config.train.log_every = config.train.eval_every = config.train.checkpoint_every = 10**6
  loop = _Loop(config)
  steps = 2 * loop.batches.steps_per_epoch
  mark = len(_COMPILES)
  loop.run(steps)
  count, seconds = _compiles_since(mark)
  return {"config": f"configs/toy_translation.py:quick, lengths 3-20, "
                    f"{config.batching.num_buckets} buckets",
          "buckets": len(loop.prepared.buckets),
          "shapes": [list(b) for b in loop.prepared.buckets],
          "steps": steps, "train_compiles": count, "compile_s": seconds}


PARTS = ("date", "buckets", "grid")
DECODERS = ("luong", "bahdanau", "none")


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_boolean("quick", False, "A smoke run of each part (a minute or two on a 2-core "
                       "CPU, nearly all XLA compilation).", flag_values=fv)
  define_common_flags(fv)
  flags.DEFINE_list("parts", list(PARTS), f"Parts to run: {', '.join(PARTS)}.", flag_values=fv)
  flags.DEFINE_list("decoders", list(DECODERS), "grid: decoder styles (model.decoder).",
                    flag_values=fv)
  flags.DEFINE_list("attentions", ["general", "additive"],
                    "grid: score functions (model.attention).", flag_values=fv)
  flags.DEFINE_list("src_lens", ["10", "50", "100", "200"], "grid: source lengths.",
                    flag_values=fv)
  flags.DEFINE_list("batch_sizes", ["32", "128"], "grid: batch sizes (batching.batch_size).",
                    flag_values=fv)
  flags.DEFINE_integer("tgt_len", 20, "grid: target length (fixed).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("steps", 0, "Timed steps (0: 500 date / 20 grid).", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_list("steps_per_dispatch", ["1", "8"], "date: train.steps_per_dispatch values.",
                    flag_values=fv)
  flags.DEFINE_boolean("no_remat", False, "grid: skip the model.remat memory column.",
                       flag_values=fv)
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "grid: model.dtype.",
                    flag_values=fv)
  flags.DEFINE_integer("emb_dim", 32, "grid: model.emb_dim.", lower_bound=1, flag_values=fv)
  flags.DEFINE_integer("hidden_dim", 64, "grid: model.hidden_dim.", lower_bound=1,
                       flag_values=fv)


def _ints(fv: flags.FlagValues, name: str) -> list[int]:
  try:
    values = [int(x) for x in fv[name].value]
  except ValueError:
    cli.fail(f"--{name}={','.join(fv[name].value)}: not a comma-separated list of integers")
  if not values or min(values) < 1:
    cli.fail(f"--{name}={','.join(fv[name].value)}: needs positive integers")
  return values


def _choices(fv: flags.FlagValues, name: str, valid: Sequence[str]) -> list[str]:
  unknown = [x for x in fv[name].value if x not in valid]
  if unknown or not fv[name].value:
    cli.fail(f"--{name}: unknown value(s) {', '.join(unknown) or '(none given)'}; "
              f"valid: {', '.join(valid)}")
  return list(fv[name].value)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


QUICK = (("decoders", ["luong"]), ("attentions", ["general"]), ("src_lens", ["10", "20", "40"]),
         ("batch_sizes", ["8"]), ("steps_per_dispatch", ["1"]), ("no_remat", True))


def define_common_flags(fv: flags.FlagValues) -> None:
  """The flags of every benchmark: ``--out``, the JSON results file (``out_path`` checks it),
  and ``--keep_host_memory``, as ``attnlab.main``'s (``begin`` applies it)."""
  flags.DEFINE_string("out", "", "JSON results file, refused if it exists (default: a new "
                      "attnlab-benchmark-*.json in the temporary directory).", flag_values=fv)
  flags.DEFINE_boolean("keep_host_memory", True, "glibc's malloc keeps freed memory in the "
                       "process, as attnlab.main does by default (attnlab.host_memory); "
                       "--nokeep_host_memory measures with the C library's defaults.",
                       flag_values=fv)


def begin(args: flags.FlagValues) -> str:
  """A benchmark's start, before anything runs: ``--keep_host_memory`` applied (it must come
  before JAX and PyTorch start their threads), and the checked ``--out`` (``out_path``), so a
  bad path fails before the minutes of measuring."""
  if args.keep_host_memory:
    host_memory.keep_freed_memory()
  return out_path(args.out)


def out_path(out: str) -> str:
  """Where the results go: ``out``, which must not exist yet (a benchmark is never
  overwritten) in a folder that does; "" -> a new file in the temporary directory."""
  if not out:
    handle, path = tempfile.mkstemp(prefix="attnlab-benchmark-", suffix=".json")
    os.close(handle)
    return path
  if os.path.exists(out):
    cli.fail(f"--out={out} exists; name another file or remove it")
  if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
    cli.fail(f"--out={out}: no such folder {os.path.dirname(os.path.abspath(out))}")
  return out


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  start, compiled = time.perf_counter(), len(_COMPILES)
  if args.quick:
    for name, value in QUICK:
      if not args[name].present:
        args[name].value = value
  parts = _choices(args, "parts", PARTS)
  decoders = _choices(args, "decoders", DECODERS)
  attentions = _choices(args, "attentions", score_names())
  src_lens, batch_sizes = _ints(args, "src_lens"), _ints(args, "batch_sizes")
  steps_per_dispatch = _ints(args, "steps_per_dispatch")
  out = begin(args)
  result = {"devices": [str(d) for d in jax.devices()], "backend": jax.default_backend(),
            "jax": jax.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor_count": _cpu_count(),
            "keep_host_memory": host_memory.kept()}
  print(f"devices: {result['devices']}")
  if "date" in parts:
    result["date"] = bench_date(steps_per_dispatch, args.steps or
                                (40 if args.quick else 500), args.quick)
    print("\ndate task, " + result["date"]["config"])
    print("steps/dispatch  steps/s (best)  tokens/s  buckets  compiles  compile_s")
    for r in result["date"]["train"]:
      print(f"{r['steps_per_dispatch']:14d} {r['steps_per_s']:7.1f} "
            f"({r['steps_per_s_best']:5.0f}) {r['target_tokens_per_s']:9.0f} "
            f"{r['buckets']:8d} {r['compiles']:9d} {r['compile_s']:10.2f}")
    for r in result["date"]["decode"]:
      print(f"decode beam {r['beam_size']}: {r['sentences_per_s']:.0f} sentences/s "
            f"(exact match {r['exact_match']:.3f})")
  if "buckets" in parts:
    result["buckets"] = bench_buckets(args.quick)
    r = result["buckets"]
    print(f"\ncompilations per length bucket ({r['config']}): {r['buckets']} buckets "
          f"{r['shapes']}, {r['train_compiles']} train-step compilations over "
          f"{r['steps']} steps ({r['compile_s']:.1f} s)")
  if "grid" in parts:
    print(f"\ntrain step grid (emb {args.emb_dim}, hidden {args.hidden_dim}, {args.dtype}, "
          f"random batches, target length {args.tgt_len})")
    print("style     score        batch src_len  steps/s  tgt tokens/s compile_s   peak_MB"
          + ("  remat_MB" if not args.no_remat else ""))
    rows = benchmark_grid.bench_grid(decoders, attentions, src_lens, batch_sizes, args.tgt_len,
                                     args.steps or (3 if args.quick else 20), not args.no_remat,
                                     64, args.emb_dim, args.hidden_dim, args.dtype)
    result["grid"] = rows
    result["memory_fits"] = benchmark_grid.attention_share(
        benchmark_grid.linear_fits(rows) + benchmark_grid.linear_fits(rows, "peak_mb_remat"))
    benchmark_grid.print_memory_fits(result["memory_fits"], args.tgt_len)
  count, seconds = _compiles_since(compiled)
  result["compilation"] = {"programs": count, "compile_s": seconds,
                           "wall_s": time.perf_counter() - start}
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2, default=float)
  print(f"\nXLA compiled {count} programs in {seconds:.0f} s of "
        f"{result['compilation']['wall_s']:.0f} s\nwrote {out}")
  return result


def _cpu_count() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
  cli.run(main)
