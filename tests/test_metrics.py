"""Tests for attnlab.metrics: numbers against direct computations, masking, jit == eager."""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import length_buckets, metrics
from attnlab.data.vocab import BOS, EOS, PAD

BATCH, TGT_LEN, SRC_LEN, VOCAB = 3, 5, 4, 7
FAST = settings(max_examples=15, deadline=None)


def _batch(seed):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(BATCH, TGT_LEN, VOCAB)).astype(np.float32) * 3
  targets = rng.integers(0, VOCAB, size=(BATCH, TGT_LEN)).astype(np.int32)
  mask = rng.random((BATCH, TGT_LEN)) < 0.7
  mask[0, 0] = True  # at least one valid token
  return logits, targets, mask


def _numpy_cross_entropy(logits, targets, mask, alpha=0.0):
  logits = logits.astype(np.float64)
  log_probs = logits - logits.max(-1, keepdims=True)
  log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
  soft = np.eye(VOCAB)[targets] * (1 - alpha) + alpha / VOCAB
  per_token = -(soft * log_probs).sum(-1)
  return (per_token * mask).sum(), mask.sum()


# ------------------------------------------------------------------------- cross-entropy


@FAST
@given(seed=st.integers(0, 2**31 - 1), alpha=st.sampled_from([0.0, 0.1]))
def test_cross_entropy_matches_numpy_log_softmax(seed, alpha):
  logits, targets, mask = _batch(seed)
  loss_sum, count = metrics.sequence_cross_entropy(
      jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask), label_smoothing=alpha)
  want_sum, want_count = _numpy_cross_entropy(logits, targets, mask, alpha)
  np.testing.assert_allclose(float(loss_sum), want_sum, rtol=1e-5)
  assert int(count) == want_count


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5])
def test_smoothed_cross_entropy_and_its_gradient_equal_optax_with_dense_targets(alpha):
  """The smoothed loss never builds the dense target; optax's dense form is the reference."""
  logits, targets, mask = (jnp.asarray(x) for x in _batch(7))

  def reference(logits):
    soft = optax.smooth_labels(jax.nn.one_hot(targets, VOCAB), alpha)
    return jnp.sum(jnp.where(mask, optax.softmax_cross_entropy(logits, soft), 0.0))

  ours = jax.value_and_grad(
      lambda z: metrics.sequence_cross_entropy(z, targets, mask, label_smoothing=alpha)[0])
  (got, got_grad), (want, want_grad) = ours(logits), jax.value_and_grad(reference)(logits)
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(got_grad), np.asarray(want_grad), rtol=0, atol=1e-6)
  assert np.all(np.asarray(got_grad)[~np.asarray(mask)] == 0.0)


@FAST
@given(seed=st.integers(0, 2**31 - 1),
       junk=st.sampled_from([0.0, 1e4, -1e4, np.inf, np.nan]))
def test_cross_entropy_ignores_masked_positions(seed, junk):
  logits, targets, mask = _batch(seed)
  changed_logits, changed_targets = logits.copy(), targets.copy()
  changed_logits[~mask] = junk
  changed_targets[~mask] = (targets[~mask] + 1) % VOCAB
  a = metrics.sequence_cross_entropy(logits, targets, mask)
  b = metrics.sequence_cross_entropy(changed_logits, changed_targets, mask)
  assert float(a[0]) == pytest.approx(float(b[0]), rel=1e-6)
  assert int(a[1]) == int(b[1])


def test_cross_entropy_uniform_logits_is_log_vocab_per_token():
  logits = jnp.zeros((2, 3, VOCAB))
  mask = jnp.array([[True, True, False], [True, False, False]])
  loss_sum, count = metrics.sequence_cross_entropy(logits, jnp.ones((2, 3), jnp.int32), mask)
  assert int(count) == 3
  assert float(loss_sum) == pytest.approx(3 * math.log(VOCAB), rel=1e-6)
  assert metrics.perplexity(loss_sum, count) == pytest.approx(VOCAB, rel=1e-5)


