"""Local, hard and monotonic attention inside both decoder styles: forward and backward under
jit in training mode, teacher forcing == step by step at evaluation, greedy and beam
decoding carry the attention state, hard monotonic decoding never moves backwards."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attnlab.attention import hard as hard_lib
from attnlab.data.vocab import PAD
from attnlab.decoding import beam_search, greedy_decode
from attnlab.models import Seq2Seq

import tiny_seq2seq
from tiny_seq2seq import EMB, HIDDEN, SRC_VOCAB, TGT_VOCAB, random_params

LENGTHS = (5, 2, 1)
SRC_LEN, TGT_LEN, MAX_DECODE = 6, 4, 5

MECHANISMS = {
    "local_m": dict(mechanism="local_m"),
    "local_p": dict(mechanism="local_p"),
    "hard_reinforce": dict(mechanism="hard", hard_estimator="reinforce"),
    "hard_gumbel": dict(mechanism="hard", hard_estimator="gumbel"),
    "monotonic": dict(mechanism="monotonic"),
}
STYLES = {"bahdanau": dict(decoder="bahdanau", attention="additive"),
          "luong": dict(decoder="luong", attention="general")}
# Every mechanism in both styles; the gumbel estimator (the same mechanism, another
# training path) in one.
CASES = [(style, mechanism) for style in STYLES for mechanism in MECHANISMS
         if mechanism != "hard_gumbel" or style == "luong"]
# Decoding (greedy, beam search) is tested for the mechanism that carries a state.
DECODED = {"monotonic"}


def make_model(style, mechanism, **overrides):
  kwargs = dict(src_vocab_size=SRC_VOCAB, tgt_vocab_size=TGT_VOCAB, emb_dim=EMB,
                hidden_dim=HIDDEN, bidirectional=False, max_src_len=8, local_window=1,
                cell="rnn")
  return Seq2Seq.create(**{**kwargs, **STYLES[style], **MECHANISMS[mechanism], **overrides})


def make_batch(seed=0):
  """src, lengths, tgt_in (``tiny_seq2seq.make_batch``) and tgt_out (tgt_in shifted left)."""
  src, lengths, tgt_in = tiny_seq2seq.make_batch(LENGTHS, SRC_LEN, TGT_LEN, seed)
  tgt_out = np.concatenate([tgt_in[:, 1:], np.full((len(lengths), 1), PAD, np.int32)], 1)
  return src, lengths, tgt_in, tgt_out


@functools.lru_cache(maxsize=None)
def _models_and_params():
  src, lengths, tgt_in, _ = make_batch()
  models = {case: make_model(*case) for case in CASES}
  # Monotonic: larger weights spread the energies, so that hard decoding both stops and
  # moves on (at scale 0.3 it mostly stops at position 0 for good).
  params = {case: random_params(m, src, lengths, tgt_in,
                                scale=1.0 if case[1] == "monotonic" else 0.3)
            for case, m in models.items()}
  return models, params


# --------------------------------------------------------------------------- training mode


@functools.lru_cache(maxsize=None)
def _gradients():
  """For every case: (loss, attention), grads of the training-mode (deterministic=False)
  cross-entropy, plus hard attention's REINFORCE surrogate; one jitted program."""
  src, lengths, tgt_in, tgt_out = make_batch(1)
  models, params = _models_and_params()
  mask = tgt_out != PAD

  def loss_fn(model, params, key):
    (logits, attention), sown = model.apply(
        params, src, lengths, tgt_in, False, rngs={"sample": key}, mutable=[hard_lib.SAMPLES])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out) * mask
    loss = jnp.sum(nll) / jnp.sum(mask)
    surrogate, _ = hard_lib.reinforce_loss(
        sown, -jax.lax.stop_gradient(nll.sum(1)), jnp.zeros(()), mask,
        jnp.ones(len(LENGTHS), bool), jnp.asarray(False), model.options.hard_entropy_weight,
        model.options.hard_baseline_decay)
    return loss + surrogate, (attention, surrogate)

  run = jax.jit(lambda params, key: {
      case: jax.value_and_grad(functools.partial(loss_fn, model), has_aux=True)(
          params[case], key) for case, model in models.items()})
  return jax.tree.map(np.asarray, run(params, jax.random.key(3)))


@pytest.mark.parametrize("style,mechanism", CASES)
def test_training_mode_forward_and_backward_under_jit(style, mechanism):
  (loss, (attention, surrogate)), grads = _gradients()[style, mechanism]
  assert np.isfinite(loss) and np.isfinite(surrogate)
  for path, grad in jax.tree_util.tree_leaves_with_path(grads):
    assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
  assert attention.shape == (len(LENGTHS), TGT_LEN, SRC_LEN)
  real = np.arange(SRC_LEN)[None, None, :] < np.asarray(LENGTHS)[:, None, None]
  np.testing.assert_array_equal(attention[~np.broadcast_to(real, attention.shape)], 0.0)
  assert np.all(attention.sum(-1) <= 1.0 + 1e-5)
  if mechanism.startswith("hard"):
    assert set(np.unique(attention)) <= {0.0, 1.0}
  assert (surrogate != 0.0) == (mechanism == "hard_reinforce")
  # Gradient reaches the attention parameters: through the Gaussian for local_p's position
  # network, the surrogate for REINFORCE, the straight-through softmax for gumbel.
  attn = grads["params"]["decoder_module"]["attn"]
  assert optax.tree.norm(attn["score_fn"]) > 0
  if mechanism == "local_p":
    assert optax.tree.norm(attn["mechanism_fn"]) > 0  # W_p, v_p
  if mechanism == "monotonic":
    assert np.abs(attn["mechanism_fn"]["r"]) > 0


