"""attnlab.comparisons: by simulation with a known truth, the seed-level tests' intervals cover
the true difference and identical systems come out different at about the nominal rate (at 3
and the sweeps' 10 seeds); the paired design sees what the independent one cannot; the
one-seed permutation test is two-sided and never gives p = 0; Holm's adjustment and the
sentences that report a comparison."""

import dataclasses

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests

from attnlab import comparisons, intervals

N_SENTENCES = 220
# Replications per setting: the Monte Carlo standard error of a rate near 0.95 (coverage) or
# 0.05 (false positives) is sqrt(0.95 * 0.05 / 10000) = 0.0022, so the thresholds (0.93 and
# 0.07) sit about 9 standard errors from the nominal rates.
REPLICATIONS = 10_000
SHIFT = 0.05  # the true effect of B where there is one (on every sentence's probability)


def bernoulli_stats(outcomes) -> np.ndarray:
  """[n] 0/1 outcomes -> exact-match statistics [n, 2]."""
  return intervals.sentence_statistics([{"exact_match": int(x)} for x in outcomes],
                                       "exact_match")


def expected_rate(p: np.ndarray, shift: float, sd: float) -> float:
  """The truth: mean over sentences of E[clip(p_i + N(shift, sd), 0, 1)], the expected exact
  match of a new seed on this test set."""
  m = p + shift
  below, above = -m / sd, (1.0 - m) / sd
  inside = m * (scipy.stats.norm.cdf(above) - scipy.stats.norm.cdf(below)) + sd * (
      scipy.stats.norm.pdf(below) - scipy.stats.norm.pdf(above))
  return float(np.mean(inside + scipy.stats.norm.sf(above)))


def seed_values(rng: np.random.Generator, p: np.ndarray, shifts: np.ndarray) -> np.ndarray:
  """Per-seed exact match [R, seeds]: seed shifts [R, seeds] on every sentence's success
  probability p [n], then a 0/1 outcome per sentence."""
  q = np.clip(p.astype(np.float32) + shifts[..., None].astype(np.float32), 0.0, 1.0)
  return (rng.random(q.shape, dtype=np.float32) < q).mean(axis=-1, dtype=np.float64)


def rates(result: comparisons.Difference, truth: float) -> tuple[float, float]:
  """(coverage of ``truth``, share of p < 0.05) over the replications."""
  covered = np.mean((result.low <= truth) & (truth <= result.high))
  return float(covered), float(np.mean(result.p_value < 0.05))


@pytest.mark.parametrize("seeds", [3, 10])
@pytest.mark.parametrize("seed_sd", [0.1, 0.2])
def test_welch_covers_and_keeps_its_level_for_separate_trainings(seeds, seed_sd):
  """A and B trained separately: each seed its own normal shift (sd 0.1 and 0.2, the
  published seed spreads), B's shifted by SHIFT more; 220 test sentences."""
  rng = np.random.default_rng(seeds * 100 + int(seed_sd * 10))
  p = rng.uniform(0.05, 0.95, N_SENTENCES)
  draw = lambda shift: seed_values(  # noqa: E731
      rng, p, rng.normal(shift, seed_sd, (REPLICATIONS, seeds)))
  a, same, b = draw(0.0), draw(0.0), draw(SHIFT)
  _, false_positives = rates(comparisons.welch_t_test(a, same), 0.0)
  truth = expected_rate(p, SHIFT, seed_sd) - expected_rate(p, 0.0, seed_sd)
  coverage, _ = rates(comparisons.welch_t_test(b, a), truth)
  assert false_positives <= 0.07 and coverage >= 0.93, (false_positives, coverage)


@pytest.mark.parametrize("seeds", [3, 10])
@pytest.mark.parametrize("seed_sd", [0.1, 0.2])
def test_the_paired_test_covers_and_keeps_its_level_for_shared_models(seeds, seed_sd):
  """A and B the same trained models evaluated two ways: seed k's shift is shared; B adds a
  per-model effect N(SHIFT, 0.05) (decoding helps some models more), and every evaluation its
  own 0/1 outcomes. Identical systems: the same models, the same probabilities."""
  rng = np.random.default_rng(seeds * 100 + int(seed_sd * 10) + 1)
  p = rng.uniform(0.05, 0.95, N_SENTENCES)
  shifts = rng.normal(0.0, seed_sd, (REPLICATIONS, seeds))
  a, same = seed_values(rng, p, shifts), seed_values(rng, p, shifts)
  b = seed_values(rng, p, shifts + rng.normal(SHIFT, 0.05, shifts.shape))
  _, false_positives = rates(comparisons.paired_t_test(a, same), 0.0)
  truth = expected_rate(p, SHIFT, np.hypot(seed_sd, 0.05)) - expected_rate(p, 0.0, seed_sd)
  coverage, _ = rates(comparisons.paired_t_test(b, a), truth)
  assert false_positives <= 0.07 and coverage >= 0.93, (false_positives, coverage)


