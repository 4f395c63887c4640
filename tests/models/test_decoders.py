"""Decoders: teacher forcing == step by step, attention rows, every style x score trains,
unknown names, dropout."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab.attention import get_score, score_names
from attnlab.config import ConfigError, base_config, validate
from attnlab.data.vocab import PAD
from attnlab.models import BRIDGES, DECODER_STYLES
from attnlab.models.decoders import Decoder
from attnlab.options import ModelOptions

import tiny_seq2seq
from tiny_seq2seq import TGT_VOCAB, random_params

LENGTHS = (4, 2, 1)  # batch of 3; SRC_LEN leaves every row at least one PAD
SRC_LEN, TGT_LEN = 5, 3

# Every decoder style, Luong with and without input feeding.
STYLES = {
    "bahdanau": dict(decoder="bahdanau", attention="additive"),
    "luong": dict(decoder="luong", attention="general", input_feeding=True),
    "luong_no_feeding": dict(decoder="luong", attention="general", input_feeding=False),
    "none": dict(decoder="none"),
}


make_batch = functools.partial(tiny_seq2seq.make_batch, lengths=LENGTHS, src_len=SRC_LEN,
                               tgt_len=TGT_LEN)


def make_model(style, **overrides):
  """A tiny Seq2Seq of one of STYLES (``tiny_seq2seq.make_model``), two heads."""
  return tiny_seq2seq.make_model(num_heads=2, **{**STYLES[style], **overrides})


# --------------------------------------------------------------------------- teacher forcing


TEACHER_CASES = [(style, self_attention) for style in STYLES for self_attention in (False, True)]


@functools.lru_cache(maxsize=None)
def _teacher_forced_and_stepwise():
  """For every TEACHER_CASES (style, decoder self-attention): the teacher-forced (logits,
  attention), and the same from ``start`` then ``step`` in a python loop fed the same prefix.

  One jitted program for all cases: XLA compiles one big program about twice as fast as many
  small ones, and compilation is most of this file's time.
  """
  src, lengths, tgt_in = make_batch()
  # A unidirectional encoder: cheaper to compile, and the memory (whatever its width) is
  # prepared once by ``start`` and shared by both paths; the key projection is covered below.
  models = {case: make_model(case[0], decoder_self_attention=case[1], bidirectional=False)
            for case in TEACHER_CASES}
  params = {case: random_params(model, src, lengths, tgt_in) for case, model in models.items()}

  def run(model, params):
    forced = model.apply(params, src, lengths, tgt_in)
    # Decoding looks back over max_len >= the output's length: a longer history must not matter.
    memory, state = model.apply(params, src, lengths, TGT_LEN + 2, method=model.start)
    logits, attention = [], []
    for t in range(TGT_LEN):
      state, logits_t, attention_t = model.apply(params, memory, state, tgt_in[:, t],
                                                 method=model.step)
      logits.append(logits_t)
      attention.append(attention_t)
    return forced, (jnp.stack(logits, 1), jnp.stack(attention, 1))

  run_all = jax.jit(lambda params: {case: run(models[case], params[case]) for case in models})
  return jax.tree.map(np.asarray, run_all(params))


@pytest.mark.parametrize("self_attention", [False, True], ids=["plain", "self_attention"])
@pytest.mark.parametrize("style", list(STYLES))
def test_teacher_forcing_equals_step_by_step(style, self_attention):
  (logits, attention), (step_logits, step_attention) = _teacher_forced_and_stepwise()[
      (style, self_attention)]
  assert logits.shape == (len(LENGTHS), TGT_LEN, TGT_VOCAB)
  assert attention.shape == (len(LENGTHS), TGT_LEN, SRC_LEN)
  np.testing.assert_allclose(step_logits, logits, rtol=0, atol=1e-5)
  np.testing.assert_allclose(step_attention, attention, rtol=0, atol=1e-6)
  # The logits do depend on the step (a constant output would pass the comparison).
  assert not np.allclose(logits[:, 0], logits[:, 1], atol=1e-3)


@pytest.mark.parametrize("style", ["bahdanau", "luong", "none"])
def test_hoisted_input_product_gives_the_step_by_step_gradients(style):
  """Teacher forcing computes the embedding's share of the GRU's input product for every step
  before its loop (``Decoder.hoisted_inputs``); decoding's steps do not. Same loss, same
  gradients, for every parameter (the hoisted product's backward reaches the cell's kernels)."""
  model = make_model(style, bidirectional=False, decoder_layers=2)
  src, lengths, tgt_in = make_batch()
  params = random_params(model, src, lengths, tgt_in)
  probe = jnp.asarray(np.random.default_rng(3).standard_normal((len(LENGTHS), TGT_LEN,
                                                                 TGT_VOCAB)), jnp.float32)

  def forced(params):
    return jnp.sum(probe * model.apply(params, src, lengths, tgt_in)[0])

  def stepwise(params):
    memory, state = model.apply(params, src, lengths, TGT_LEN, method=model.start)
    total = 0.0
    for t in range(TGT_LEN):
      state, logits_t, _ = model.apply(params, memory, state, tgt_in[:, t], method=model.step)
      total = total + jnp.sum(probe[:, t] * logits_t)
    return total

  (a, grad_a), (b, grad_b) = jax.jit(lambda p: (jax.value_and_grad(forced)(p),
                                                jax.value_and_grad(stepwise)(p)))(params)
  np.testing.assert_allclose(a, b, rtol=1e-5)
  cell = grad_a["params"]["decoder_module"]["cells_0"]
  assert float(jnp.abs(cell["ir"]["kernel"]).sum()) > 0  # the hoisted kernel learns
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5),
               grad_a, grad_b)


def test_only_a_gru_first_cell_without_copy_hoists_its_input_product():
  def hoists(**options):
    decoder = Decoder(vocab_size=TGT_VOCAB, options=ModelOptions(
        decoder="bahdanau", attention="additive", **options))
    return decoder.bind({}).hoists_inputs  # setup's submodules, no parameters needed

  assert hoists(cell="gru")
  assert not hoists(cell="lstm") and not hoists(cell="rnn")
  assert not hoists(cell="gru", copy=True)


@pytest.mark.parametrize("style", list(STYLES))
def test_attention_rows_are_distributions_over_real_source_positions(style):
  (_, attention), _ = _teacher_forced_and_stepwise()[(style, False)]
  real = np.arange(SRC_LEN)[None, None, :] < np.asarray(LENGTHS)[:, None, None]
  real = np.broadcast_to(real, attention.shape)
  if STYLES[style]["decoder"] == "none":
    np.testing.assert_array_equal(attention, 0.0)
    return
  assert np.all(attention >= 0)
  np.testing.assert_array_equal(attention[~real], 0.0)
  np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=0, atol=1e-5)
  # Not a trivial constant: the alignment moves between steps for the longest source.
  assert not np.allclose(attention[0, 0], attention[0, 1], atol=1e-4)


# --------------------------------------------------------------------------- every style x score

GRAD_CASES = [(style, score) for style in ("bahdanau", "luong") for score in score_names()]
GRAD_CASES.append(("none", "general"))  # no attention: the score is unused


def _masked_cross_entropy(logits, tgt_out):
  """logits [batch, tgt_len, vocab], tgt_out [batch, tgt_len] (PAD = ignored) -> mean loss."""
  mask = tgt_out != PAD
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
  return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)


def _norm(tree):
  return float(optax.tree.norm(tree))


@functools.lru_cache(maxsize=None)
def _gradients():
  """For every GRAD_CASES (style, score): params, and (loss, attention), grads from one
  jitted value_and_grad of a masked cross-entropy.

  One program for all cases, as in ``_teacher_forced_and_stepwise``. The encoder is
  bidirectional, so d_enc = 2 * hidden and dot / scaled_dot / cosine need the key projection.
  """
  src, lengths, tgt_in = make_batch(lengths=(3, 2), src_len=3, tgt_len=3, seed=1)
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((2, 1), PAD, np.int32)], axis=1)
  # The cheapest cell: this test is about attention, gradients only need to flow.
  models = {(style, score): make_model("luong", decoder=style, attention=score, cell="rnn")
            for style, score in GRAD_CASES}
  params = {case: random_params(model, src, lengths, tgt_in) for case, model in models.items()}

  def loss_fn(model, params):
    logits, attention = model.apply(params, src, lengths, tgt_in)
    return _masked_cross_entropy(logits, tgt_out), attention

  value_and_grads = jax.jit(lambda params: {
      case: jax.value_and_grad(functools.partial(loss_fn, model), has_aux=True)(params[case])
      for case, model in models.items()})
  return params, jax.tree.map(np.asarray, value_and_grads(params))


@pytest.mark.parametrize("style,score", GRAD_CASES)
def test_every_style_and_score_runs_forward_and_backward_under_jit(style, score):
  all_params, results = _gradients()
  params, ((loss, attention), grads) = all_params[style, score], results[style, score]
  assert np.isfinite(loss)
  assert attention.shape == (2, 3, 3)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
  decoder_params = params["params"]["decoder_module"]
  decoder_grads = grads["params"]["decoder_module"]
  assert _norm(grads["params"]["encoder"]) > 0  # the source reaches the loss
  if style == "none":
    np.testing.assert_array_equal(attention, 0.0)
    return
  np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
  # d_enc = 2 * hidden: scores that need d_q == d_k get the key projection, others do not.
  needs_projection = get_score(score).requires_equal_dims
  assert ("key_projection" in decoder_params) == needs_projection
  if needs_projection:
    assert _norm(decoder_grads["key_projection"]) > 0
  if "attn" in decoder_params:  # scores with parameters of their own (all but dot, scaled_dot)
    assert _norm(decoder_grads["attn"]) > 0
  else:
    assert score in ("dot", "scaled_dot")


# --------------------------------------------------------------------------- names


def _init_shapes(model):
  return jax.eval_shape(model.init, jax.random.key(0), *make_batch())


def _config_error(**model):
  """The ConfigError that attnlab.config, the one place options are checked, gives."""
  config = base_config("date")
  config.model.update(model)
  with pytest.raises(ConfigError) as error:
    validate(config)
  return error.value


def test_unknown_style_lists_valid_styles():
  error = _config_error(decoder="transformer")
  assert error.key == "model.decoder"
  assert "valid choices: " + ", ".join(sorted(DECODER_STYLES)) in str(error)


def test_unknown_score_lists_valid_scores():
  with pytest.raises(ValueError, match="unknown score function 'bilinear'") as error:
    _init_shapes(make_model("luong", attention="bilinear"))
  for name in score_names():
    assert name in str(error.value)


def test_unknown_bridge_lists_valid_bridges():
  error = _config_error(bridge="mean")
  assert error.key == "model.bridge"
  assert "valid choices: " + ", ".join(sorted(BRIDGES)) in str(error)


def test_no_attention_with_zero_bridge_is_an_error():
  # A requirement the `none` style's registry entry carries.
  error = _config_error(decoder="none", bridge="zeros")
  assert error.key == "model.bridge" and "bridge='dense'" in str(error)
  validate(base_config("date"))
  _init_shapes(make_model("luong", bridge="zeros"))  # fine with attention


# --------------------------------------------------------------------------- dropout


def test_dropout_only_when_not_deterministic():
  model = make_model("luong", dropout_rate=0.5, decoder_self_attention=True,
                     encoder_self_attention_layers=1)
  no_dropout = model.clone(options=model.options.replace(dropout_rate=0.0))
  src, lengths, tgt_in = make_batch()
  params = random_params(model, src, lengths, tgt_in)
  key_a, key_b = jax.random.key(1), jax.random.key(2)

  @jax.jit
  def run(params):
    apply = functools.partial(model.apply, params, src, lengths, tgt_in)
    return {
        "reference": no_dropout.apply(params, src, lengths, tgt_in)[0],
        "deterministic": apply(deterministic=True)[0],
        "deterministic_rng": apply(deterministic=True, rngs={"dropout": key_a})[0],
        "a": apply(deterministic=False, rngs={"dropout": key_a})[0],
        "a_again": apply(deterministic=False, rngs={"dropout": key_a})[0],
        "b": apply(deterministic=False, rngs={"dropout": key_b})[0],
    }

  out = jax.tree.map(np.asarray, run(params))
  np.testing.assert_array_equal(out["deterministic"], out["reference"])
  np.testing.assert_array_equal(out["deterministic_rng"], out["reference"])
  np.testing.assert_array_equal(out["a"], out["a_again"])  # the key decides the mask
  assert not np.allclose(out["a"], out["reference"], atol=1e-3)
  assert not np.allclose(out["a"], out["b"], atol=1e-3)
  assert np.all(np.isfinite(out["a"]))
