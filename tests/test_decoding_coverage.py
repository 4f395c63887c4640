"""GNMT's coverage penalty in beam search: the formula on hand-made attention, the ranking
flip it causes, and that beam search only re-ranks its final beam with it."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from attnlab.data.vocab import BOS, PAD
from attnlab.decoding import COVERAGE_EPS, beam_search, coverage_penalty, hypothesis_scores
from attnlab.models import Seq2Seq


def test_coverage_penalty_formula_on_hand_made_attention():
  # One example, source length 3 of 4 (position 3 is padding), two hypotheses.
  attention = np.zeros((1, 2, 3, 4), np.float32)
  attention[0, 0] = [[0.5, 0.5, 0.0, 0.0],   # totals [1.5, 0.7, 0.3] (0.9 on padding: ignored)
                     [1.0, 0.0, 0.0, 0.0],
                     [0.0, 0.2, 0.3, 0.9]]
  attention[0, 1, :2] = [[1.0, 0.0, 0.0, 0.0],  # totals [1, 1, 0]: position 2 never attended
                         [0.0, 1.0, 0.0, 0.0]]
  penalty = np.asarray(coverage_penalty(attention, jnp.array([3]), beta=0.5))
  assert penalty.shape == (1, 2)
  np.testing.assert_allclose(penalty[0, 0], 0.5 * (math.log(1.0) + math.log(0.7) + math.log(0.3)),
                             rtol=1e-6)
  # log(0) would be -inf: the total is clamped to COVERAGE_EPS.
  np.testing.assert_allclose(penalty[0, 1], 0.5 * math.log(COVERAGE_EPS), rtol=1e-6)
  # Full coverage costs nothing; beta = 0 turns it off.
  np.testing.assert_array_equal(coverage_penalty(np.eye(3)[None], jnp.array([3]), 2.0), [0.0])
  np.testing.assert_array_equal(coverage_penalty(attention, jnp.array([3]), 0.0), [[0.0, 0.0]])


def test_coverage_penalty_flips_the_ranking_as_its_formula_says():
  # Hypothesis A is more probable but looks at source position 0 only; B covers the source.
  attention = np.zeros((1, 2, 2, 2), np.float32)
  attention[0, 0] = [[1.0, 0.0], [0.8, 0.2]]  # totals [1.8, 0.2]: cp = beta * log 0.2
  attention[0, 1] = [[1.0, 0.0], [0.0, 1.0]]  # totals [1, 1]: cp = 0
  log_prob = jnp.array([[-1.0, -1.5]])
  lengths = jnp.array([[2, 2]])
  src_lengths = jnp.array([2])
  plain = np.asarray(hypothesis_scores(log_prob, lengths, attention, src_lengths, 0.0, 0.0))
  np.testing.assert_allclose(plain, [[-1.0, -1.5]])
  assert plain[0, 0] > plain[0, 1]
  # A loses once beta * log(0.2) < -0.5, i.e. beta > 0.5 / log 5 = 0.311.
  below = np.asarray(hypothesis_scores(log_prob, lengths, attention, src_lengths, 0.0, 0.3))
  above = np.asarray(hypothesis_scores(log_prob, lengths, attention, src_lengths, 0.0, 0.32))
  assert below[0, 0] > below[0, 1] and above[0, 0] < above[0, 1]
  np.testing.assert_allclose(above, [[-1.0 + 0.32 * math.log(0.2), -1.5]], rtol=1e-6)
  # With a length penalty: log P / lp + cp (GNMT eq. 14).
  alpha = 0.6
  lp = ((5.0 + 2) / 6.0) ** alpha
  both = np.asarray(hypothesis_scores(log_prob, lengths, attention, src_lengths, alpha, 1.0))
  np.testing.assert_allclose(both, [[-1.0 / lp + math.log(0.2), -1.5 / lp]], rtol=1e-6)


def test_beam_search_reranks_its_final_beam_by_the_coverage_penalty():
  src = np.array([[4, 5, 6, 7, PAD], [5, 6, PAD, PAD, PAD]], np.int32)
  src_lengths = np.array([4, 2], np.int32)
  model = Seq2Seq.create(src_vocab_size=9, tgt_vocab_size=7, emb_dim=8, hidden_dim=8,
                         decoder="bahdanau", attention="additive", coverage=True,
                         bidirectional=False)
  tgt_in = np.full((2, 3), BOS, np.int32)
  params = model.init(jax.random.key(0), src, src_lengths, tgt_in)
  params = jax.tree.map(lambda x: x + 0.5 * jax.random.normal(jax.random.key(1), x.shape),
                        params)  # random w_c too, and less uniform attention
  plain = beam_search(model, params, src, src_lengths, max_len=4, beam_size=4, alpha=0.0)
  ranked = beam_search(model, params, src, src_lengths, max_len=4, beam_size=4, alpha=0.0,
                       beta=5.0)
  plain, ranked = jax.tree.map(np.asarray, (plain, ranked))
  # The same hypotheses are found (pruning uses log P only), only their order may differ.
  for b in range(2):
    as_set = lambda r: sorted((tuple(t), round(float(p), 4))  # noqa: E731
                              for t, p in zip(r.tokens[b], r.log_probs[b]))
    assert as_set(plain) == as_set(ranked)
  expected = hypothesis_scores(ranked.log_probs, ranked.lengths, ranked.attention, src_lengths,
                               0.0, 5.0)
  np.testing.assert_allclose(ranked.scores, expected, rtol=1e-5, atol=1e-5)
  assert np.all(np.diff(ranked.scores, axis=1) <= 1e-6)  # best first
  np.testing.assert_allclose(plain.scores, plain.log_probs)
  assert np.all(ranked.scores <= ranked.log_probs + 1e-6)  # the penalty is <= 0
