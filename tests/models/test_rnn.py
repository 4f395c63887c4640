"""Encoder: padding invariance, bidirectional == unpadded, every cell, self-attention layers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.data.vocab import PAD
from attnlab.models import Encoder, cell_names, make_cell

VOCAB, EMB, HIDDEN = 13, 8, 16
LENGTHS = (4, 1, 3)  # a full row, a single token, a padded row
SRC_LEN, EXTRA = 4, 2  # max(LENGTHS), and the extra padding added on top


def source(lengths, src_len, seed=0, vocab=VOCAB):
  """Random ids >= 4 (no specials) [batch, src_len], PAD after each length; lengths [batch]."""
  lengths = np.asarray(lengths, np.int32)
  src = np.random.default_rng(seed).integers(4, vocab, (len(lengths), src_len)).astype(np.int32)
  src[np.arange(src_len)[None, :] >= lengths[:, None]] = PAD
  return src, lengths


def pad_more(src, extra):
  """[batch, src_len] -> [batch, src_len + extra], the new columns PAD."""
  return np.pad(src, ((0, 0), (0, extra)), constant_values=PAD)


def random_params(module, *args, seed=0, scale=0.3):
  """``module``'s variables with every parameter drawn from N(0, scale^2).

  Cheaper than ``init`` (traced once by eval_shape, never compiled or run), and free of the
  special structure of an initialiser (zero biases) that could hide a bug.
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes)


def _encoder(cell, self_attention_layers=0):
  """A 2-layer bidirectional encoder of ``cell``."""
  return Encoder(vocab_size=VOCAB, emb_dim=EMB, hidden_dim=HIDDEN, cell=cell, num_layers=2,
                 bidirectional=True, self_attention_layers=self_attention_layers, num_heads=2)


@functools.lru_cache(maxsize=None)
def _encodings(cell, self_attention_layers):
  """Encodings of one batch: padded to max(LENGTHS) ('short'), with EXTRA more padding
  ('long') and, without self-attention, each example alone and unpadded ('alone').

  All in one jitted program: one compilation instead of one per shape.
  """
  encoder = _encoder(cell, self_attention_layers)
  src, lengths = source(LENGTHS, SRC_LEN)
  params = random_params(encoder, src, lengths)

  @jax.jit
  def run(params):
    out = {"short": encoder.apply(params, src, lengths),
           "long": encoder.apply(params, pad_more(src, EXTRA), lengths)}
    if not self_attention_layers:
      out["alone"] = [encoder.apply(params, src[i:i + 1, :n], lengths[i:i + 1])
                      for i, n in enumerate(LENGTHS)]
    else:  # the same encoder without its self-attention layers
      recurrent = {"params": {k: v for k, v in params["params"].items()
                              if not k.startswith("self_attention")}}
      out["recurrent"] = _encoder(cell).apply(recurrent, src, lengths)
    return out

  return jax.tree.map(np.asarray, run(params))


