"""Every matrix product of a train step, and the fastest that step could run on this machine:
``python -m experiments.benchmark_products``.

``experiments.benchmark_limits`` compares a step's achieved GFLOP/s with the matmul limit of
its largest product (the output projection). A step is also made of many small products (each
time step's recurrent and attention products, forward and backward), and small products run
far below that limit. This module lists them and measures each at its own size:

* the census: every ``dot_general`` in the jitted step's jaxpr (forward, backward and the
  optimizer), each counted as often as it runs (a product inside a ``scan`` of length T counts
  T times; nested scans multiply), grouped by size: batch dimensions ``b``, rows ``m``,
  contraction ``k``, columns ``n``; 2 b m k n FLOPs each;
* ``limit``: this machine's measured GFLOP/s for that product size alone (`product_limit`: the
  same product repeated in one compiled loop, operands in the canonical layout, the median of a
  few timed calls), in the step's dtype;
* the bound: the time the step's products take if each ran at its own limit and nothing else
  took any time, and so the highest GFLOP/s (XLA's count of the whole step divided by that
  time) the step could reach on this machine. ``of_limit``: that bound as a share of the output
  projection's limit, the figure ``benchmark_limits`` reports as the step's distance from the
  limit. When the bound itself is below a target share, the target cannot be reached by
  removing overhead: only by making the products themselves bigger (more work per kernel).

    python -m experiments.benchmark_products --shapes multi30k,kjv

Shapes are ``experiments.benchmark_limits.SHAPES``. Figures are for the machine they ran on
(the JSON records it); measure on an idle machine. Nothing here is a test.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import benchmark_limits, cli, flops
from experiments.benchmark import begin, define_common_flags

def product_limit(size: flops.Size, dtype: str, rounds: int = 5, min_flop: float = 2e8) -> float:
  """Measured GFLOP/s of one product of ``size`` [b, m, k] x [b, k, n] in ``dtype`` (float32
  accumulation, as the models' layers), repeated in one compiled loop until a call does at
  least ``min_flop`` FLOPs; the median of ``rounds`` calls."""
  b, m, k, n = size
  reps = max(3, math.ceil(min_flop / flops.flop(size)))  # >= 3: the zero fill amortized
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((b, m, k)), dtype)
  y = jnp.asarray(rng.standard_normal((b, k, n)), dtype)

  # Without batch dimensions a plain [m, k] x [k, n] dot, as the models' layers compile to (a
  # dot_general with a batch dimension of 1 takes another, slower kernel).
  spec, x, y, shape = (("mk,kn->mn", x[0], y[0], (m, n)) if b == 1 else
                       ("bmk,bkn->bmn", x, y, (b, m, n)))

  @jax.jit
  def products(x, y):
    def body(i, acc):
      return acc + jnp.einsum(spec, x + i.astype(dtype), y, preferred_element_type=jnp.float32)
    return jax.lax.fori_loop(0, reps, body, jnp.zeros(shape, jnp.float32))

  products(x, y).block_until_ready()
  seconds = benchmark_limits.timed(lambda: products(x, y).block_until_ready(), rounds)
  return flops.flop(size) * reps / seconds / 1e9


def bound(name: str, dtype: str, steps: int = 3, rounds: int = 3) -> dict:
  """Shape ``name``'s products (census and each one's limit), the bound they give (module doc)
  and, measured in the same process, the step's own speed and its share of the bound."""
  step = benchmark_limits.train_step(name, dtype)
  counts = step.products
  rows = []
  for size, count in sorted(counts.items(), key=lambda item: -flops.flop(item[0]) * item[1]):
    limit = product_limit(size, dtype)
    gflop = flops.flop(size) * count / 1e9
    rows.append({"b": size[0], "m": size[1], "k": size[2], "n": size[3], "per_step": count,
                 "gflop": gflop, "limit_gflop_per_s": limit, "seconds": gflop / limit})
  steps_per_s = steps / benchmark_limits.timed(lambda: step.run(steps), rounds)
  _, _, batch, _, tgt_len, _, tgt_vocab = benchmark_limits.SHAPES[name]
  hidden = benchmark_limits.config_of(name, dtype).model.hidden_dim
  output_limit = benchmark_limits.matmul_limit(batch * tgt_len, hidden, tgt_vocab, dtype)
  seconds = sum(r["seconds"] for r in rows)
  gflop = step.flop / 1e9
  return {"shape": name, "dtype": dtype, "products": rows,
          "products_per_step": sum(counts.values()), "gflop": gflop,
          "xla_gflop": step.xla_flop / 1e9, "products_seconds": seconds,
          "bound_steps_per_s": 1 / seconds, "bound_gflop_per_s": gflop / seconds,
          "output_limit_gflop_per_s": output_limit, "of_limit": gflop / seconds / output_limit,
          "steps_per_s": steps_per_s, "gflop_per_s": gflop * steps_per_s,
          "of_bound": steps_per_s * seconds}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_list("shapes", ["multi30k"], f"Shapes: {', '.join(benchmark_limits.SHAPES)}.",
                    flag_values=fv)
  flags.DEFINE_string("dtype", "float32", "model.dtype: float32 or bfloat16.", flag_values=fv)
  flags.DEFINE_integer("steps", 3, "Steps per timed round of the step itself.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("rounds", 3, "Timed rounds (the median is reported).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("top", 12, "Product sizes printed per shape (the JSON has all).",
                       lower_bound=1, flag_values=fv)
  define_common_flags(fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> dict:
  args = parse_flags(argv)
  unknown = [s for s in args.shapes if s not in benchmark_limits.SHAPES]
  if unknown or not args.shapes or args.dtype not in ("float32", "bfloat16"):
    cli.fail(f"--shapes: valid {', '.join(benchmark_limits.SHAPES)}; --dtype: float32, "
             f"bfloat16; got {','.join(args.shapes)} / {args.dtype}")
  out = begin(args)
  result = {**benchmark_limits.machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "rows": []}
  for name in args.shapes:
    row = bound(name, args.dtype, args.steps, args.rounds)
    result["rows"].append(row)
    print(f"\n{name} ({args.dtype}): {row['products_per_step']} products a step, "
          f"{row['gflop']:.2f} GFLOP (XLA's cost analysis: {row['xla_gflop']:.2f})")
    print("    b      m      k      n  per step   GFLOP  limit GFLOP/s  ms at limit")
    for r in row["products"][:args.top]:
      print(f"{r['b']:5d} {r['m']:6d} {r['k']:6d} {r['n']:6d} {r['per_step']:9d} "
            f"{r['gflop']:7.2f} {r['limit_gflop_per_s']:14.1f} {1e3 * r['seconds']:12.1f}")
    print(f"every product at its own limit: {1e3 * row['products_seconds']:.0f} ms a step "
          f"({row['bound_steps_per_s']:.2f} steps/s), {row['bound_gflop_per_s']:.1f} GFLOP/s = "
          f"{row['of_limit']:.0%} of the output projection's {row['output_limit_gflop_per_s']:.1f}\n"
          f"the step itself: {row['steps_per_s']:.2f} steps/s, {row['gflop_per_s']:.1f} GFLOP/s, "
          f"{row['of_bound']:.0%} of that bound", flush=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  print(out)
  return result


if __name__ == "__main__":
  cli.run(main)