def test_cross_entropy_bad_shapes_raise():
  logits, targets, mask = _batch(0)
  with pytest.raises(ValueError, match="targets"):
    metrics.sequence_cross_entropy(logits, targets[:, :-1], mask)
  with pytest.raises(ValueError, match="mask"):
    metrics.sequence_cross_entropy(logits, targets, mask[:, :-1])
  with pytest.raises(ValueError, match="logits"):
    metrics.sequence_cross_entropy(logits[0], targets, mask)
  with pytest.raises(ValueError, match="label_smoothing"):
    metrics.sequence_cross_entropy(logits, targets, mask, label_smoothing=1.0)


# ------------------------------------------------------------------------- accuracy


def test_token_correct_hand_made():
  # argmax per position: [[2, 0, 1]], targets [[2, 1, 1]], last position masked.
  logits = jnp.array([[[0., 0., 5.], [3., 0., 0.], [0., 1., 0.]]])
  targets = jnp.array([[2, 1, 1]])
  mask = jnp.array([[True, True, False]])
  correct, count = metrics.token_correct(logits, targets, mask)
  assert (int(correct), int(count)) == (1, 2)


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_token_correct_matches_numpy(seed):
  logits, targets, mask = _batch(seed)
  correct, count = metrics.token_correct(logits, targets, mask)
  assert int(correct) == int(((logits.argmax(-1) == targets) & mask).sum())
  assert int(count) == int(mask.sum())


# ------------------------------------------------------------------------- attention entropy


@pytest.mark.parametrize("n_valid", [1, 2, 3, SRC_LEN])
def test_entropy_of_uniform_row_over_valid_keys_is_log_n(n_valid):
  src_mask = np.arange(SRC_LEN)[None, :] < n_valid  # [1, src_len]
  weights = np.where(src_mask, 1.0 / n_valid, 0.0)[:, None, :].repeat(2, axis=1)
  tgt_mask = np.array([[True, True]])
  ent, count = metrics.attention_entropy(weights, tgt_mask, src_mask)
  assert int(count) == 2
  assert float(ent) / 2 == pytest.approx(math.log(n_valid), abs=1e-6)


def test_entropy_of_one_hot_rows_is_zero_and_finite():
  weights = jnp.eye(3)[None]  # [1, 3, 3]
  ent, count = metrics.attention_entropy(weights, jnp.ones((1, 3), bool), jnp.ones((1, 3), bool))
  assert float(ent) == 0.0 and int(count) == 3
  grad = jax.grad(lambda w: metrics.attention_entropy(
      w, jnp.ones((1, 3), bool), jnp.ones((1, 3), bool))[0])(weights)
  assert np.all(np.isfinite(grad))


@FAST
@given(weights=hnp.arrays(np.float32, (2, TGT_LEN, SRC_LEN),
                          elements=st.floats(0, 1, width=32)),
       junk=st.floats(0, 10, width=32))
def test_entropy_ignores_masked_positions(weights, junk):
  tgt_mask = np.array([[True, True, True, False, False], [True, False, False, False, False]])
  src_mask = np.array([[True, True, False, False], [True, True, True, False]])
  changed = weights.copy()
  changed[~tgt_mask] = junk
  changed[np.broadcast_to(~src_mask[:, None, :], changed.shape)] = junk
  a, n_a = metrics.attention_entropy(weights, tgt_mask, src_mask)
  b, n_b = metrics.attention_entropy(changed, tgt_mask, src_mask)
  assert np.isfinite(float(a)) and int(n_a) == int(n_b) == 4
  assert float(a) == pytest.approx(float(b), abs=1e-5)
  assert 0.0 <= float(a) <= 3 * math.log(2) + math.log(3) + 1e-5  # each row <= log(n_valid)


# ------------------------------------------------------------------------- jit == eager


