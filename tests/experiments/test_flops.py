"""experiments.flops: the census of a function's matrix products counts every product as often
as it runs (scans by their length, nested scans multiplied, backward passes included), against
hand counts."""

import jax
import jax.numpy as jnp
import pytest

from experiments import flops


def recurrence(h, w, xs):
  """h [4, 8], w [8, 8], xs [5, 4, 8]: h <- tanh(h w + x_t) for 5 steps; the final h summed."""
  def step(h, x):
    h = jnp.tanh(h @ w + x)
    return h, None
  return jax.lax.scan(step, h, xs)[0].sum()


ARGS = (jnp.ones((4, 8)), jnp.ones((8, 8)) / 8, jnp.ones((5, 4, 8)))


def census_of(fn, *args):
  return flops.census(jax.make_jaxpr(fn)(*args).jaxpr)


def test_a_product_in_a_scan_counts_once_per_step():
  assert census_of(recurrence, *ARGS) == {(1, 4, 8, 8): 5}
  assert flops.product_flop(census_of(recurrence, *ARGS)) == 5 * 2 * 4 * 8 * 8


def test_the_gradient_adds_the_backward_products_of_every_step():
  counts = census_of(jax.grad(recurrence, argnums=(0, 1)), *ARGS)
  # Forward h w, then per step dh w^T [4, 8] x [8, 8] and h^T dh [8, 4] x [4, 8].
  assert counts == {(1, 4, 8, 8): 10, (1, 8, 4, 8): 5}


def test_nested_scans_multiply_and_batch_dimensions_are_kept():
  def outer(q, k):  # q [3, 2, 6, 4], k [2, 7, 4]: 3 steps of a batched [6, 4] x [4, 7]
    def step(c, q_t):
      return c + jnp.einsum("bqd,bkd->bqk", q_t, k).sum(), None
    return jax.lax.scan(lambda c, qs: (jax.lax.scan(step, c, qs)[0], None), 0.0, q)[0]
  counts = census_of(outer, jnp.ones((3, 2, 2, 6, 4)), jnp.ones((2, 7, 4)))
  assert counts == {(2, 6, 4, 7): 6}


def test_a_product_under_a_while_loop_is_refused():
  def loop(w):
    return jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] @ w, c[1] + 1),
                              (w, 0))[0]
  with pytest.raises(ValueError, match="unknown"):
    census_of(loop, jnp.ones((4, 4)))


def test_xla_counts_a_loop_body_once_and_the_census_does_not():
  # The reason for the census: XLA's cost analysis of the compiled recurrence.
  compiled = jax.jit(recurrence).lower(*ARGS).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  per_step = 2 * 4 * 8 * 8
  assert cost["flops"] < 2 * per_step  # one step's product (plus elementwise), not five
  assert flops.product_flop(census_of(recurrence, *ARGS)) == 5 * per_step