def _assert_padding_invariant(cell, self_attention_layers):
  _, lengths = source(LENGTHS, SRC_LEN)
  encodings = _encodings(cell, self_attention_layers)
  short, long = encodings["short"], encodings["long"]
  real = np.arange(SRC_LEN + EXTRA)[None, :] < lengths[:, None]  # [batch, src_len + extra]
  assert short.outputs.shape == (len(LENGTHS), SRC_LEN, 2 * HIDDEN)
  assert long.outputs.shape == (len(LENGTHS), SRC_LEN + EXTRA, 2 * HIDDEN)
  np.testing.assert_array_equal(long.mask, real)
  # Zero at padding, and not trivially zero at real tokens.
  np.testing.assert_array_equal(long.outputs[~real], 0.0)
  np.testing.assert_array_equal(short.outputs[~real[:, :SRC_LEN]], 0.0)
  assert np.all(np.abs(long.outputs[real]).sum(-1) > 0)
  np.testing.assert_allclose(long.outputs[:, :SRC_LEN], short.outputs, rtol=0, atol=1e-6)
  np.testing.assert_allclose(long.final, short.final, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", cell_names())
def test_extra_padding_changes_no_output_nor_final_state(cell):
  _assert_padding_invariant(cell, 0)


@pytest.mark.parametrize("cell", cell_names())
def test_bidirectional_padded_batch_equals_each_example_unpadded(cell):
  encodings = _encodings(cell, 0)
  batched = encodings["short"]
  for i, n in enumerate(LENGTHS):
    alone = encodings["alone"][i]  # batch of 1, src_len = its length
    assert alone.outputs.shape == (1, n, 2 * HIDDEN)
    np.testing.assert_allclose(batched.outputs[i, :n], alone.outputs[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(batched.final[i], alone.final[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", cell_names())
def test_final_is_forward_last_true_step_and_backward_first_step(cell):
  # Without self-attention layers the top layer's outputs are its hidden states: the forward
  # final state is the output at length - 1 (not at the padded end), the backward one at 0.
  _, lengths = source(LENGTHS, SRC_LEN)
  encoded = _encodings(cell, 0)["long"]
  last = encoded.outputs[np.arange(len(LENGTHS)), lengths - 1, :HIDDEN]
  first = encoded.outputs[:, 0, HIDDEN:]
  np.testing.assert_allclose(encoded.final, np.concatenate([last, first], -1), rtol=0, atol=1e-6)


def test_self_attention_layer_is_padding_invariant():
  _assert_padding_invariant("gru", 1)
  # The layer is really used: its outputs differ from the recurrent layers' alone.
  encodings = _encodings("gru", 1)
  assert not np.allclose(encodings["short"].outputs, encodings["recurrent"].outputs, atol=1e-3)


def test_unknown_cell_lists_valid_cells():
  with pytest.raises(ValueError, match="unknown cell 'elman'.*valid cells: gru, lstm, rnn"):
    make_cell("elman", 4)
  encoder = Encoder(vocab_size=VOCAB, emb_dim=EMB, hidden_dim=HIDDEN, cell="elman")
  with pytest.raises(ValueError, match="valid cells: gru, lstm, rnn"):
    jax.eval_shape(encoder.init, jax.random.key(0), *source(LENGTHS, SRC_LEN))


def test_zero_layers_is_an_error():
  encoder = Encoder(vocab_size=VOCAB, emb_dim=EMB, hidden_dim=HIDDEN, num_layers=0)
  with pytest.raises(ValueError, match="num_layers must be >= 1"):
    jax.eval_shape(encoder.init, jax.random.key(0), *source(LENGTHS, SRC_LEN))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_dim(bidirectional):
  encoder = Encoder(vocab_size=VOCAB, emb_dim=EMB, hidden_dim=HIDDEN, cell="lstm",
                    bidirectional=bidirectional)
  src, lengths = source(LENGTHS, SRC_LEN)
  params = jax.eval_shape(encoder.init, jax.random.key(0), src, lengths)
  encoded = jax.eval_shape(encoder.apply, params, src, lengths)
  width = encoder.output_dim
  assert width == HIDDEN * (2 if bidirectional else 1)
  assert encoded.outputs.shape == (len(LENGTHS), SRC_LEN, width)
  assert encoded.final.shape == (len(LENGTHS), width)
  assert encoded.mask.dtype == jnp.bool_


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gru_cell_equals_flax_gru_cell(dtype):
  # The fused cell keeps flax's parameter names and initial values, and its maths: one step
  # from the same carry and input, and the hoisted projection + gru_step, give flax's result.
  from attnlab.models.rnn import GRUCell, gru_step
  import flax.linen as nn
  ours, theirs = GRUCell(HIDDEN, dtype=dtype), nn.GRUCell(HIDDEN, dtype=dtype)
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.standard_normal((3, HIDDEN)), jnp.float32)
  x = jnp.asarray(rng.standard_normal((3, EMB)), jnp.float32)
  params = ours.init(jax.random.key(7), h, x)
  expected = theirs.init(jax.random.key(7), h, x)
  assert jax.tree.structure(params) == jax.tree.structure(expected)
  jax.tree.map(np.testing.assert_array_equal, params, expected)
  params = random_params(ours, h, x)  # non-zero biases too
  tol = 1e-6 if dtype == jnp.float32 else 2e-2
  want, _ = theirs.apply(params, h, x)
  got, out = ours.apply(params, h, x)
  assert got.dtype == want.dtype  # float32 carry: float32 out, as in flax
  np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=tol)
  np.testing.assert_array_equal(got, out)
  x_proj, w = ours.apply(params, x, method=GRUCell.project_inputs)
  assert x_proj.shape == (3, 3 * HIDDEN) and w.w_h.shape == (HIDDEN, 3 * HIDDEN)
  np.testing.assert_allclose(np.asarray(gru_step(h, x_proj, w.w_h, w.b_hn),
                                        np.float32), np.asarray(want, np.float32), atol=tol)
