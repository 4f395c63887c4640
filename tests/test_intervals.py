"""attnlab.intervals on synthetic test sets with known answers: intervals cover the true value
at about their nominal rate, the two-level bootstrap widens with seed variation, and the
paired bootstrap test tells identical systems from clearly different ones."""

import numpy as np
import pytest
import sacrebleu

from attnlab import intervals, length_buckets, metrics


def bernoulli_stats(outcomes) -> np.ndarray:
  """[n] 0/1 outcomes -> exact-match statistics [n, 2]."""
  return intervals.sentence_statistics([{"exact_match": int(x)} for x in outcomes],
                                       "exact_match")


def test_sentence_bootstrap_covers_a_known_rate_at_about_95_percent():
  rng = np.random.default_rng(0)
  rate, n, trials = 0.3, 150, 200
  covered = 0
  for trial in range(trials):
    stats = bernoulli_stats(rng.random(n) < rate)
    low, high = intervals.bootstrap_interval(stats, "exact_match", n_resamples=500, seed=trial)
    covered += low <= rate <= high
  assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_bootstrap_interval_is_reproducible_and_degenerate_when_nothing_varies():
  stats = bernoulli_stats(np.arange(40) % 3 == 0)
  assert intervals.bootstrap_interval(stats, "exact_match") == \
      intervals.bootstrap_interval(stats, "exact_match")
  low, high = intervals.bootstrap_interval(stats, "exact_match")
  assert low < 14 / 40 < high
  assert intervals.bootstrap_interval(bernoulli_stats(np.ones(9)), "exact_match") == (1.0, 1.0)
  assert intervals.bootstrap_interval(bernoulli_stats([0]), "exact_match") == (0.0, 0.0)
  with pytest.raises(ValueError, match="integer"):
    intervals.bootstrap_interval(stats.astype(float), "exact_match")
  with pytest.raises(ValueError, match="unknown statistic"):
    intervals.bootstrap_interval(stats, "rouge")


def test_bleu_from_resampled_statistics_is_sacrebleu_corpus_bleu():
  hyps = ["a b c d e", "a b x", "p q r s", "the cat sat", "one two three four five six"]
  refs = ["a b c d f", "a b c", "p q r s", "the cat sat down", "one two three four five six"]
  stats = metrics.bleu_statistics(hyps, refs)
  picks = [0, 0, 2, 4, 3]  # one resample, with a repeat
  expected = sacrebleu.corpus_bleu([hyps[i] for i in picks], [[refs[i] for i in picks]],
                                   tokenize="none").score
  assert intervals.STATISTICS["bleu"].value(stats[picks].sum(0)) == pytest.approx(expected)
  low, high = intervals.bootstrap_interval(stats, "bleu")
  assert 0.0 <= low < high <= 100.0


def test_alignment_error_rate_pools_counts_per_resample():
  counts = np.array([[2, 2, 3, 2], [0, 1, 2, 1], [4, 4, 4, 4]])  # |A∩S|, |A∩P|, |A|, |S|
  value = intervals.STATISTICS["alignment_error_rate"].value(counts.sum(0))
  assert value == pytest.approx(1 - (6 + 7) / (9 + 7))
  low, high = intervals.bootstrap_interval(counts, "alignment_error_rate")
  assert 0.0 <= low <= value <= high <= 1.0


def test_per_bucket_statistic_gives_each_bucket_its_interval():
  outcomes = np.array([1, 0, 1, 1, 1, 1, 0, 0, 0, 1])
  lengths = np.array([2, 3, 4, 5, 12, 13, 14, 15, 16, 17])
  got = length_buckets.per_bucket_statistic(bernoulli_stats(outcomes), "exact_match", lengths,
                                            [10], sentence_values=outcomes)
  assert list(got) == ["1-10", ">10"]
  assert got["1-10"]["mean"] == 0.75 and got["1-10"]["count"] == 4
  assert got[">10"]["mean"] == pytest.approx(0.5)
  assert got[">10"]["std"] == pytest.approx(0.5)
  for bucket in got.values():
    assert 0.0 <= bucket["low"] <= bucket["mean"] <= bucket["high"] <= 1.0


