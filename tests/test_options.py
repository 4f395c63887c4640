"""ModelOptions: the model as one value, each option declared once (the config's model section
is made from it), made from the config in one place and read whole by the score and mechanism
(attnlab/options.py)."""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab import config as config_lib
from attnlab import defaults, options as options_lib
from attnlab.attention import SCORES, Score, register_score
from attnlab.attention.scores import projection_width
from attnlab.models import ModelOptions, Seq2Seq

SRC = jnp.array([[4, 5, 6, 0], [7, 8, 0, 0]])
LENGTHS = jnp.array([3, 2])
TGT_IN = jnp.array([[1, 4, 5], [1, 6, 7]])


def _locked_config(**model):
  """base_config with ``model.*`` changes, locked as ``--config`` locks it (typos fail)."""
  c = config_lib.base_config("date")
  c.model.update(model)
  c.lock()
  return c


def _score_module(model, params):
  """The score function the model's decoder attention built, bound to ``params``."""
  return model.bind(params).decoder_module.attn.score_fn


# --------------------------------------------------------------------------- the value


def test_options_are_frozen_hashable_and_compare_by_value():
  a = ModelOptions(attention="additive", local_window=3, extra={"b": [1, 2], "a": 0.5})
  b = ModelOptions(attention="additive", local_window=3, extra=(("a", 0.5), ("b", (1, 2))))
  assert a == b and hash(a) == hash(b)
  assert a.extra == (("a", 0.5), ("b", (1, 2)))  # sorted pairs, lists made tuples
  with pytest.raises(dataclasses.FrozenInstanceError):
    a.local_window = 5
  assert a.replace(local_window=5).local_window == 5 and a.local_window == 3
  # Linen modules holding them are hashable too: decoding passes the model to jit as static.
  model = Seq2Seq(src_vocab_size=5, tgt_vocab_size=5, options=a)
  assert hash(model) == hash(Seq2Seq(src_vocab_size=5, tgt_vocab_size=5, options=b))


def test_get_reads_a_field_then_an_extra_option_then_the_default():
  options = ModelOptions(hidden_dim=16, extra={"toy_scale": 2.0})
  assert options.get("hidden_dim", 0) == 16
  assert options.get("toy_scale", 1.0) == 2.0
  assert options.get("absent", 1.0) == 1.0
  # attention_dim: one encoding (an int, 0 = no width of its own); the additive scores'
  # width falls back to hidden_dim in one place, scores.projection_width.
  assert options.attention_dim == 0 and projection_width(options) == 16
  assert projection_width(options.replace(attention_dim=7)) == 7


def test_bad_extra_options_fail():
  with pytest.raises(ValueError, match="'hidden_dim' is a field"):
    ModelOptions(extra={"hidden_dim": 3})
  with pytest.raises(TypeError, match="'table'.*not hashable"):
    ModelOptions(extra={"table": np.ones(3)})
  with pytest.raises(TypeError, match="hiden_dim"):
    ModelOptions(hiden_dim=3)  # a typo from Python fails, it does not become an extra option


def test_from_flat_sets_fields_and_keeps_the_rest_as_extra_options():
  options = ModelOptions.from_flat({"hidden_dim": 8, "cosine_temperature": 2.0, "toy": "x"})
  assert (options.hidden_dim, options.cosine_temperature, options.extra) == (
      8, 2.0, (("toy", "x"),))


def test_create_is_the_constructor_with_keyword_options():
  assert Seq2Seq.create(src_vocab_size=5, tgt_vocab_size=6, decoder="bahdanau") == Seq2Seq(
      src_vocab_size=5, tgt_vocab_size=6, options=ModelOptions(decoder="bahdanau"))


def test_the_config_maps_onto_the_options_key_for_key():
  c = _locked_config(attention_dim=0, max_src_len=0, dtype="bfloat16", local_window=4)
  options = config_lib.model_options(c, max_src_len=9)
  for key, value in c.model.items():  # a field of that name, or an extra option
    if key != "max_src_len":
      assert options.get(key, None) == value, key
  # The one convention resolved there: max_src_len 0 = the data's longest source.
  assert (options.attention_dim, options.max_src_len, options.dtype,
          options.compute_dtype) == (0, 9, "bfloat16", jnp.bfloat16)
  assert config_lib.model_options(_locked_config(max_src_len=20), 9).max_src_len == 20


def test_the_config_model_section_is_made_from_the_options_declaration():
  # One declaration: every field is a config key with the field's default, and back.
  section = defaults.base_config("date").model.to_dict()
  assert section == options_lib.defaults()
  assert ModelOptions.from_flat(section) == ModelOptions()
  assert "extra" not in section


def test_options_import_no_jax():
  # Config files build on attnlab.defaults, which builds on attnlab.options: neither may
  # import JAX (configs are data).
  import subprocess
  import sys
  code = ("import sys, attnlab.defaults, attnlab.options; "
          "assert 'jax' not in sys.modules, 'jax imported'")
  subprocess.run([sys.executable, "-c", code], check=True)


def test_a_config_json_lacking_a_model_key_builds_the_defaults_model():
  values = defaults.base_config("date").to_dict()
  for key in ("cosine_temperature", "bidirectional", "attention_dim", "dtype"):
    del values["model"][key]
  import ml_collections
  options = config_lib.model_options(ml_collections.ConfigDict(values), 9)
  assert options == ModelOptions(max_src_len=9)