def test_jit_matches_eager():
  logits, targets, mask = _batch(3)
  weights = jax.nn.softmax(jnp.asarray(logits[..., :SRC_LEN]), axis=-1)
  src_mask = np.array([[True] * 4, [True, True, False, False], [True, False, False, False]])
  cases = [
      (metrics.sequence_cross_entropy, (logits, targets, mask)),
      (lambda *a: metrics.sequence_cross_entropy(*a, label_smoothing=0.1),
       (logits, targets, mask)),
      (metrics.token_correct, (logits, targets, mask)),
      (metrics.attention_entropy, (weights, mask, src_mask)),
  ]
  for fn, args in cases:
    eager = fn(*args)
    jitted = jax.jit(fn)(*args)
    for e, j in zip(eager, jitted):
      np.testing.assert_allclose(np.asarray(e), np.asarray(j), rtol=1e-6)


# ------------------------------------------------------------------------- perplexity


def test_perplexity_is_exp_of_mean_and_clipped():
  assert metrics.perplexity(2.0, 2) == pytest.approx(math.e)
  assert metrics.perplexity(1e6, 1) == pytest.approx(1e4)
  with pytest.raises(ValueError, match="token_count"):
    metrics.perplexity(1.0, 0)


# ------------------------------------------------------------------------- exact match


def test_strip_special():
  assert metrics.strip_special([BOS, 5, 6, EOS, 7, PAD]) == [5, 6]
  assert metrics.strip_special(np.array([5, PAD, 6])) == [5, 6]
  assert metrics.strip_special([EOS, 5]) == []


def test_exact_match_eos_and_pad_handling():
  predictions = [
      [5, 6, EOS, 9, 9],  # junk after EOS ignored -> match
      [BOS, 7, EOS],  # leading BOS dropped -> match
      [5, 6, 7],  # one token too many -> no match
      [8, PAD, PAD],  # padding dropped -> match
  ]
  references = [[5, 6, EOS, PAD], [7, EOS, PAD], [5, 6], [8, EOS]]
  assert metrics.exact_match(predictions, references) == pytest.approx(0.75)
  padded = np.array([[5, 6, EOS, PAD], [5, 7, EOS, PAD]])
  assert metrics.exact_match(padded, padded) == 1.0
  with pytest.raises(ValueError):
    metrics.exact_match([[1]], [[1], [2]])
  with pytest.raises(ValueError):
    metrics.exact_match([], [])


# ------------------------------------------------------------------------- BLEU

HYPS = ["the cat sat on the mat", "a dog barked at the mailman today", "1999 - 12 - 31"]
REFS = ["the cat sat on a mat", "the dog barked at the postman today", "1999 - 12 - 31"]


def test_bleu_is_100_for_identical_corpora():
  assert metrics.corpus_bleu(REFS, REFS) == pytest.approx(100.0)


def test_bleu_matches_sacrebleu_and_is_lower_for_different_corpora():
  for tokenize in ("none", "13a"):
    score = metrics.corpus_bleu(HYPS, REFS, tokenize=tokenize)
    want = sacrebleu.corpus_bleu(HYPS, [REFS], tokenize=tokenize).score
    assert score == pytest.approx(want)
    assert 0.0 < score < 100.0


def test_bleu_bad_input_raises():
  with pytest.raises(ValueError):
    metrics.corpus_bleu(HYPS[:2], REFS)
  with pytest.raises(ValueError):
    metrics.corpus_bleu("a b c", "a b c")


# ------------------------------------------------------------------------- alignment error rate


def test_aer_is_zero_for_perfect_alignment():
  attention = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1]])
  sure = [(0, 0), (1, 2), (2, 1)]
  assert metrics.alignment_error_rate(attention, sure) == 0.0
  # Extra possible links do not hurt a perfect sure alignment.
  assert metrics.alignment_error_rate(attention, sure, possible=[(0, 1)]) == 0.0


