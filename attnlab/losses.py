"""Auxiliary training losses on the attention weights of a teacher-forced pass.

Both are pure and jit-able and, like ``attnlab.metrics.sequence_cross_entropy``, return a
*sum* and a count, so a caller can add them up over batches (or devices) before dividing once:

* ``coverage_loss`` (See et al. 2017, eq. 12): penalises attending again to source positions
  that were already attended, sum_t sum_i min(a_ti, c_ti) with c_t = sum_{t' < t} a_t'.
* ``guided_alignment_loss`` (Chen et al. 2016; Garg et al. 2019): cross-entropy from the
  task's true alignment (rows normalised to distributions) to the attention weights.

``training.steps.attention_losses`` weights them (``train.coverage_loss_weight``,
``train.guided_alignment_weight``) and ``training.steps.train_step`` adds them to the loss.

Shapes: attention [batch, tgt_len, src_len], row t = the weights used to predict target token
t (``tgt_out`` coordinates, EOS included), as ``Seq2Seq.__call__`` returns them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

# Added inside the log of the guided-alignment cross-entropy: a linked source position with
# exactly zero weight (sparsemax, hard, local windows) costs -log(1e-6) ~ 13.8 nats, not inf.
ALIGNMENT_EPS = 1e-6


def coverage_vectors(attention: Array) -> Array:
  """attention [batch, tgt_len, src_len] -> coverage c [batch, tgt_len, src_len],
  c_t = sum_{t' < t} a_t' (exclusive running sum over target steps; c_0 = 0)."""
  attention = attention.astype(jnp.float32)
  running = jnp.cumsum(attention, axis=1)
  return jnp.concatenate([jnp.zeros_like(running[:, :1]), running[:, :-1]], axis=1)


def coverage_loss(attention: Array, tgt_mask: Array, src_mask: Array) -> tuple[Array, Array]:
  """See et al. (2017) coverage loss, summed over real target steps and source positions.

  Args:
    attention: [batch, tgt_len, src_len] weights of the teacher-forced pass.
    tgt_mask: [batch, tgt_len] bool, True at real target steps (EOS included) of real examples.
    src_mask: [batch, src_len] bool, True at real source positions.

  Returns:
    (loss_sum, count): float32 [] sum over real (t, i) of min(a_ti, c_ti), and int32 [] the
    number of real target steps. ``loss_sum / count`` is normalised like the NLL (per target
    token). Padding target steps come after the real ones, so they never reach a real c_t.
  """
  attention = jnp.where(src_mask[:, None, :], attention.astype(jnp.float32), 0.0)
  per_step = jnp.sum(jnp.minimum(attention, coverage_vectors(attention)), axis=-1)
  tgt_mask = tgt_mask.astype(bool)
  return (jnp.sum(jnp.where(tgt_mask, per_step, 0.0)),
          jnp.sum(tgt_mask).astype(jnp.int32))


def guided_alignment_loss(attention: Array, alignment: Array, tgt_mask: Array,
                          eps: float = ALIGNMENT_EPS) -> tuple[Array, Array]:
  """Cross-entropy from the reference alignment to the attention, per linked target step.

  Each target step t with at least one link becomes a reference distribution
  p_ti = A_ti / sum_j A_tj; its loss is -sum_i p_ti log(a_ti + eps). Steps without links
  (EOS, unaligned words, padding) do not count.

  Args:
    attention: [batch, tgt_len, src_len] weights of the teacher-forced pass.
    alignment: [batch, tgt_len, src_len] float, 1.0 at each true (target, source) link
      (``batch['alignment']``; padding rows and columns are zero).
    tgt_mask: [batch, tgt_len] bool, True at real target steps of real examples.
    eps: added inside the log (``ALIGNMENT_EPS``): finite loss at zero weights.

  Returns:
    (loss_sum, count): float32 [] summed cross-entropy (nats) and int32 [] the number of
    linked target steps; ``loss_sum / count`` is the mean per linked step.
  """
  alignment = alignment.astype(jnp.float32)
  links = jnp.sum(alignment, axis=-1)  # [batch, tgt_len]
  rows = tgt_mask.astype(bool) & (links > 0)
  reference = alignment / jnp.maximum(links, 1.0)[..., None]
  per_step = -jnp.sum(reference * jnp.log(attention.astype(jnp.float32) + eps), axis=-1)
  return jnp.sum(jnp.where(rows, per_step, 0.0)), jnp.sum(rows).astype(jnp.int32)
