"""Coverage and guided alignment through ``train``: the extra losses are reported beside (not
inside) the NLL, and a coverage model with the coverage loss and penalty trains and is
evaluated with every metric (guided alignment's effect: test_train_guided_alignment.py)."""

import json
import os

import jax
import numpy as np
import pytest

from attnlab import training
from attnlab.data import TrainBatches
from attnlab.config import base_config


def tiny_config(steps=20, seed=0, **changes):
  """Toy translation with short sentences and a small RNN (as test_train_guided_alignment.py)."""
  c = base_config("toy_translation")
  c.seed = seed
  c.data.vocab_size, c.data.min_len, c.data.max_len = 12, 3, 8
  c.data.num_train, c.data.num_valid, c.data.num_test = 256, 16, 48
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 32, 64, 1
  c.model.emb_dim, c.model.hidden_dim, c.model.cell = 16, 16, "rnn"
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = steps, 5, 1e-2
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = steps
  c.eval.num_heatmaps = 0
  for key, value in changes.items():
    section, name = key.split(".")
    c[section][name] = value
  return c


def _train_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [r for r in map(json.loads, f) if r["split"] == "train"][-1]


def test_the_reported_loss_stays_the_nll_and_the_extra_losses_are_reported():
  config = tiny_config(**{"train.guided_alignment_weight": 5.0,
                          "train.coverage_loss_weight": 1.0})
  prepared = training.prepare(config)
  batches = TrainBatches(prepared.task.train, prepared.task.src_vocab,
                               prepared.task.tgt_vocab, 32, prepared.buckets, 0)
  batch = batches.batch(0)
  batch.pop("index")
  assert batch["alignment"].shape == batch["tgt_in"].shape + batch["src"].shape[1:]
  state = training.init_state(config, prepared)
  sums = training.eval_step(state, batch)  # teacher-forced NLL of the same parameters
  _, metrics = training.train_step(state, batch, jax.random.key(0))
  np.testing.assert_allclose(metrics["loss"], sums["loss_sum"] / sums["tokens"], rtol=1e-5)
  assert float(metrics["guided_alignment_loss"]) > 0
  assert float(metrics["coverage_loss"]) > 0


@pytest.mark.slow
def test_coverage_model_trains_and_every_metric_is_reported(tmp_path):
  config = tiny_config(steps=10, **{"model.coverage": True, "model.decoder": "bahdanau",
                                    "model.attention": "additive",
                                    "train.coverage_loss_weight": 1.0, "eval.beam_size": 2,
                                    "eval.coverage_penalty": 0.2})
  summary = training.train_and_evaluate(config, str(tmp_path))
  test = summary["test"]
  for key in ("loss", "exact_match", "bleu", "alignment_error_rate", "attention_entropy"):
    assert np.isfinite(test[key]), key
  assert summary["nonfinite_steps"] == 0
  assert _train_metrics(tmp_path)["coverage_loss"] >= 0
