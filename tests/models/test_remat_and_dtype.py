"""model.remat and model.dtype: same maths, same parameters, float32 where it matters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.models import Seq2Seq


def _batch(batch=3, src_len=7, tgt_len=5, vocab=20, seed=0):
  rng = np.random.default_rng(seed)
  src = jnp.asarray(rng.integers(4, vocab, (batch, src_len)), jnp.int32)
  lengths = jnp.asarray(np.resize([src_len, 4, 1], batch), jnp.int32)
  tgt = jnp.asarray(rng.integers(4, vocab, (batch, tgt_len)), jnp.int32)
  return src, lengths, tgt


def _loss_and_grads(model, params, src, lengths, tgt):
  def loss(p):
    logits, attention = model.apply(p, src, lengths, tgt)
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0]) + jnp.mean(attention ** 2)
  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("cell,style,bidirectional", [("gru", "luong", True),
                                                      ("lstm", "bahdanau", False)])
def test_remat_changes_nothing_but_memory(cell, style, bidirectional):
  src, lengths, tgt = _batch()
  kwargs = dict(src_vocab_size=20, tgt_vocab_size=20, emb_dim=8, hidden_dim=12, cell=cell,
                decoder=style, attention="additive", bidirectional=bidirectional,
                encoder_layers=2)
  plain, remat = Seq2Seq.create(**kwargs), Seq2Seq.create(**kwargs, remat=True)
  params = plain.init(jax.random.key(0), src, lengths, tgt)
  # The same parameter tree (checkpoints move between the two) and the same initial values.
  remat_params = remat.init(jax.random.key(0), src, lengths, tgt)
  assert jax.tree.structure(params) == jax.tree.structure(remat_params)
  jax.tree.map(np.testing.assert_array_equal, params, remat_params)
  loss, grads = _loss_and_grads(plain, params, src, lengths, tgt)
  remat_loss, remat_grads = jax.jit(lambda p: _loss_and_grads(remat, p, src, lengths, tgt))(params)
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               remat_grads, grads)


def test_remat_keeps_fewer_bytes_for_the_backward_pass():
  src, lengths, tgt = _batch(batch=8, src_len=60, tgt_len=30)
  sizes = {}
  for remat in (False, True):
    model = Seq2Seq.create(src_vocab_size=20, tgt_vocab_size=20, emb_dim=16, hidden_dim=32,
                           decoder="luong", attention="general", bidirectional=True,
                           remat=remat)
    params = model.init(jax.random.key(0), src, lengths, tgt)
    compiled = jax.jit(lambda p: _loss_and_grads(model, p, src, lengths, tgt)).lower(
        params).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip("this backend reports no memory analysis")
    sizes[remat] = analysis.temp_size_in_bytes
  assert sizes[True] < sizes[False], sizes


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_parameters_and_outputs():
  src, lengths, tgt = _batch()
  kwargs = dict(src_vocab_size=20, tgt_vocab_size=20, emb_dim=8, hidden_dim=12,
                decoder="luong", attention="general", bidirectional=True)
  f32, bf16 = Seq2Seq.create(**kwargs), Seq2Seq.create(**kwargs, dtype="bfloat16")
  params = f32.init(jax.random.key(0), src, lengths, tgt)
  bf16_params = bf16.init(jax.random.key(0), src, lengths, tgt)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(bf16_params))
  logits, attention = bf16.apply(params, src, lengths, tgt)
  assert logits.dtype == jnp.float32 and attention.dtype == jnp.float32
  ref_logits, _ = f32.apply(params, src, lengths, tgt)
  # Close to float32, but not equal: the matmuls really ran in bfloat16 (8-bit mantissa).
  assert not np.array_equal(np.asarray(logits), np.asarray(ref_logits))
  np.testing.assert_allclose(logits, ref_logits, atol=0.05)
  hlo = jax.jit(lambda p: bf16.apply(p, src, lengths, tgt)).lower(params).as_text()
  assert "bf16" in hlo
  loss, grads = _loss_and_grads(bf16, params, src, lengths, tgt)
  assert loss.dtype == jnp.float32 and np.isfinite(loss)
  assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
