"""The matrix products a jitted function runs, counted from its jaxpr: what a train step's
FLOPs are when its loops are counted in full.

XLA's cost analysis (``compiled.cost_analysis()["flops"]``) counts the body of a loop once,
whatever its trip count, so for a model whose recurrences are ``scan`` loops it misses most of
their work (at configs/multi30k.py's shape it counts 32 GFLOP of a step's 44 GFLOP of products).
`census` walks the jaxpr instead: every ``dot_general``, multiplied by the lengths of the scans
around it. Used by ``experiments.benchmark_limits`` and ``experiments.benchmark_products``.
"""

from __future__ import annotations

import collections
import math

Size = tuple[int, int, int, int]  # (batch dims, m, k, n) of one product


def _sub_jaxprs(value):
  """The jaxprs inside an equation's parameter (a jaxpr, a closed jaxpr, or tuples of them)."""
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _sub_jaxprs(item)


def product_size(eqn) -> Size:
  """(b, m, k, n) of a ``dot_general`` equation: its batch, free-left, contracted and
  free-right dimension sizes, each a product of the dimensions it spans."""
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
  lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
  free = lambda shape, *used: math.prod(  # noqa: E731
      d for i, d in enumerate(shape) if i not in set().union(*used))
  return (math.prod(lhs[i] for i in lhs_batch), free(lhs, lhs_contract, lhs_batch),
          math.prod(lhs[i] for i in lhs_contract), free(rhs, rhs_contract, rhs_batch))


def census(jaxpr, times: int = 1, counts: collections.Counter | None = None) -> collections.Counter:
  """{(b, m, k, n): how many times a step runs that product} over ``jaxpr`` and every jaxpr
  nested in it; a ``scan`` multiplies its body's counts by its length. A ``while`` loop (an
  unknown trip count) or a ``cond`` is a ValueError: its count would be a guess."""
  counts = collections.Counter() if counts is None else counts
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      counts[product_size(eqn)] += times
      continue
    inner = [j for v in eqn.params.values() for j in _sub_jaxprs(v)]
    if inner and name in ("while", "cond"):
      if any(census(j) for j in inner):
        raise ValueError(f"a product inside a {name}: its count per step is unknown")
      continue
    for sub in inner:
      census(sub, times * (eqn.params["length"] if name == "scan" else 1), counts)
  return counts


def flop(size: Size) -> int:
  """2 b m k n: the multiply-adds of one product of ``size``, counted as two FLOPs each."""
  b, m, k, n = size
  return 2 * b * m * k * n


def product_flop(counts: collections.Counter) -> int:
  """The FLOPs of every product in a census (each size's FLOPs times its count)."""
  return sum(flop(size) * count for size, count in counts.items())
