"""Where the time of a train step goes: ``python -m experiments.benchmark_profile``.

    python -m experiments.benchmark_profile                      # both parts, a few minutes
    python -m experiments.benchmark_profile --parts ops --shapes date,multi30k --dtypes bfloat16

Two parts (``--parts``):

* ``loop``: the seed's training loop (configs/date.py at batch 32, as
  ``experiments.benchmark``'s date part runs it, ``train.steps_per_dispatch`` from
  ``--steps_per_dispatch``), its own calls timed one by one: host batching, placement,
  dispatch and the wait for XLA (``breakdown``), then the loop as it runs, and the warm-up's
  compilations.
* ``ops``: inside the compiled step (``benchmark_limits.train_step`` at ``--shapes``), what
  XLA's CPU runtime executes, from a ``jax.profiler`` trace: the kernels ("thunks") run per
  step, and their time by kind, each event's own time without the events inside it
  (``op_profile``). Tracing slows the step; the shares, not the totals, are the figures.

Figures are for the machine they ran on, under whatever else it was running; nothing here is a
test.
"""

from __future__ import annotations

import collections
import gzip
import json
import pathlib
import tempfile
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from attnlab import parallel, training
from attnlab.data import TrainBatches
from experiments import benchmark, benchmark_limits, cli

PHASES = ("host", "place", "dispatch", "wait")
COMPILE_SECONDS: list[float] = []  # every XLA compilation of this process, in seconds
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **_: COMPILE_SECONDS.append(duration)
    if event == "/jax/core/compile/backend_compile_duration" else None)


def breakdown(steps_per_dispatch: int, steps: int) -> dict:
  """Where a step of the seed's training loop goes (configs/date.py at batch 32, as
  ``experiments.benchmark``'s date part runs it): the loop's own calls, timed one by one.

  Per optimizer step, in microseconds: ``host`` (``training.dispatch_group``: the host builds
  the dispatch's batches; and stacks them for a multi-step program), ``place``
  (``parallel.shard_batch``: numpy -> device arrays), ``dispatch`` (the jitted step's call,
  until it returns) and ``wait`` (``block_until_ready`` on its metrics: what the program still
  had to run), with a wait after every dispatch so each phase is alone; ``pipelined``: the
  same loop with no wait but at the end (as ``training.train_and_evaluate`` runs it, the host
  preparing the next dispatch while XLA runs the last). ``compile_s``: XLA compilations in
  the warm-up (one epoch), which the timed steps never meet.
  """
  config = benchmark.date_config(steps_per_dispatch, quick=False)
  prepared, tc = training.prepare(config), config.train
  mesh = training.data_parallel_mesh(config)
  task = prepared.task
  batches = TrainBatches(task.train, task.src_vocab, task.tgt_vocab,
                         config.batching.batch_size, prepared.buckets, config.seed)
  loop = {"state": parallel.replicate(training.init_state(config, prepared), mesh), "step": 0}
  rng = jax.random.key(1)

  def run(count: int, wait: bool) -> dict:
    seconds = dict.fromkeys(PHASES, 0.0)
    end, metrics = loop["step"] + count, None
    while loop["step"] < end:
      t0 = time.perf_counter()
      group = training.dispatch_group(batches, loop["step"], tc)
      full = len(group) > 1 and len(group) == tc.steps_per_dispatch
      # As training.run_group: a full group is one stacked program, else one step at a time.
      units = [{k: np.stack([b[k] for b in group]) for k in group[0]}] if full else group
      seconds["host"] += time.perf_counter() - t0
      fn = training.sharded_train_step(mesh, len(group) if full else 1, tc.label_smoothing,
                                       tc.on_nonfinite)
      for unit in units:
        t1 = time.perf_counter()
        placed = parallel.shard_batch(unit, mesh, stacked=full)
        t2 = time.perf_counter()
        loop["state"], metrics = fn(loop["state"], placed, rng)
        t3 = time.perf_counter()
        if wait:
          jax.block_until_ready(metrics)
        t4 = time.perf_counter()
        for phase, span in zip(PHASES[1:], (t2 - t1, t3 - t2, t4 - t3)):
          seconds[phase] += span
      loop["step"] += len(group)
    jax.block_until_ready(metrics)
    return seconds

  mark = len(COMPILE_SECONDS)
  run(max(batches.steps_per_epoch, 2 * steps_per_dispatch), wait=True)  # compiles
  compile_s, count = float(sum(COMPILE_SECONDS[mark:])), len(COMPILE_SECONDS) - mark
  split = run(steps, wait=True)
  start = time.perf_counter()
  run(steps, wait=False)
  pipelined = time.perf_counter() - start
  per_step = {f"{k}_us": 1e6 * v / steps for k, v in split.items()}
  return {"steps_per_dispatch": steps_per_dispatch, "steps": steps, **per_step,
          "total_us": sum(per_step.values()), "pipelined_us": 1e6 * pipelined / steps,
          "pipelined_steps_per_s": steps / pipelined, "compiles": count, "compile_s": compile_s}