# --------------------------------------------------------------------------- evaluation


@functools.lru_cache(maxsize=None)
def _evaluation():
  """For every case: teacher-forced (logits, attention), the same from start + step, and
  greedy / beam decoding; one jitted program."""
  src, lengths, tgt_in, _ = make_batch()
  models, params = _models_and_params()

  def run(model, params, mechanism):
    forced = model.apply(params, src, lengths, tgt_in)
    memory, state = model.apply(params, src, lengths, MAX_DECODE, method=model.start)
    logits, attention = [], []
    for t in range(TGT_LEN):
      state, logits_t, attention_t = model.apply(params, memory, state, tgt_in[:, t],
                                                 method=model.step)
      logits.append(logits_t)
      attention.append(attention_t)
    stepwise = (jnp.stack(logits, 1), jnp.stack(attention, 1))
    if mechanism not in DECODED:
      return forced, stepwise, None, None
    greedy = greedy_decode(model, params, src, lengths, MAX_DECODE)
    beams = beam_search(model, params, src, lengths, MAX_DECODE, beam_size=3)
    return forced, stepwise, greedy, beams

  run_all = jax.jit(lambda params: {
      case: run(models[case], params[case], case[1]) for case in models})
  return jax.tree.map(np.asarray, run_all(params))


@pytest.mark.parametrize("style,mechanism", CASES)
def test_teacher_forcing_equals_step_by_step_at_evaluation(style, mechanism):
  (logits, attention), (step_logits, step_attention), greedy, beams = _evaluation()[
      style, mechanism]
  np.testing.assert_allclose(step_logits, logits, rtol=0, atol=1e-5)
  np.testing.assert_allclose(step_attention, attention, rtol=0, atol=1e-6)
  assert not np.allclose(logits[:, 0], logits[:, 1], atol=1e-3)
  if mechanism.startswith("hard") or mechanism == "monotonic":  # one position or none
    assert set(np.unique(attention)) <= {0.0, 1.0}
    assert np.all(attention.sum(-1) <= 1.0)
  else:
    assert not np.allclose(attention[0, 0], attention[0, 1])  # the window moves


@pytest.mark.parametrize("style", list(STYLES))
def test_greedy_and_beam_decoding_carry_the_attention_state(style):
  (_, attention), _, greedy, beams = _evaluation()[style, "monotonic"]
  assert greedy.tokens.shape == (len(LENGTHS), MAX_DECODE)
  assert beams.tokens.shape == (len(LENGTHS), 3, MAX_DECODE)
  assert np.all(np.diff(beams.scores, axis=1) <= 1e-6)  # best first
  for weights in (greedy.attention, beams.attention):
    assert set(np.unique(weights)) <= {0.0, 1.0}
  # Greedy decoding's first step sees the same state and input as teacher forcing.
  np.testing.assert_array_equal(greedy.attention[:, 0], attention[:, 0])


def _assert_monotonic(rows):
  """rows [steps, src_len] of one-hot or zero alignments: positions never decrease and no
  position is attended after a zero row (the end was passed or the output ended)."""
  previous, ended = -1, False
  for row in rows:
    if not row.any():
      ended = True
      continue
    assert not ended
    position = int(np.argmax(row))
    assert position >= previous
    previous = position


@pytest.mark.parametrize("style", list(STYLES))
def test_hard_monotonic_decoding_never_moves_backwards(style):
  (_, attention), _, greedy, beams = _evaluation()[style, "monotonic"]
  for rows in [*attention, *greedy.attention, *beams.attention.reshape(-1, MAX_DECODE, SRC_LEN)]:
    _assert_monotonic(rows)
  # Not vacuous: the scan moves on from position 0 (where every alignment starts) to a later
  # position or past the end (a zero row under teacher forcing) for some example.
  assert any(np.argmax(rows, -1).max() > 0 or not rows.any(-1).all() for rows in attention)


def test_unknown_mechanism_and_estimator_list_the_valid_ones():
  src, lengths, tgt_in, _ = make_batch()
  model = make_model("luong", "local_m")
  with pytest.raises(ValueError, match="valid mechanisms: global, hard, local_m, local_p, "
                                       "monotonic"):
    jax.eval_shape(model.clone(options=model.options.replace(mechanism="sparse")).init,
                   jax.random.key(0), src, lengths, tgt_in)
  # An estimator is hard attention's own option: its registry entry checks it.
  problem = hard_lib.Hard.option_checks["hard_estimator"].problem("nvil")
  assert "valid choices: gumbel, reinforce" in problem