# --------------------------------------------------------------------------- cosine, end to end


@pytest.mark.parametrize("temperature", [3.0, 0.5])
def test_cosine_temperature_from_the_config_reaches_the_score(temperature):
  c = _locked_config(attention="cosine")
  c.model.cosine_temperature = temperature  # as --config.model.cosine_temperature=...
  config_lib.validate(c)
  model = config_lib.build_model(c, 10, 10, max_src_len=4)
  params = model.init(jax.random.key(0), SRC, LENGTHS, TGT_IN)
  log_tau = params["params"]["decoder_module"]["attn"]["score_fn"]["log_tau"]
  np.testing.assert_allclose(log_tau, math.log(temperature), rtol=1e-6)


def test_fixed_cosine_temperature_from_the_config_scales_the_cosine():
  c = _locked_config(attention="cosine", cosine_temperature=3.0,
                     cosine_learn_temperature=False)
  config_lib.validate(c)
  model = config_lib.build_model(c, 10, 10, max_src_len=4)
  params = model.init(jax.random.key(0), SRC, LENGTHS, TGT_IN)
  assert "attn" not in params["params"]["decoder_module"]  # nothing learned
  rng = np.random.default_rng(0)
  query, keys = rng.normal(size=(2, 1, 5)), rng.normal(size=(2, 4, 5))
  scores = _score_module(model, params)(jnp.asarray(query, jnp.float32),
                                        jnp.asarray(keys, jnp.float32))
  cos = np.einsum("bqd,bkd->bqk", query / np.linalg.norm(query, axis=-1, keepdims=True),
                  keys / np.linalg.norm(keys, axis=-1, keepdims=True))
  np.testing.assert_allclose(scores, 3.0 * cos, rtol=1e-5, atol=1e-5)
  # The default (no key set) is still tau = 10, learned: what every earlier run used.
  default = config_lib.build_model(_locked_config(attention="cosine"), 10, 10, 4)
  np.testing.assert_allclose(
      default.init(jax.random.key(0), SRC, LENGTHS, TGT_IN)["params"]["decoder_module"]
      ["attn"]["score_fn"]["log_tau"], math.log(10.0), rtol=1e-6)


@pytest.mark.parametrize("key,value,needle", [
    ("cosine_temperature", 0.0, "> 0"),
    ("cosine_temperature", float("inf"), "> 0"),
    ("cosine_learn_temperature", None, "True or False"),
])
def test_bad_cosine_options_name_the_key(key, value, needle):
  c = config_lib.base_config("date")
  c.model[key] = value
  with pytest.raises(config_lib.ConfigError, match=needle) as e:
    config_lib.validate(c)
  assert e.value.key == f"model.{key}"


# --------------------------------------------------------------------------- a new score's option


@pytest.fixture
def toy_score():
  """A score with an option no ModelOptions field names: scores = toy_scale * q.k, its
  toy_scale also the initial value of a parameter (so the init shows what the score read)."""
  name = "test_toy_scaled_dot"
  assert name not in SCORES

  @register_score(name)
  class ToyScaledDot(Score):
    requires_equal_dims = True

    @nn.compact
    def score(self, query, projected_keys):  # [batch, q_len, d], [batch, k_len, d]
      scale = self.options.get("toy_scale", 1.0)
      seen = self.param("seen_scale", nn.initializers.constant(scale), ())
      return scale * jnp.einsum("bqd,bkd->bqk", query, projected_keys) + 0.0 * seen

  try:
    yield name
  finally:
    del SCORES[name]


def test_a_new_scores_option_is_set_from_the_config(toy_score):
  c = config_lib.base_config("date")
  c.model.attention = toy_score
  c.lock()
  with c.unlocked():  # the score's one line in base_config: c.model.toy_scale = 1.0
    c.model.toy_scale = 1.0
  c.model.toy_scale = 2.5  # as --config.model.toy_scale=2.5
  config_lib.validate(c)
  model = config_lib.build_model(c, 10, 10, max_src_len=4)
  assert model.options.extra == (("toy_scale", 2.5),)
  params = model.init(jax.random.key(0), SRC, LENGTHS, TGT_IN)
  np.testing.assert_allclose(
      params["params"]["decoder_module"]["attn"]["score_fn"]["seen_scale"], 2.5)
  rng = np.random.default_rng(1)
  query, keys = (jnp.asarray(rng.normal(size=shape), jnp.float32)
                 for shape in ((2, 1, 5), (2, 3, 5)))
  np.testing.assert_allclose(_score_module(model, params)(query, keys),
                             2.5 * jnp.einsum("bqd,bkd->bqk", query, keys), rtol=1e-6)
  # From Python: the same option through ``extra``; left out, the score's own default.
  for extra, expected in (({"toy_scale": 4.0}, 4.0), ({}, 1.0)):
    python_model = Seq2Seq.create(src_vocab_size=10, tgt_vocab_size=10, attention=toy_score,
                                  extra=extra)
    params = python_model.init(jax.random.key(0), SRC, LENGTHS, TGT_IN)
    np.testing.assert_allclose(
        params["params"]["decoder_module"]["attn"]["score_fn"]["seen_scale"], expected)