def test_two_level_interval_widens_with_seed_variation():
  rng = np.random.default_rng(1)
  n = 300
  same = np.stack([bernoulli_stats(rng.random(n) < 0.5)] * 4)  # [4 seeds, n, 2], no seed effect
  varied = np.stack([bernoulli_stats(rng.random(n) < p) for p in (0.2, 0.4, 0.6, 0.8)])
  one = intervals.bootstrap_interval(same[0], "exact_match")
  low, high = intervals.two_level_interval(same, "exact_match")
  assert high - low == pytest.approx(one[1] - one[0], rel=0.25)
  v_low, v_high = intervals.two_level_interval(varied, "exact_match")
  pooled = intervals.bootstrap_interval(varied.reshape(-1, 2), "exact_match")
  assert v_high - v_low > 3 * (pooled[1] - pooled[0])  # the seeds, not the sentences, dominate
  assert v_low < 0.5 < v_high
  with pytest.raises(ValueError, match="3-D"):
    intervals.two_level_interval(same[0], "exact_match")


def test_paired_bootstrap_finds_no_difference_between_identical_systems():
  rng = np.random.default_rng(2)
  stats = bernoulli_stats(rng.random(200) < 0.6)
  result = intervals.paired_bootstrap(stats, stats, "exact_match")
  assert result.difference == 0.0 and result.low == result.high == 0.0
  assert result.win_fraction == 0.0 and result.p_value == 1.0
  # The same score on different sentences: a coin flip, nowhere near significance.
  a = bernoulli_stats(np.arange(200) % 2 == 0)
  b = bernoulli_stats(np.arange(200) % 2 == 1)
  result = intervals.paired_bootstrap(a, b, "exact_match")
  assert result.difference == 0.0 and 0.3 < result.p_value < 0.7
  assert result.low < 0.0 < result.high


def test_paired_bootstrap_finds_a_clear_difference():
  rng = np.random.default_rng(3)
  u = rng.random(300)
  better, worse = bernoulli_stats(u < 0.75), bernoulli_stats(u < 0.55)
  result = intervals.paired_bootstrap(better, worse, "exact_match")
  assert result.difference == pytest.approx(((u < 0.75).sum() - (u < 0.55).sum()) / 300)
  assert result.p_value < 0.01 and result.win_fraction > 0.99 and result.low > 0.0
  reverse = intervals.paired_bootstrap(worse, better, "exact_match")
  assert reverse.p_value > 0.99 and reverse.high < 0.0
  # An error rate: lower is better. [|A∩S|, |A∩P|, |A|, |S|] with 3 of 4 vs 1 of 4 links right.
  good = np.tile([3, 3, 4, 4], (50, 1))
  bad = np.tile([1, 1, 4, 4], (50, 1))
  assert intervals.paired_bootstrap(good, bad, "alignment_error_rate").p_value < 0.01
  # Several seeds per system (different counts): seeds are resampled within each system.
  seeds_a = np.stack([better, better])
  seeds_b = np.stack([worse, worse, worse])
  assert intervals.paired_bootstrap(seeds_a, seeds_b, "exact_match").p_value < 0.01
  with pytest.raises(ValueError, match="same sentences"):
    intervals.paired_bootstrap(better, worse[:10], "exact_match")


def test_two_level_interval_covers_the_mean_over_seeds_and_sentences():
  """Crossed seeds x sentences: each test set is a fresh draw of sentence difficulties, each
  training seed shifts every sentence's success rate; the truth is the population mean 0.5."""
  rng = np.random.default_rng(4)
  trials, seeds, n = 100, 5, 200
  covered = 0
  for trial in range(trials):
    difficulty = rng.random(n) - 0.5  # [n]
    shift = rng.normal(0.0, 0.05, seeds)  # [seeds]
    rate = np.clip(0.5 + shift[:, None] + 0.3 * difficulty[None], 0.0, 1.0)  # [seeds, n]
    outcomes = rng.random((seeds, n)) < rate
    stats = np.stack([bernoulli_stats(o) for o in outcomes])  # [seeds, n, 2]
    low, high = intervals.two_level_interval(stats, "exact_match", n_resamples=500, seed=trial)
    covered += low <= 0.5 <= high
  assert 0.88 <= covered / trials <= 1.0, covered / trials