def test_aer_hand_computed():
  # A = {(0,0), (1,1), (2,1)}; S = {(0,0), (1,2)}; P = S ∪ {(1,1)}.
  # |A∩S| = 1, |A∩P| = 2, |A| = 3, |S| = 2  ->  AER = 1 - 3/5 = 0.4.
  attention = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.4, 0.3]])
  aer = metrics.alignment_error_rate(attention, [(0, 0), (1, 2)], possible=[(1, 1)])
  assert aer == pytest.approx(0.4)
  # Without P: |A∩S| = |A∩P| = 1 -> 1 - 2/5.
  assert metrics.alignment_error_rate(attention, [(0, 0), (1, 2)]) == pytest.approx(0.6)


def test_aer_uses_only_valid_positions():
  # Padded column 2 has the largest weight in row 0 but is outside src_length=2;
  # padded row 2 is outside tgt_length=2.
  attention = np.array([[0.3, 0.2, 0.5], [0.1, 0.9, 0.0], [1.0, 0.0, 0.0]])
  assert metrics.alignment_error_rate(
      attention, [(0, 0), (1, 1)], tgt_length=2, src_length=2) == 0.0
  with pytest.raises(ValueError, match="outside"):
    metrics.alignment_error_rate(attention, [(2, 0)], tgt_length=2, src_length=2)


def test_corpus_aer_pools_counts():
  perfect = (np.eye(2), [(0, 0), (1, 1)])  # |A∩S| = |A∩P| = 2, |A| = |S| = 2
  wrong = (np.array([[0.0, 1.0, 0.0]]), [(0, 0)])  # 0, 0, 1, 1
  aer = metrics.corpus_alignment_error_rate([perfect[0], wrong[0]], [perfect[1], wrong[1]])
  assert aer == pytest.approx(1 - 4 / 6)  # not the mean of per-sentence AERs (0.5)
  with pytest.raises(ValueError):
    metrics.corpus_alignment_error_rate([np.eye(2)], [[(0, 0)], [(1, 1)]])


# ------------------------------------------------------------------------- length buckets


def test_length_buckets_and_labels():
  assert length_buckets.bucket_labels([10, 20, 40]) == ["1-10", "11-20", "21-40", ">40"]
  assert length_buckets.bucket_labels([1, 2]) == ["1", "2", ">2"]
  ids = length_buckets.length_buckets([1, 10, 11, 20, 21, 40, 41, 99], [10, 20, 40])
  np.testing.assert_array_equal(ids, [0, 0, 1, 1, 2, 2, 3, 3])
  for bad in ([], [10, 10], [0, 5], [2.5]):
    with pytest.raises(ValueError):
      length_buckets.length_buckets([3], bad)
  with pytest.raises(ValueError, match=">= 1"):
    length_buckets.length_buckets([0, 3], [10])


def test_per_bucket_mean_hand_made():
  lengths = [3, 8, 12, 15, 19, 50]
  values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.5]
  got = length_buckets.per_bucket_mean(values, lengths, [10, 20, 40])
  assert list(got) == ["1-10", "11-20", ">40"]  # empty "21-40" left out
  assert got["1-10"] == {"count": 2, "mean": 0.5, "std": 0.5, "mean_length": 5.5}
  assert got["11-20"]["count"] == 3
  assert got["11-20"]["mean"] == pytest.approx(2 / 3)
  assert got["11-20"]["mean_length"] == pytest.approx(46 / 3)
  assert got[">40"] == {"count": 1, "mean": 0.5, "std": 0.0, "mean_length": 50.0}
  x, means, stds = length_buckets.bucket_curve(got)
  np.testing.assert_allclose(x, [5.5, 46 / 3, 50.0])
  np.testing.assert_allclose(means, [0.5, 2 / 3, 0.5])
  assert stds.shape == (3,)
  with pytest.raises(ValueError):
    length_buckets.per_bucket_mean([1.0], [1, 2], [10])


def test_bleu_of_tokenized_text_does_not_warn_about_detokenizing(caplog):
  """Our BLEU reads tokenized text on purpose: sacrebleu's warning would repeat at every
  evaluation of a real corpus (100+ lines ending in a tokenized period)."""
  lines = [f"a man number {i} sits ." for i in range(120)]
  assert metrics.corpus_bleu(lines, lines) == pytest.approx(100.0)
  assert "detokenize" not in caplog.text
