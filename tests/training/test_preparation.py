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
