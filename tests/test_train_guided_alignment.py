"""Guided alignment end to end: on the toy translation task, a large guided-alignment weight
brings the learned attention's alignment error rate far below the unguided run's (same seed,
same data, same steps)."""

import pytest

from attnlab import training
from test_train_attention_losses import _train_metrics
from test_train_attention_losses import tiny_config as base_tiny_config


def tiny_config(weight, steps=20, seed=0):
  """The attention-loss tests' toy translation config: 20 steps take seconds, and the
  unguided attention is still far from the true alignment then (test AER 0.76-0.87 over seeds
  0-4; guided with weight 5: 0.09-0.22)."""
  return base_tiny_config(steps, seed, **{"train.guided_alignment_weight": weight})


@pytest.mark.slow
def test_guided_alignment_lowers_the_alignment_error_rate(tmp_path):
  unguided = training.train_and_evaluate(tiny_config(0.0), str(tmp_path / "unguided"))
  guided = training.train_and_evaluate(tiny_config(5.0), str(tmp_path / "guided"))
  aer, guided_aer = (s["test"]["alignment_error_rate"] for s in (unguided, guided))
  assert guided_aer < aer - 0.2, (guided_aer, aer)
  assert _train_metrics(tmp_path / "guided")["guided_alignment_loss"] > 0
  assert "guided_alignment_loss" not in _train_metrics(tmp_path / "unguided")
