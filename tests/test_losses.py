"""Auxiliary attention losses: coverage loss and guided alignment against direct numpy loops,
masking, and their weighting on the training side (``training.steps.attention_losses``)."""

import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import losses
from attnlab.training.steps import Objective, attention_losses

BATCH, TGT_LEN, SRC_LEN = 3, 4, 5
SRC_LENGTHS = np.array([5, 3, 1])
TGT_LENGTHS = np.array([4, 2, 1])


def _inputs(seed=0):
  """Random attention rows (softmax over each example's real source positions), masks."""
  rng = np.random.default_rng(seed)
  src_mask = np.arange(SRC_LEN)[None, :] < SRC_LENGTHS[:, None]
  tgt_mask = np.arange(TGT_LEN)[None, :] < TGT_LENGTHS[:, None]
  logits = rng.standard_normal((BATCH, TGT_LEN, SRC_LEN))
  weights = np.where(src_mask[:, None, :], np.exp(logits), 0.0)
  attention = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
  return attention, tgt_mask, src_mask


def _coverage_loss_loops(attention, tgt_mask, src_mask):
  total, count = 0.0, 0
  for b in range(BATCH):
    for t in range(TGT_LEN):
      if not tgt_mask[b, t]:
        continue
      count += 1
      for i in range(SRC_LEN):
        if src_mask[b, i]:
          coverage = sum(attention[b, u, i] for u in range(t))  # c_ti = sum_{t' < t} a_t'i
          total += min(attention[b, t, i], coverage)
  return total, count


def test_coverage_vectors_are_exclusive_running_sums():
  attention, _, _ = _inputs()
  coverage = np.asarray(losses.coverage_vectors(jnp.asarray(attention)))
  np.testing.assert_array_equal(coverage[:, 0], 0.0)
  np.testing.assert_allclose(coverage[:, 1:], np.cumsum(attention, axis=1)[:, :-1], atol=1e-6)


def test_coverage_loss_equals_numpy_loops():
  attention, tgt_mask, src_mask = _inputs()
  # Garbage on padded source positions must not count.
  attention = np.where(src_mask[:, None, :], attention, 7.0).astype(np.float32)
  loss_sum, count = losses.coverage_loss(jnp.asarray(attention), jnp.asarray(tgt_mask),
                                         jnp.asarray(src_mask))
  expected_sum, expected_count = _coverage_loss_loops(attention, tgt_mask, src_mask)
  assert int(count) == expected_count == TGT_LENGTHS.sum()
  np.testing.assert_allclose(float(loss_sum), expected_sum, rtol=1e-5)
  assert float(loss_sum) > 0


def test_coverage_loss_is_zero_when_each_position_is_attended_once():
  # A one-hot attention that never returns to a source position (a permutation) never overlaps
  # its own coverage; attending twice to one position costs exactly the repeated weight.
  attention = np.zeros((1, 3, 3), np.float32)
  attention[0, [0, 1, 2], [2, 0, 1]] = 1.0
  tgt_mask, src_mask = np.ones((1, 3), bool), np.ones((1, 3), bool)
  loss_sum, _ = losses.coverage_loss(attention, tgt_mask, src_mask)
  assert float(loss_sum) == 0.0
  attention[0, 2] = [0.0, 0.0, 0.6] + np.array([0.0, 0.4, 0.0])  # 0.6 back on position 2
  loss_sum, _ = losses.coverage_loss(attention, tgt_mask, src_mask)
  np.testing.assert_allclose(float(loss_sum), 0.6, rtol=1e-6)


def test_guided_alignment_loss_equals_numpy_loops():
  attention, tgt_mask, _ = _inputs(seed=1)
  alignment = np.zeros((BATCH, TGT_LEN, SRC_LEN), np.float32)
  alignment[0, 0, 1] = alignment[0, 1, 0] = alignment[0, 1, 3] = alignment[0, 2, 4] = 1.0
  alignment[1, 0, 2] = 1.0
  alignment[1, 3, 0] = 1.0  # beyond the target length: must not count
  # (0, 3) and (2, 0) have no link: do not count either.
  loss_sum, count = losses.guided_alignment_loss(attention, alignment, tgt_mask)
  expected, rows = 0.0, 0
  for b in range(BATCH):
    for t in range(TGT_LEN):
      links = alignment[b, t]
      if tgt_mask[b, t] and links.sum() > 0:
        rows += 1
        expected -= np.sum(links / links.sum() * np.log(attention[b, t] + losses.ALIGNMENT_EPS))
  assert int(count) == rows == 4
  np.testing.assert_allclose(float(loss_sum), expected, rtol=1e-5)


def test_guided_alignment_loss_is_smallest_at_the_reference():
  alignment = np.zeros((1, 2, 3), np.float32)
  alignment[0, 0, 2] = alignment[0, 1, 0] = alignment[0, 1, 1] = 1.0
  tgt_mask = np.ones((1, 2), bool)
  reference = alignment / alignment.sum(-1, keepdims=True)
  best, _ = losses.guided_alignment_loss(reference, alignment, tgt_mask)
  uniform, _ = losses.guided_alignment_loss(np.full((1, 2, 3), 1 / 3, np.float32), alignment,
                                            tgt_mask)
  np.testing.assert_allclose(float(best), np.log(2.0), rtol=1e-4)  # entropy of row 1
  assert float(uniform) > float(best)
  # Zero weight on a linked position: large but finite.
  zero, _ = losses.guided_alignment_loss(np.zeros((1, 2, 3), np.float32), alignment, tgt_mask)
  assert np.isfinite(float(zero)) and float(zero) > 10


def _attention_losses(objective, attention, tgt_mask, alignment):
  return attention_losses(objective, jnp.asarray(attention), jnp.asarray(tgt_mask),
                          jnp.asarray(SRC_LENGTHS), alignment)


def test_attention_losses_weight_each_loss_and_report_it_unweighted():
  attention, tgt_mask, src_mask = _inputs()
  alignment = np.zeros((BATCH, TGT_LEN, SRC_LEN), np.float32)
  alignment[0, :, 0] = 1.0
  total, parts = _attention_losses(Objective(), attention, tgt_mask, None)
  assert float(total) == 0.0 and parts == {}
  total, parts = _attention_losses(
      Objective(coverage_loss_weight=2.0, guided_alignment_weight=0.5), attention, tgt_mask,
      alignment)
  assert set(parts) == {"coverage_loss", "guided_alignment_loss"}
  cov_sum, cov_count = _coverage_loss_loops(attention, tgt_mask, src_mask)
  np.testing.assert_allclose(float(parts["coverage_loss"]), cov_sum / cov_count, rtol=1e-5)
  ga_sum, ga_count = losses.guided_alignment_loss(attention, alignment, tgt_mask)
  np.testing.assert_allclose(float(parts["guided_alignment_loss"]), ga_sum / ga_count,
                             rtol=1e-6)
  np.testing.assert_allclose(
      float(total), 2.0 * parts["coverage_loss"] + 0.5 * parts["guided_alignment_loss"],
      rtol=1e-6)


def test_guided_alignment_without_alignment_is_an_error():
  attention, tgt_mask, _ = _inputs()
  with pytest.raises(ValueError, match="alignment"):
    _attention_losses(Objective(guided_alignment_weight=1.0), attention, tgt_mask, None)
