"""attnlab.training.preparation: the padded shapes a config asks for."""

import pytest

from attnlab.config import ConfigError
from attnlab.data import bucket_of
from attnlab.defaults import base_config
from attnlab.training import preparation


def _config(**batching):
  c = base_config("toy_translation")
  c.data.vocab_size, c.data.min_len, c.data.max_len = 20, 3, 12
  c.data.num_train, c.data.num_valid, c.data.num_test = 300, 30, 60
  c.data.train_max_src_len = 8
  c.model.emb_dim, c.model.hidden_dim = 8, 8
  for key, value in batching.items():
    c.batching[key] = value
  return c


def test_explicit_bucket_boundaries_give_the_padded_source_lengths():
  prepared = preparation.prepare(_config(bucket_boundaries=(8, 12)))
  assert [src for src, _ in prepared.buckets] == [8, 12]
  assert prepared.max_src_len == 12
  # Training (and validation) sources of at most 8 words: all in the first shape, so seeds
  # vmapped together take one call per step whatever their data order.
  for example in prepared.task.train + prepared.task.valid:
    assert bucket_of(len(example.src), prepared.buckets, len(example.tgt) + 1) == 0
  assert any(len(e.src) > 8 for e in prepared.task.test)


def test_quantile_buckets_when_no_boundaries_are_given():
  automatic = preparation.prepare(_config(num_buckets=3))
  assert automatic.buckets == preparation.prepare(_config(num_buckets=3,
                                                          bucket_boundaries=())).buckets
  assert 1 <= len(automatic.buckets) <= 3


@pytest.mark.parametrize("boundaries,needle", [
    ((8,), "does not cover the longest source"),
    ((12, 8), "increasing positive integers"),
    ((0, 12), "increasing positive integers"),
])
def test_bad_bucket_boundaries_name_the_key(boundaries, needle):
  with pytest.raises(ConfigError) as e:
    preparation.prepare(_config(bucket_boundaries=boundaries))
  assert e.value.key == "batching.bucket_boundaries" and needle in str(e.value)


def test_token_batches_get_the_rows_the_budget_holds():
  config = _config(bucket_boundaries=(8, 12), max_tokens=60)
  prepared = preparation.prepare(config)
  batches = preparation.train_batches(config, prepared, seed=0)
  # Training sources of at most 8 words: one padded shape, 60 // max(8, tgt_len) rows.
  (shape,) = {tuple(batches.buckets[b]) for b, _ in batches.epoch_plan(0)}
  assert batches.rows[0] == 60 // max(shape)
  assert batches.batch(0)["src"].shape == (60 // max(shape), 8)
  plain = preparation.train_batches(_config(bucket_boundaries=(8, 12)), prepared, seed=0)
  assert plain.rows == (64, 64)  # batching.batch_size without a budget


def test_a_token_budget_below_the_longest_training_shape_is_a_config_error():
  prepared = preparation.prepare(_config(bucket_boundaries=(8, 12)))
  longest = max(prepared.buckets[0])  # the training shape (8, tgt_len)
  with pytest.raises(ConfigError) as e:
    preparation.prepare(_config(bucket_boundaries=(8, 12), max_tokens=longest - 1))
  assert e.value.key == "batching.max_tokens" and "padded shape" in str(e.value)
  # Only training shapes count: the test split's 12-word sources are decoded, not trained on.
  preparation.prepare(_config(bucket_boundaries=(8, 12), max_tokens=longest))