def test_pairing_by_seed_cancels_the_seed_variation_that_swamps_welch():
  """Beam vs greedy on the same 10 models: a small, consistent gain under a large seed spread."""
  rng = np.random.default_rng(7)
  models = rng.normal(0.5, 0.2, 10)
  greedy, beam = models, models + 0.02 + rng.normal(0, 0.005, 10)
  paired, welch = comparisons.paired_t_test(beam, greedy), comparisons.welch_t_test(beam, greedy)
  assert paired.p_value < 1e-4 < 0.5 < welch.p_value
  assert paired.difference == pytest.approx(welch.difference)
  assert paired.high - paired.low < (welch.high - welch.low) / 10
  # Two-sided: swapping A and B flips the difference, not the p-value.
  swapped = comparisons.paired_t_test(greedy, beam)
  assert swapped.p_value == pytest.approx(paired.p_value)
  assert (swapped.low, swapped.high) == pytest.approx((-paired.high, -paired.low))
  # Vectorized over leading axes: [2, seeds] -> [2].
  both = comparisons.welch_t_test(np.stack([beam, greedy]), np.stack([greedy, beam]))
  assert both.p_value.shape == (2,) and both.p_value[0] == pytest.approx(welch.p_value)


def test_seeds_without_spread_get_the_exact_permutation_p_value():
  same = comparisons.paired_t_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
  assert same.p_value == 1.0 and same.low == same.high == 0.0
  shifted = comparisons.paired_t_test(np.full(10, 0.6), np.full(10, 0.5))
  assert shifted.p_value == pytest.approx(2 / 2**10)  # only all-plus and all-minus as extreme
  assert shifted.low == shifted.high == pytest.approx(0.1)
  welch = comparisons.welch_t_test(np.full(3, 0.6), np.full(3, 0.5))
  assert welch.p_value == pytest.approx(2 / 20)  # 2 of the C(6, 3) labellings
  with pytest.raises(ValueError, match=">= 2 seeds"):
    comparisons.welch_t_test([0.5], [0.4, 0.6])


def test_the_sentence_test_is_two_sided_and_never_zero():
  rng = np.random.default_rng(3)
  u = rng.random(300)
  better, worse = bernoulli_stats(u < 0.75), bernoulli_stats(u < 0.55)
  result = comparisons.sentence_test(better, worse, "exact_match")
  assert result.difference == pytest.approx(((u < 0.75).sum() - (u < 0.55).sum()) / 300)
  # No rearrangement is as extreme as the data: p = 2 (1 + 0) / (R + 1), two-sided, not 0.
  assert result.p_value == pytest.approx(2 / (comparisons.N_PERMUTATIONS + 1)) and result.low > 0
  reverse = comparisons.sentence_test(worse, better, "exact_match")
  assert reverse.p_value == result.p_value and reverse.high < 0  # two-sided, not "1 - wins"
  same = comparisons.sentence_test(better, better, "exact_match")
  assert same.difference == 0.0 and same.p_value == 1.0 and same.low == same.high == 0.0
  # The same rate on different sentences of one test set: nowhere near significance.
  a = bernoulli_stats(np.arange(200) % 2 == 0)
  b = bernoulli_stats(np.arange(200) % 2 == 1)
  coin = comparisons.sentence_test(a, b, "exact_match")
  assert coin.p_value > 0.5 and coin.low < 0.0 < coin.high
  # Two length buckets: different sentences, dealt out anew rather than swapped in pairs.
  buckets = comparisons.sentence_test(better[:100], worse[100:], "exact_match",
                                      same_sentences=False)
  assert 0 < buckets.p_value < 0.05
  # An error rate: [|A∩S|, |A∩P|, |A|, |S|] with 3 of 4 vs 1 of 4 links right.
  good, bad = np.tile([3, 3, 4, 4], (50, 1)), np.tile([1, 1, 4, 4], (50, 1))
  assert comparisons.sentence_test(good, bad, "alignment_error_rate").p_value < 0.01
  with pytest.raises(ValueError, match="same sentences"):
    comparisons.sentence_test(better, worse[:10], "exact_match")


# ---------------------------------------------------------------- compare, holm, describe

def seeds_of(rng, rates_):
  return np.stack([bernoulli_stats(rng.random(220) < r) for r in rates_])  # [seeds, n, 2]