KINDS = ("matmul", "elementwise and reductions", "copies and slices", "loop control",
         "runtime")
# Events of XLA's CPU runtime itself (executor, PjRt), not kernels of the program; and its
# waits (a thread blocked until others finish: no work, left out of the sums).
RUNTIME = ("ThunkExecutor", "CommonPjRt", "AllocateOutput", "Handle ", "PythonRefManager",
           "ParseArguments", "ThreadpoolListener", "PjitFunction")
WAITS = ("wait", "Wait", "Await")
DATA_MOVEMENT = ("copy", "bitcast", "slice", "dynamic-slice", "dynamic-update-slice",
                 "concatenate", "transpose", "pad", "broadcast", "wrapped_broadcast", "tuple",
                 "get-tuple-element")


def kind_of(name: str) -> str:
  """Which of ``KINDS`` a trace event of XLA's CPU runtime is, by its HLO name: library
  matmuls (YNNPACK / XNNPACK / oneDNN fusions, Eigen dots), loops, data movement, the other
  (elementwise and reduction) fusions, or the runtime's own bookkeeping."""
  if name.startswith(RUNTIME):
    return "runtime"
  base = name.removeprefix("end: ")
  if base.startswith(("ynn_fusion", "xnn_fusion", "onednn", "dot", "__onednn")):
    return "matmul"
  if base.startswith(("while", "conditional", "call")):
    return "loop control"
  if base.startswith(DATA_MOVEMENT) or "dynamic-update-slice" in base:
    return "copies and slices"
  return "elementwise and reductions"


def self_times(events: list[dict]) -> list[tuple[str, float]]:
  """(name, own microseconds) of the complete events of one thread: each event's duration
  less that of the events nested inside it."""
  out, stack = [], []  # stack: [name, end, own]
  for e in sorted(events, key=lambda e: (e["ts"], -e.get("dur", 0))):
    while stack and stack[-1][1] <= e["ts"]:
      out.append(tuple(stack.pop()[::2]))
    if stack:
      stack[-1][2] -= e.get("dur", 0)
    stack.append([e["name"], e["ts"] + e.get("dur", 0), e.get("dur", 0)])
  out.extend(tuple(s[::2]) for s in reversed(stack))
  return out


def op_profile(name: str, dtype: str, steps: int) -> dict:
  """What XLA runs inside one train step of shape ``name`` (module doc): kernels per step and
  microseconds per step by kind (own time, every XLA thread summed, waits left out), from a
  trace of ``steps`` steps; ``untraced_ms``: the step's time without tracing, just before
  (the median of 3 runs of ``steps``)."""
  step = benchmark_limits.train_step(name, dtype)
  untraced = benchmark_limits.timed(lambda: step.run(steps), 3) / steps
  with tempfile.TemporaryDirectory() as folder:
    with jax.profiler.trace(folder, create_perfetto_trace=True):
      start = time.perf_counter()
      step.run(steps)
      traced = (time.perf_counter() - start) / steps
    (path,) = pathlib.Path(folder).rglob("perfetto_trace.json.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  threads = {(e["pid"], e["tid"]) for e in events if e.get("ph") == "M"
             and e.get("name") == "thread_name" and e["args"]["name"].startswith("tf_XLA")}
  per_thread = collections.defaultdict(list)
  for e in events:
    if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in threads:
      per_thread[e["pid"], e["tid"]].append(e)
  by_kind, by_name, kernels = dict.fromkeys(KINDS, 0.0), collections.Counter(), 0
  for thread_events in per_thread.values():
    for event, own in self_times(thread_events):
      if any(word in event for word in WAITS):
        continue
      kind = kind_of(event)
      by_kind[kind] += own / steps
      by_name[event.removeprefix("end: ")] += own / steps
      kernels += kind != "runtime" and not event.startswith("end: ")
  return {"shape": name, "dtype": dtype, "steps": steps, "untraced_ms": 1e3 * untraced,
          "traced_ms": 1e3 * traced, "kernels_per_step": kernels / steps,
          "us_per_step": by_kind, "top": [[n, t] for n, t in by_name.most_common(8)]}


