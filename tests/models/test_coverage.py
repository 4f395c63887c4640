"""Coverage in the decoders: c_t is the running sum of past attention, teacher forcing equals
step by step, the coverage feature reaches the scores (See et al.'s additive form), and models
without coverage carry nothing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnlab.attention import Attention
from attnlab.models import DECODER_STYLES, Seq2Seq
from attnlab.options import defaults

import tiny_seq2seq
from tiny_seq2seq import TGT_VOCAB, random_params

LENGTHS = (4, 2, 1)  # batch of 3; SRC_LEN leaves every row at least one PAD
SRC_LEN, TGT_LEN = 5, 3
STYLES = {"bahdanau": dict(decoder="bahdanau"), "luong": dict(decoder="luong")}


make_batch = functools.partial(tiny_seq2seq.make_batch, lengths=LENGTHS, src_len=SRC_LEN,
                               tgt_len=TGT_LEN)


def make_model(style, **overrides):
  """A tiny Seq2Seq of one of STYLES (``tiny_seq2seq.make_model``)."""
  return tiny_seq2seq.make_model(**{**STYLES[style], **overrides})


# (decoder style, score, mechanism): the See et al. form (additive), a query-dependent term
# (general, dot), location's per-position scalar, and a local window (covered keys gathered
# by ``score_at``).
CASES = {
    "bahdanau_additive": dict(style="bahdanau", attention="additive"),
    "luong_general": dict(style="luong", attention="general"),
    "luong_dot": dict(style="luong", attention="dot"),
    "luong_location": dict(style="luong", attention="location"),
    "bahdanau_concat_local_m": dict(style="bahdanau", attention="concat", mechanism="local_m",
                                    local_window=1),
}


def _coverage_model(case, coverage=True):
  kwargs = dict(CASES[case])
  style = kwargs.pop("style")
  return make_model(style, bidirectional=False, coverage=coverage, **kwargs)


def _without_coverage_weight(params):
  """The same parameters with w_c = 0: the model then scores as without coverage."""
  def zero(path, x):
    return jnp.zeros_like(x) if any(getattr(k, "key", None) == "w_c" for k in path) else x
  return jax.tree_util.tree_map_with_path(zero, params)


@functools.lru_cache(maxsize=None)
def _runs():
  """Per case: teacher-forced (logits, attention); the step-by-step logits, attention and the
  coverage carried *before* each step; and the teacher-forced attention with w_c = 0. One
  jitted program for all cases (compiling is most of the cost)."""
  src, lengths, tgt_in = make_batch()
  models = {case: _coverage_model(case) for case in CASES}
  params = {case: random_params(m.init, src, lengths, tgt_in) for case, m in models.items()}

  def run(model, params):
    forced = model.apply(params, src, lengths, tgt_in)
    memory, state = model.apply(params, src, lengths, TGT_LEN, method=model.start)
    logits, attention, coverage = [], [], []
    for t in range(TGT_LEN):
      coverage.append(state.coverage)
      state, logits_t, attention_t = model.apply(params, memory, state, tgt_in[:, t],
                                                 method=model.step)
      logits.append(logits_t)
      attention.append(attention_t)
    stepwise = tuple(jnp.stack(x, 1) for x in (logits, attention, coverage))
    _, plain_attention = model.apply(_without_coverage_weight(params), src, lengths, tgt_in)
    return forced, stepwise, plain_attention

  run_all = jax.jit(lambda params: {case: run(models[case], params[case]) for case in models})
  return jax.tree.map(np.asarray, run_all(params))


@pytest.mark.parametrize("case", list(CASES))
def test_coverage_is_the_running_sum_of_past_attention(case):
  _, (_, attention, coverage), _ = _runs()[case]
  assert coverage.shape == (len(LENGTHS), TGT_LEN, SRC_LEN)
  np.testing.assert_array_equal(coverage[:, 0], 0.0)
  np.testing.assert_allclose(coverage[:, 1:], np.cumsum(attention, axis=1)[:, :-1], atol=1e-6)
  # Padded source positions never gather coverage.
  src_mask = np.arange(SRC_LEN)[None, :] < np.asarray(LENGTHS)[:, None]
  assert np.all(coverage[~np.broadcast_to(src_mask[:, None, :], coverage.shape)] == 0.0)


@pytest.mark.parametrize("case", list(CASES))
def test_teacher_forcing_equals_step_by_step_with_coverage(case):
  (logits, attention), (step_logits, step_attention, _), _ = _runs()[case]
  assert logits.shape == (len(LENGTHS), TGT_LEN, TGT_VOCAB)
  np.testing.assert_allclose(step_logits, logits, rtol=0, atol=1e-5)
  np.testing.assert_allclose(step_attention, attention, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_coverage_changes_the_attention_after_the_first_step(case):
  (_, attention), _, plain_attention = _runs()[case]
  # Step 0 has c_0 = 0: the coverage term adds nothing there.
  np.testing.assert_allclose(attention[:, 0], plain_attention[:, 0], atol=1e-6)
  assert not np.allclose(attention[:, 1:], plain_attention[:, 1:], atol=1e-4)


def test_additive_score_with_coverage_is_see_et_al():
  """e_i = v^T tanh(W q + U k_i + w_c c_i + b) (See et al. 2017, eq. 11)."""
  rng = np.random.default_rng(0)
  query = jnp.asarray(rng.standard_normal((2, 1, 6)), jnp.float32)
  keys = jnp.asarray(rng.standard_normal((2, 4, 5)), jnp.float32)
  coverage = jnp.asarray(rng.uniform(0, 2, (2, 4)), jnp.float32)
  attn = Attention.create(attention="additive", attention_dim=7, coverage=True)
  params = random_params(attn.init, query, keys, method=attn.attend, coverage=coverage,
                         seed=1, scale=0.5)
  context, weights = attn.apply(params, query, keys, method=attn.attend, coverage=coverage)
  p = jax.tree.map(np.asarray, params["params"])
  s = p["score_fn"]
  hidden = np.tanh((np.asarray(query) @ s["W"]["kernel"])[:, :, None, :]
                   + (np.asarray(keys) @ s["U"]["kernel"] + s["U"]["bias"])[:, None, :, :]
                   + np.asarray(coverage)[:, None, :, None] * p["coverage_feature"]["w_c"])
  scores = hidden @ s["v"][:, 0]  # [batch, 1, k_len]
  expected = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
  np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(context, expected @ np.asarray(keys), rtol=1e-5, atol=1e-5)


def test_without_coverage_the_state_carries_nothing_and_params_are_unchanged():
  src, lengths, tgt_in = make_batch()
  plain, covered = make_model("luong"), make_model("luong", coverage=True)
  shapes = jax.eval_shape(plain.init, jax.random.key(0), src, lengths, tgt_in)
  covered_shapes = jax.eval_shape(covered.init, jax.random.key(0), src, lengths, tgt_in)
  names = lambda tree: {jax.tree_util.keystr(k) for k, _ in  # noqa: E731
                        jax.tree_util.tree_leaves_with_path(tree)}
  assert names(covered_shapes) - names(shapes) == {
      "['params']['decoder_module']['attn']['coverage_feature']['w_c']"}
  _, state = jax.eval_shape(lambda: plain.apply(random_params(plain.init, src, lengths, tgt_in),
                                                src, lengths, 4, method=plain.start))
  assert state.coverage.shape == (len(LENGTHS), 0)


def test_coverage_needs_an_attention_decoder():
  # The no-attention style's registry entry requires it (checked by attnlab.config).
  problems = {r.name: r.problem({**defaults(), "decoder": "none", "coverage": True})
              for r in DECODER_STYLES["none"]}
  assert "attention weights" in problems["coverage"]
  assert all(r.problem({**defaults(), "coverage": True}) is None
             for style in ("bahdanau", "luong") for r in DECODER_STYLES[style])