def test_compare_picks_the_test_by_design_and_seed_count():
  rng = np.random.default_rng(4)
  a = seeds_of(rng, [0.55, 0.6, 0.65, 0.7])
  b = seeds_of(rng, [0.3, 0.35, 0.4, 0.45])
  paired = comparisons.compare(a, b, "exact_match", paired=True)
  assert paired.test == comparisons.PAIRED_T and paired.design == "paired t over 4 seeds"
  values_a = intervals.per_seed_values(a, "exact_match")
  values_b = intervals.per_seed_values(b, "exact_match")
  expected = scipy.stats.ttest_rel(values_a, values_b)
  assert paired.p_value == pytest.approx(expected.pvalue)
  assert paired.difference == pytest.approx(values_a.mean() - values_b.mean())
  welch = comparisons.compare(a, b[:3], "exact_match", paired=False)
  assert welch.design == "Welch t over 4 and 3 seeds"
  assert welch.p_value == pytest.approx(
      scipy.stats.ttest_ind(values_a, values_b[:3], equal_var=False).pvalue)
  one = comparisons.compare(a[:1], b[:1], "exact_match", paired=True)
  assert one.test == comparisons.SENTENCES and "seed variation not measured" in one.design
  assert (one.mean_a, one.mean_b) == (values_a[0], values_b[0])
  with pytest.raises(ValueError, match="as many seeds"):
    comparisons.compare(a, b[:3], "exact_match", paired=True)


def test_a_difference_interval_is_cut_to_what_two_values_in_range_can_differ_by():
  # A beats B at every seed by almost the whole range: Welch's interval passes +1.
  rng = np.random.default_rng(5)
  a = seeds_of(rng, [1.0, 1.0, 1.0, 0.99, 1.0])
  b = seeds_of(rng, [0.0, 0.0, 0.01, 0.0, 0.0])
  values = [intervals.per_seed_values(x, "exact_match") for x in (a, b)]
  uncut = comparisons.welch_t_test(*values)
  assert uncut.high > 1.0
  cut = comparisons.compare(a, b, "exact_match", paired=False)
  assert cut.high == 1.0 and cut.low == pytest.approx(float(uncut.low))
  assert cut.p_value == pytest.approx(float(uncut.p_value))


def test_holm_adjusts_over_the_family_and_describe_claims_only_what_survives():
  rng = np.random.default_rng(5)
  a = seeds_of(rng, np.linspace(0.6, 0.7, 10))
  b = seeds_of(rng, np.linspace(0.3, 0.4, 10))
  clear = comparisons.compare(a, b, "exact_match", paired=False)
  close = comparisons.compare(a, a[::-1], "exact_match", paired=False)
  family = comparisons.holm([clear, close, clear])
  expected = multipletests([clear.p_value, close.p_value, clear.p_value], method="holm")[1]
  assert [c.p_holm for c in family] == pytest.approx(expected)
  assert {c.family_size for c in family} == {3} and comparisons.holm([]) == []
  text = comparisons.describe(family[0], "additive", "none")
  assert text.startswith("additive beats none on exact match by +0.")
  assert "(Welch t over 10 seeds, Holm-adjusted p = " in text and "over 3 comparisons)." in text
  reverse = comparisons.compare(b, a, "exact_match", paired=False)  # B first: B still loses
  text = comparisons.describe(reverse, "none", "additive")
  assert text.startswith("additive beats none on exact match by +0.")
  text = comparisons.describe(family[1], "A", "B", label="exact match")
  assert text.startswith("A and B are indistinguishable on exact match at 10 seeds (A - B = ")
  # A difference that only the raw p supports does not survive a large family.
  raw = dataclasses.replace(clear, p_value=0.01)
  assert "beats" in comparisons.describe(raw, "A", "B")
  big = comparisons.holm([raw] + [close] * 9)
  assert big[0].p_holm == pytest.approx(0.1)
  assert "indistinguishable" in comparisons.describe(big[0], "A", "B")
  # Lower is better for an error rate: the side with the lower AER wins.
  good = np.stack([np.tile([3, 3, 4, 4], (50, 1))] * 10)
  bad = np.stack([np.tile([1, 1, 4, 4], (50, 1))] * 10)
  aer = comparisons.compare(bad, good, "alignment_error_rate", paired=True)
  assert aer.difference == pytest.approx(0.5)
  text = comparisons.describe(aer, "dot", "additive")
  assert text == ("additive beats dot on alignment error rate by -0.500 [-0.500, -0.500] "
                  "(paired t over 10 seeds, p = 0.002).")  # no spread: the exact sign flip
  assert comparisons.format_p(0.0312) == "0.031" and comparisons.format_p(4e-4) == "4.0e-04"
