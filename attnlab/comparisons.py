"""Is system A better than system B? Two-sided tests with the training seed as the unit, paired
by seed when both sides share trained models, a sentence-level permutation test for a single
model, Holm's correction over a page's family of tests, and the sentence that reports one.

Which test (`compare`):

* **paired t by seed** (`paired_t_test`): A and B are the same trained models evaluated two
  ways (beam vs greedy; one model on two test-length buckets): seed k of A and seed k of B are
  one model, and the seed's own luck cancels in their difference.
* **Welch t** (`welch_t_test`): A and B are separate trainings (two attention variants).
* **permutation over test sentences** (`sentence_test`): a side with one seed, where seed
  variation cannot be measured; it is about a new test set for these fixed models only.

The seed-level tests are about a new training seed on this test set (``attnlab.intervals``
says why, and what that leaves out); ``tests/test_comparisons.py`` checks by simulation that
their intervals cover and identical systems come out different at about the nominal rate, at 3
and 10 seeds. Every p-value is two-sided and centred on the null (a t distribution, or the
permutation distribution, which the null generates); a randomized permutation p is (c + 1) /
(R + 1), never 0. Over many comparisons, `holm` adjusts the p-values (Holm 1979, through
statsmodels), and `describe` claims a difference only when the adjusted p is below 0.05.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import scipy.stats
from statsmodels.stats.multitest import multipletests

from attnlab import intervals
from attnlab.intervals import CONFIDENCE, N_RESAMPLES, Statistic

ALPHA = 0.05  # a difference is claimed when its Holm-adjusted p is below this
# Randomized permutation tests: two-sided p >= 2 / 10,000, small enough to survive Holm over
# the ~170 comparisons of a large comparison page.
N_PERMUTATIONS = 9999


class Difference(NamedTuple):
  """A difference A - B: its estimate, interval (low, high) and two-sided p-value, each an
  array [...] over the leading axes of the inputs (floats for 1-D inputs)."""

  difference: np.ndarray
  low: np.ndarray
  high: np.ndarray
  p_value: np.ndarray


def _permutation_p(a: np.ndarray, b: np.ndarray, paired: bool, seed: int = 0) -> float:
  """Two-sided permutation p-value of the mean difference of 1-D ``a`` and ``b`` (exact when
  there are at most ``N_PERMUTATIONS`` rearrangements): where a t statistic is undefined."""
  if paired:
    def statistic(x, y, axis=-1):
      return np.mean(x - y, axis=axis)
  else:
    def statistic(x, y, axis=-1):
      return np.mean(x, axis=axis) - np.mean(y, axis=axis)
  return float(scipy.stats.permutation_test(
      (a, b), statistic, permutation_type="samples" if paired else "independent",
      vectorized=True, n_resamples=N_PERMUTATIONS, rng=np.random.default_rng(seed)).pvalue)


def _t_test(values_a, values_b, paired: bool, confidence: float) -> Difference:
  a, b = np.asarray(values_a, float), np.asarray(values_b, float)
  if min(a.shape[-1], b.shape[-1]) < 2:
    raise ValueError(f"a t test needs >= 2 seeds a side, got {a.shape[-1]} and {b.shape[-1]}")
  with warnings.catch_warnings():  # no spread: nan or inf, replaced below
    warnings.simplefilter("ignore", RuntimeWarning)
    result = (scipy.stats.ttest_rel(a, b, axis=-1) if paired
              else scipy.stats.ttest_ind(a, b, axis=-1, equal_var=False))
    ci = result.confidence_interval(confidence)
  difference = a.mean(axis=-1) - b.mean(axis=-1)
  p, low, high = (np.array(x, float) for x in (result.pvalue, ci.low, ci.high))
  spread = (np.ptp(a - b, axis=-1) if paired
            else np.maximum(np.ptp(a, axis=-1), np.ptp(b, axis=-1)))
  flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
  for i in np.flatnonzero(spread == 0):  # every value alike: the exact permutation test
    p.flat[i] = _permutation_p(flat_a[i], flat_b[i], paired)
    low.flat[i] = high.flat[i] = difference.flat[i]
  return Difference(difference, low, high, p)


def welch_t_test(values_a, values_b, confidence: float = CONFIDENCE) -> Difference:
  """Welch's t test (``scipy.stats.ttest_ind(equal_var=False)``), two-sided, and its interval
  of mean(A) - mean(B), from per-seed values [..., seeds_a] and [..., seeds_b] (>= 2 each).

  Assumes A's and B's seeds are separate trainings (nothing pairs seed k of A with seed k of
  B), each side's values independent draws with a near-normal mean; their variances may
  differ (Welch-Satterthwaite degrees of freedom). When neither side varies at all, p comes
  from the exact permutation test of the labels and the interval is the difference itself.
  """
  return _t_test(values_a, values_b, paired=False, confidence=confidence)


def paired_t_test(values_a, values_b, confidence: float = CONFIDENCE) -> Difference:
  """The paired t test by seed (``scipy.stats.ttest_rel``), two-sided, and its interval of the
  mean per-seed difference A - B, from values [..., seeds] of both (>= 2 seeds).

  Assumes value k of A and of B come from the same trained model k, evaluated two ways (two
  decodings; two length buckets of the test set), so the seed's own luck cancels in the
  difference; the S differences are independent with a near-normal mean. When every
  difference is the same, p comes from the exact sign-flip permutation test and the interval
  is that difference.
  """
  return _t_test(values_a, values_b, paired=True, confidence=confidence)


def sentence_test(stats_a, stats_b, statistic: Statistic | str, same_sentences: bool = True,
                  confidence: float = CONFIDENCE, seed: int = 0) -> Difference:
  """One trained model per side: a permutation test over test sentences
  (``scipy.stats.permutation_test``, ``N_PERMUTATIONS`` random rearrangements; two-sided: twice
  the smaller one-sided (c + 1) / (R + 1), at most 1, so never 0) and a percentile bootstrap
  interval of metric(A) - metric(B).

  Args:
    stats_a, stats_b: [n_a, k] and [n_b, k] integer per-sentence statistics.
    statistic: the metric.
    same_sentences: sentence i of A is sentence i of B (then n_a == n_b): each rearrangement
      swaps A's and B's outcome of some sentences (approximate randomization, Riezler &
      Maxwell 2005) and the bootstrap resamples the pairs; else two separate sets of
      sentences (two length buckets): rearrangements deal the pooled sentences out anew and
      each side is resampled on its own.
    confidence, seed: the interval's level; the seed of the resampling.

  Assumes the sentences are independent draws and the models fixed: it is about a new test
  set, and measures nothing of seed variation.
  """
  statistic = intervals.statistic_of(statistic)
  a = intervals.check_stats(stats_a, 2, "stats_a")
  b = intervals.check_stats(stats_b, 2, "stats_b")
  if a.shape[1] != b.shape[1] or (same_sentences and a.shape != b.shape):
    raise ValueError(f"A and B must be scored on the same sentences, got [n, k] = {a.shape} "
                     f"and {b.shape}")
  both = np.concatenate([a, b])  # [n_a + n_b, k]

  def difference(x, y, axis=-1):  # x, y: [..., n] indices into both
    return statistic.value(both[x].sum(axis=-2)) - statistic.value(both[y].sum(axis=-2))

  data = (np.arange(len(a)), len(a) + np.arange(len(b)))
  rng = np.random.default_rng(seed)
  batch = max(1, 4_000_000 // both.size)
  observed = float(difference(*data))
  p = scipy.stats.permutation_test(
      data, difference, permutation_type="samples" if same_sentences else "independent",
      vectorized=True, n_resamples=N_PERMUTATIONS, batch=batch, rng=rng).pvalue
  if min(len(a), len(b)) < 2:
    return Difference(observed, observed, observed, float(p))
  ci = scipy.stats.bootstrap(data, difference, n_resamples=N_RESAMPLES, vectorized=True,
                             paired=same_sentences, batch=batch, confidence_level=confidence,
                             method="percentile", rng=rng).confidence_interval
  return Difference(observed, float(ci.low), float(ci.high), float(p))


PAIRED_T, WELCH_T, SENTENCES = "paired t", "Welch t", "permutation over test sentences"


def _seeds(n: int) -> str:
  return f"{n} seed" + ("" if n == 1 else "s")


@dataclasses.dataclass(frozen=True)
class Comparison:
  """System A against system B on one metric (`compare`).

  Attributes:
    metric: the metric's name (``exact_match``, ``bleu``, ``alignment_error_rate``).
    mean_a, mean_b: each side's mean over its seeds of the per-seed metric (the sentence test:
      its first seed's metric).
    difference: mean_a - mean_b.
    low, high: the interval of the difference.
    p_value: two-sided, not adjusted for multiplicity.
    test: ``PAIRED_T``, ``WELCH_T`` or ``SENTENCES``.
    seeds_a, seeds_b: the number of seeds of each side.
    higher_is_better: False for an error rate.
    p_holm: the Holm-adjusted p-value over its family (`holm`); None before adjustment.
    family_size: the number of comparisons in that family (1 before adjustment).
  """

  metric: str
  mean_a: float
  mean_b: float
  difference: float
  low: float
  high: float
  p_value: float
  test: str
  seeds_a: int
  seeds_b: int
  higher_is_better: bool = True
  p_holm: float | None = None
  family_size: int = 1

  @property
  def design(self) -> str:
    """``paired t over 10 seeds``, ``Welch t over 10 and 9 seeds``, ``permutation over test
    sentences, 1 seed a side (seed variation not measured)``."""
    if self.test == SENTENCES:
      return f"{SENTENCES}, 1 seed a side (seed variation not measured)"
    if self.seeds_a == self.seeds_b:
      return f"{self.test} over {_seeds(self.seeds_a)}"
    return f"{self.test} over {self.seeds_a} and {_seeds(self.seeds_b)}"


def compare(stats_a, stats_b, statistic: Statistic | str, paired: bool,
            same_sentences: bool = True, confidence: float = CONFIDENCE,
            seed: int = 0) -> Comparison:
  """A against B on one metric, with the seed as the unit when both sides have >= 2 seeds.

  Args:
    stats_a, stats_b: [seeds_a, n_a, k] and [seeds_b, n_b, k] integer per-sentence statistics
      (``intervals.sentence_statistics`` per seed).
    statistic: the metric (a ``Statistic`` or its name).
    paired: seed k of A and seed k of B are the same trained model (A and B: two decodings,
      or two length buckets, of the same models; then seeds_a == seeds_b): `paired_t_test`
      on the per-seed metrics. False: separate trainings, `welch_t_test`.
    same_sentences: sentence i of A is sentence i of B (the same bucket of the same test
      set); False for two different buckets. Used by the one-seed fallback.
    confidence: of the interval; seed: of the one-seed fallback's resampling.

  Returns:
    A `Comparison` (not yet adjusted: `holm`). A side with a single seed leaves no seed
    variation to measure: then `sentence_test` compares the first seed of each side over the
    test sentences, and ``design`` says so.
  """
  statistic = intervals.statistic_of(statistic)
  a = intervals.check_stats(stats_a, 3, "stats_a")
  b = intervals.check_stats(stats_b, 3, "stats_b")
  if paired and len(a) != len(b):
    raise ValueError(f"paired by seed needs as many seeds on both sides, got {len(a)} and "
                     f"{len(b)}")
  values_a = intervals.per_seed_values(a, statistic)
  values_b = intervals.per_seed_values(b, statistic)
  if min(len(a), len(b)) >= 2:
    result = (paired_t_test if paired else welch_t_test)(values_a, values_b, confidence)
    test, mean_a, mean_b = PAIRED_T if paired else WELCH_T, values_a.mean(), values_b.mean()
  else:
    result = sentence_test(a[0], b[0], statistic, same_sentences, confidence, seed)
    test, mean_a, mean_b = SENTENCES, values_a[0], values_b[0]
  # A difference of two values in [lo, hi] lies in [lo - hi, hi - lo]: the interval is cut to
  # that (it cannot exclude the truth), as intervals of a mean are cut to the metric's range.
  lo, hi = intervals.RANGES[statistic.name]
  low, high = np.clip([result.low, result.high], lo - hi, hi - lo)
  return Comparison(statistic.name, float(mean_a), float(mean_b), float(result.difference),
                    float(low), float(high), float(result.p_value), test,
                    len(a), len(b), statistic.higher_is_better)


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
  """``comparisons`` with ``p_holm`` and ``family_size`` set: Holm's step-down adjustment
  (``statsmodels.stats.multitest.multipletests(method="holm")``) over all of them as one
  family. It bounds the chance of any false claim in the family by the level, whatever the
  dependence between the tests. Assumes the family is every comparison the page reports,
  chosen before seeing the results (not only the interesting ones)."""
  if not comparisons:
    return []
  adjusted = multipletests([c.p_value for c in comparisons], method="holm")[1]
  return [dataclasses.replace(c, p_holm=float(p), family_size=len(comparisons))
          for c, p in zip(comparisons, adjusted)]


def format_p(p: float) -> str:
  """``0.031``; below 0.001 two significant digits, ``4.0e-04``."""
  return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def describe(c: Comparison, name_a: str, name_b: str, label: str | None = None,
             digits: int = 3) -> str:
  """The sentence that reports ``c``. When its Holm-adjusted p (the raw p before `holm`) is
  below ``ALPHA``: "A beats B on exact match by +0.120 [+0.050, +0.190] (paired t over 10
  seeds, Holm-adjusted p = 0.004 over 12 comparisons)." with the better side first (lower
  for an error rate) and the effect as winner - loser. Otherwise: "A and B are
  indistinguishable on exact match at 10 seeds (A - B = +0.010 [-0.030, +0.050]; ...)."
  ``label``: the metric's name in prose (default its key, underscores as spaces)."""
  label = label or c.metric.replace("_", " ")
  number = lambda x: f"{x:+.{digits}f}"  # noqa: E731
  if c.p_holm is None or c.family_size == 1:
    p, p_text = c.p_value, f"p = {format_p(c.p_value)}"
  else:
    p = c.p_holm
    p_text = f"Holm-adjusted p = {format_p(p)} over {c.family_size} comparisons"
  if p < ALPHA and c.difference != 0:
    a_wins = (c.difference > 0) == c.higher_is_better
    sign = 1 if a_wins else -1
    winner, loser = (name_a, name_b) if a_wins else (name_b, name_a)
    low, high = sorted((sign * c.low, sign * c.high))
    return (f"{winner} beats {loser} on {label} by {number(sign * c.difference)} "
            f"[{number(low)}, {number(high)}] ({c.design}, {p_text}).")
  if c.test == SENTENCES or c.seeds_a == c.seeds_b:
    seeds = _seeds(1 if c.test == SENTENCES else c.seeds_a)
  else:
    seeds = f"{c.seeds_a} and {_seeds(c.seeds_b)}"
  return (f"{name_a} and {name_b} are indistinguishable on {label} at {seeds} "
          f"({name_a} - {name_b} = {number(c.difference)} [{number(c.low)}, {number(c.high)}]; "
          f"{c.design}, {p_text}).")