PARTS = ("loop", "ops")


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("parts", list(PARTS), f"Parts: {', '.join(PARTS)}.", flag_values=fv)
  flags.DEFINE_list("steps_per_dispatch", ["1", "8"], "loop: train.steps_per_dispatch values.",
                    flag_values=fv)
  flags.DEFINE_integer("loop_steps", 400, "loop: timed steps (rounded to a multiple of each "
                       "steps_per_dispatch).", lower_bound=1, flag_values=fv)
  flags.DEFINE_list("shapes", ["date", "multi30k"],
                    f"ops: shapes ({', '.join(benchmark_limits.SHAPES)}).", flag_values=fv)
  flags.DEFINE_list("dtypes", ["float32"], "ops: model.dtype values (float32, bfloat16).",
                    flag_values=fv)
  flags.DEFINE_integer("ops_steps", 3, "ops: traced steps.", lower_bound=1, flag_values=fv)
  benchmark.define_common_flags(fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def checked(args: flags.FlagValues) -> list[int]:
  """Exits 2 with one line on a bad part, shape, dtype or steps_per_dispatch; returns the
  steps_per_dispatch values."""
  bad = ([p for p in args.parts if p not in PARTS]
         + [s for s in args.shapes if s not in benchmark_limits.SHAPES]
         + [d for d in args.dtypes if d not in ("float32", "bfloat16")])
  per_dispatch = [int(k) for k in args.steps_per_dispatch if k.isdigit() and int(k) > 0]
  if bad or len(per_dispatch) != len(args.steps_per_dispatch) or not (
      args.parts and args.shapes and args.dtypes and per_dispatch):
    cli.fail(f"valid --parts {','.join(PARTS)}, --shapes {','.join(benchmark_limits.SHAPES)}, "
             "--dtypes float32,bfloat16, --steps_per_dispatch positive integers; got "
             f"{' / '.join(','.join(args[n].value) for n in ('parts', 'shapes', 'dtypes'))} / "
             f"{','.join(args.steps_per_dispatch)}")
  return per_dispatch


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  per_dispatch = checked(args)
  out = benchmark.begin(args)
  result = {**benchmark_limits.machine(), "loop": [], "ops": []}
  if "loop" in args.parts:
    print("seed's training loop (configs/date.py, batch 32), microseconds per step\n"
          "steps/dispatch   host  place  dispatch   wait  total  pipelined  steps/s  compile_s")
  for k in per_dispatch if "loop" in args.parts else ():
    row = breakdown(k, max(k, args.loop_steps // k * k))
    result["loop"].append(row)
    print(f"{k:14d} {row['host_us']:6.0f} {row['place_us']:6.0f} {row['dispatch_us']:9.0f} "
          f"{row['wait_us']:6.0f} {row['total_us']:6.0f} {row['pipelined_us']:10.0f} "
          f"{row['pipelined_steps_per_s']:8.0f} {row['compile_s']:10.1f}", flush=True)
  if "ops" in args.parts:
    print("\ninside the compiled step: kernels per step, own time per step by kind (% of the "
          "traced total)")
  for name in args.shapes if "ops" in args.parts else ():
    for dtype in args.dtypes:
      row = op_profile(name, dtype, args.ops_steps)
      result["ops"].append(row)
      total = sum(row["us_per_step"].values()) or 1.0
      shares = ", ".join(f"{k} {v / total:.0%}" for k, v in row["us_per_step"].items())
      print(f"{name} {dtype}: {row['untraced_ms']:.1f} ms a step untraced, "
            f"{row['kernels_per_step']:.0f} kernels; {shares}", flush=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(out)
  return result


if __name__ == "__main__":
  cli.run(main)
