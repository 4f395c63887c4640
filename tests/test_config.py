"""Config validation: every bad value fails before anything is built, naming its key."""

import pytest

from attnlab import config as config_lib
from attnlab.attention import score_names


def _config(**changes):
  c = config_lib.base_config("date")
  for key, value in changes.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def test_base_config_is_valid():
  config_lib.validate(config_lib.base_config("date"))


@pytest.mark.parametrize("key,value,needle", [
    ("model.attention", "nope", "scaled_dot"),
    ("model.cell", "transformer", "gru, lstm, rnn"),
    ("model.decoder", "nope", "bahdanau"),
    ("model.mechanism", "nope", "global"),
    ("model.normalizer", "nope", "softmax"),
    ("model.bridge", "nope", "dense"),
    ("data.task", "nope", "toy_translation"),
    ("model.hidden_dim", 0, ">= 1"),
    ("batching.batch_size", -3, ">= 1"),
    ("model.dropout_rate", 1.5, "[0, 1)"),
    ("train.learning_rate", 0.0, "> 0"),
    ("num_seeds", 0, ">= 1"),
    ("data.train_max_src_len", -1, ">= 0"),
])
def test_bad_values_name_the_key_and_choices(key, value, needle):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.validate(_config(**{key: value}))
  assert e.value.key == key
  assert f"config.{key}" in str(e.value) and needle in str(e.value)


def test_impossible_sizes():
  with pytest.raises(config_lib.ConfigError, match="num_heads"):
    config_lib.validate(_config(**{"model.decoder_self_attention": True, "model.num_heads": 3}))
  with pytest.raises(config_lib.ConfigError, match="num_heads"):
    config_lib.validate(_config(**{"model.encoder_self_attention_layers": 1,
                                   "model.num_heads": 5}))
  with pytest.raises(config_lib.ConfigError, match="bridge"):
    config_lib.validate(_config(**{"model.decoder": "none", "model.bridge": "zeros"}))


def test_missing_corpus_file(tmp_path):
  c = config_lib.base_config("corpus")
  with pytest.raises(config_lib.ConfigError, match="data.path"):
    config_lib.validate(c)
  c.data.path = str(tmp_path / "missing.txt")
  with pytest.raises(config_lib.ConfigError, match="no such file"):
    config_lib.validate(c)


@pytest.mark.parametrize("score", score_names())
def test_every_score_name_is_selectable(score):
  c = _config(**{"model.attention": score})
  config_lib.validate(c)
  model = config_lib.build_model(c, 20, 30, max_src_len=12)
  assert model.attention == score and model.max_src_len == 12
