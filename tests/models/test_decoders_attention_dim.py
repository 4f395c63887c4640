"""Decoders whose multiplicative score projects to ``attention_dim`` (Britz et al. 2017):
the score projects the keys itself (no decoder key projection, whatever d_enc), the query
width is hidden_dim, and coverage / local windows / step-by-step decoding still work."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab.data.vocab import PAD

import tiny_seq2seq
from tiny_seq2seq import HIDDEN, random_params

ATTENTION_DIM = 12  # neither HIDDEN (16) nor d_enc (2 * HIDDEN): every shape is told apart
LENGTHS = (4, 2, 1)
SRC_LEN, TGT_LEN = 5, 3

# name: (decoder style, score, other options). The encoder is bidirectional (d_enc = 32).
CASES = {
    "luong_dot": ("luong", "dot", {}),
    "bahdanau_scaled_dot": ("bahdanau", "scaled_dot", {}),
    "luong_general": ("luong", "general", {}),
    "luong_dot_coverage": ("luong", "dot", dict(coverage=True)),
    "bahdanau_scaled_dot_local_m": ("bahdanau", "scaled_dot",
                                    dict(mechanism="local_m", local_window=1)),
}


def _model(name, **overrides):
  style, score, options = CASES[name]
  return tiny_seq2seq.make_model(**{**dict(decoder=style, attention=score, cell="rnn",
                                             attention_dim=ATTENTION_DIM),
                                    **options, **overrides})


@functools.lru_cache(maxsize=None)
def _results():
  """For every case: params, (loss, attention) and grads of a masked cross-entropy, and the
  step-by-step (logits, attention) against the teacher-forced ones; one jitted program."""
  src, lengths, tgt_in = tiny_seq2seq.make_batch(LENGTHS, SRC_LEN, TGT_LEN, seed=1)
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((len(LENGTHS), 1), PAD, np.int32)], 1)
  models = {name: _model(name) for name in CASES}
  params = {name: random_params(m, src, lengths, tgt_in) for name, m in models.items()}

  def loss_fn(model, params):
    logits, attention = model.apply(params, src, lengths, tgt_in)
    mask = tgt_out != PAD
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
    return jnp.sum(losses * mask) / jnp.sum(mask), (logits, attention)

  def stepwise(model, params):
    memory, state = model.apply(params, src, lengths, TGT_LEN, method=model.start)
    logits, attention = [], []
    for t in range(TGT_LEN):
      state, logits_t, attention_t = model.apply(params, memory, state, tgt_in[:, t],
                                                 method=model.step)
      logits.append(logits_t)
      attention.append(attention_t)
    return jnp.stack(logits, 1), jnp.stack(attention, 1)

  run = jax.jit(lambda params: {
      name: (jax.value_and_grad(functools.partial(loss_fn, m), has_aux=True)(params[name]),
             stepwise(m, params[name]))
      for name, m in models.items()})
  return params, jax.tree.map(np.asarray, run(params))


@pytest.mark.parametrize("name", list(CASES))
def test_score_projects_keys_itself(name):
  params = jax.eval_shape(_model(name).init, jax.random.key(0),
                          *tiny_seq2seq.make_batch(LENGTHS, SRC_LEN, TGT_LEN))["params"]
  decoder = params["decoder_module"]
  assert "key_projection" not in decoder
  score = jax.tree.map(lambda s: s.shape, decoder["attn"]["score_fn"])
  expected = {"W_q": {"kernel": (HIDDEN, ATTENTION_DIM)},
              "W_k": {"kernel": (2 * HIDDEN, ATTENTION_DIM)}}
  if CASES[name][1] == "general":
    expected["W_a"] = {"kernel": (ATTENTION_DIM, ATTENTION_DIM)}
  assert score == expected
  if CASES[name][2].get("coverage"):  # w_c shifts the projected keys: attention_dim wide
    assert decoder["attn"]["coverage_feature"]["w_c"].shape == (ATTENTION_DIM,)


def test_unprojected_dot_keeps_the_decoder_key_projection():
  params = jax.eval_shape(_model("luong_dot", attention_dim=0).init, jax.random.key(0),
                          *tiny_seq2seq.make_batch(LENGTHS, SRC_LEN, TGT_LEN))["params"]
  decoder = params["decoder_module"]
  assert decoder["key_projection"]["kernel"].shape == (2 * HIDDEN, HIDDEN)
  assert "attn" not in decoder  # dot itself has no parameters


@pytest.mark.parametrize("name", list(CASES))
def test_trains_and_decodes_step_by_step(name):
  params, results = _results()
  ((loss, (logits, attention)), grads), (step_logits, step_attention) = results[name]
  assert np.isfinite(loss)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
  score_grads = grads["params"]["decoder_module"]["attn"]["score_fn"]
  assert float(optax.tree.norm(score_grads["W_q"])) > 0
  assert float(optax.tree.norm(score_grads["W_k"])) > 0
  real = np.arange(SRC_LEN)[None, None, :] < np.asarray(LENGTHS)[:, None, None]
  np.testing.assert_array_equal(attention[~np.broadcast_to(real, attention.shape)], 0.0)
  np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(step_logits, logits, rtol=0, atol=1e-5)
  np.testing.assert_allclose(step_attention, attention, rtol=0, atol=1e-6)
