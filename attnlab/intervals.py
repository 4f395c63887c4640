"""How sure a test metric is: bootstrap confidence intervals over test sentences, a two-level
bootstrap pooling training seeds with test sampling, and the paired bootstrap test (Koehn 2004).

Every metric here is a function of per-sentence *sufficient statistics* summed over the
sentences, so a resampled test set costs one weighted sum, never a re-decode:

  exact_match           [correct, 1]                       sum0 / sum1
  bleu                  sacrebleu's [hyp_len, ref_len,     corpus BLEU by sacrebleu
                        correct_1..4, total_1..4]          (``metrics.bleu_from_statistics``)
                        (``metrics.bleu_statistics``)
  alignment_error_rate  [|A∩S|, |A∩P|, |A|, |S|]           pooled AER, Och & Ney 2003
                        (``metrics.alignment_counts``)     (``metrics.aer_from_counts``)

A run's ``test_outcomes.jsonl`` (``attnlab.export.outcome_row``) holds them per test sentence;
`sentence_statistics` turns its rows into the [n, k] arrays the functions below take. Intervals
are percentile intervals (Efron & Tibshirani 1993, ch. 13), as sacrebleu's and Koehn's: they
stay defined when every resample gives the same value (a bucket of all-correct sentences),
where BCa divides by zero.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.stats

from attnlab import metrics

N_RESAMPLES = 1000  # Koehn (2004) and sacrebleu's paired bootstrap use 1000 as well


def _per_row(fn: Callable[..., float], sums: np.ndarray) -> np.ndarray:
  """``fn(*row)`` or ``fn(row)`` of each [k] row of ``sums`` [..., k], as an array [...]."""
  flat = sums.reshape(-1, sums.shape[-1])
  return np.array([fn(row) for row in flat], float).reshape(sums.shape[:-1])


def _exact_match(sums: np.ndarray) -> np.ndarray:
  return sums[..., 0] / sums[..., 1]


def _bleu(sums: np.ndarray) -> np.ndarray:
  return _per_row(metrics.bleu_from_statistics, sums)


def _alignment_error_rate(sums: np.ndarray) -> np.ndarray:
  return _per_row(lambda row: metrics.aer_from_counts(*(int(x) for x in row)), sums)


@dataclasses.dataclass(frozen=True)
class Statistic:
  """A corpus metric computed from summed per-sentence statistics.

  Attributes:
    name: the metric's name in ``evaluate``'s results (``exact_match``, ``bleu``, ...).
    field: the key of its per-sentence statistics in a ``test_outcomes.jsonl`` row.
    value: summed statistics [..., k] -> metric [...].
    higher_is_better: False for error rates.
  """

  name: str
  field: str
  value: Callable[[np.ndarray], np.ndarray]
  higher_is_better: bool


STATISTICS: Mapping[str, Statistic] = {
    "exact_match": Statistic("exact_match", "exact_match", _exact_match, True),
    "bleu": Statistic("bleu", "bleu_stats", _bleu, True),
    "alignment_error_rate": Statistic("alignment_error_rate", "alignment_counts",
                                      _alignment_error_rate, False),
}


def statistic_of(statistic: Statistic | str) -> Statistic:
  """A `Statistic` given itself or its name; ValueError naming the valid ones."""
  if isinstance(statistic, Statistic):
    return statistic
  if statistic not in STATISTICS:
    raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(STATISTICS)}")
  return STATISTICS[statistic]


def sentence_statistics(rows: Sequence[Mapping], statistic: Statistic | str) -> np.ndarray:
  """The per-sentence statistics [n, k] (int64) of ``statistic`` from outcome rows (the lines
  of ``test_outcomes.jsonl``); KeyError when the rows lack them (e.g. BLEU of a date task)."""
  statistic = statistic_of(statistic)
  values = np.asarray([row[statistic.field] for row in rows], np.int64)
  if values.ndim == 1:  # a 0/1 outcome: [value, 1], so the sums give a mean
    values = np.stack([values, np.ones_like(values)], axis=-1)
  return values


def _check(stats, ndim: int, what: str) -> np.ndarray:
  stats = np.asarray(stats)
  if stats.ndim != ndim or 0 in stats.shape:
    raise ValueError(f"{what} must be a non-empty {ndim}-D array, got shape {stats.shape}")
  if not np.issubdtype(stats.dtype, np.integer):
    raise ValueError(f"{what} must be integer sufficient statistics, got dtype {stats.dtype}")
  return stats


def bootstrap_interval(stats, statistic: Statistic | str, confidence: float = 0.95,
                       n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
  """Percentile bootstrap interval of a corpus metric over test sentences
  (``scipy.stats.bootstrap``): resample the sentences with replacement, recompute the metric
  from their summed statistics.

  Args:
    stats: [n, k] integer per-sentence statistics (`sentence_statistics`).
    statistic: which metric (a `Statistic` or its name).
    confidence: the interval's confidence level.
    n_resamples: bootstrap resamples; seed: of the resampling (the same seed, the same
      interval).

  Returns:
    (low, high). One sentence, or sentences with equal statistics: (value, value).
  """
  statistic = statistic_of(statistic)
  stats = _check(stats, 2, "stats")
  n = stats.shape[0]
  if n == 1 or np.all(stats == stats[:1]):
    value = float(statistic.value(stats.sum(0)))
    return value, value

  def on_indices(indices, axis=-1):  # indices: [..., n] resampled sentence indices
    return statistic.value(stats[indices].sum(axis=-2))  # [..., k] -> [...]

  result = scipy.stats.bootstrap(
      (np.arange(n),), on_indices, n_resamples=n_resamples, vectorized=True,
      batch=max(1, 4_000_000 // stats.size), confidence_level=confidence, method="percentile",
      rng=np.random.default_rng(seed))
  return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _seed_values(stats: np.ndarray, statistic: Statistic, weights: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
  """The metric, averaged over a resample of the seeds, on each resampled test set.

  stats: [seeds, n, k]; weights: [resamples, n] how often each sentence is drawn. Returns
  [resamples]."""
  sums = np.einsum("rn,snk->rsk", weights, stats)  # [resamples, seeds, k]
  per_seed = statistic.value(sums)  # [resamples, seeds]
  picked = rng.integers(stats.shape[0], size=per_seed.shape)  # seeds drawn with replacement
  return np.take_along_axis(per_seed, picked, axis=1).mean(axis=1)


def _sentence_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
  """[n_resamples, n]: how often each of n sentences is drawn in each resample of n."""
  return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(values, [tail, 100.0 - tail])
  return float(low), float(high)


def two_level_interval(stats, statistic: Statistic | str, confidence: float = 0.95,
                       n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
  """Percentile interval of the mean over training seeds of a corpus metric, pooling seed
  variation with test-set sampling.

  Every seed is evaluated on the same test sentences, so seeds and sentences are crossed
  factors, not nested. Each resample therefore draws the two independently (the
  "pigeonhole" bootstrap of Owen 2007): one test set of n sentences with replacement, shared
  by all seeds, and S seeds with replacement; its value is the mean over the drawn seeds of
  each one's metric on the drawn test set (the report's point estimate is the same mean on
  the real test set). This is slightly conservative (Owen 2007), and with few seeds the seed
  part is itself uncertain: 3 seeds can only show so much of a model's seed variance. With one
  seed it is the sentence bootstrap (`bootstrap_interval`, up to resampling noise).

  Args:
    stats: [seeds, n, k] integer per-sentence statistics, sentence i the same in every seed.
    statistic, confidence, n_resamples, seed: as `bootstrap_interval`.

  Returns:
    (low, high).
  """
  statistic = statistic_of(statistic)
  stats = _check(stats, 3, "stats")
  rng = np.random.default_rng(seed)
  weights = _sentence_weights(stats.shape[1], n_resamples, rng)
  return _percentiles(_seed_values(stats, statistic, weights, rng), confidence)


@dataclasses.dataclass(frozen=True)
class PairedResult:
  """The paired bootstrap comparison of systems A and B on the same test sentences.

  Attributes:
    difference: metric(A) - metric(B) on the real test set (means over seeds).
    low, high: percentile interval of that difference over the resamples.
    win_fraction: the share of resampled test sets on which A is better than B (higher, or
      lower for an error rate); ties count as no win.
    p_value: 1 - win_fraction: Koehn's (2004) one-sided p-value of "A is better than B"
      (A is better with 95% confidence when it wins in at least 95% of the resamples).
    n_resamples: the number of resampled test sets.
  """

  difference: float
  low: float
  high: float
  win_fraction: float
  p_value: float
  n_resamples: int


def paired_bootstrap(stats_a, stats_b, statistic: Statistic | str, confidence: float = 0.95,
                     n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedResult:
  """Paired bootstrap resampling test (Koehn 2004): is system A better than system B?

  Each resample draws one test set of n sentences with replacement and scores both systems on
  it (paired: the same sentences for both). With several seeds per system, each resample
  also draws each system's seeds with replacement, independently (A's seed 0 has nothing to
  do with B's seed 0), and scores a system by its mean over the drawn seeds, as
  `two_level_interval`.

  Args:
    stats_a, stats_b: [n, k] (one seed) or [seeds, n, k] integer per-sentence statistics of
      the two systems on the same n test sentences (seed counts may differ).
    statistic, confidence, n_resamples, seed: as `bootstrap_interval`.

  Returns:
    A `PairedResult`. Identical systems: difference 0, win_fraction 0, p_value 1.
  """
  statistic = statistic_of(statistic)
  stats_a, stats_b = (np.asarray(s)[None] if np.ndim(s) == 2 else np.asarray(s)
                      for s in (stats_a, stats_b))
  stats_a, stats_b = _check(stats_a, 3, "stats_a"), _check(stats_b, 3, "stats_b")
  if stats_a.shape[1:] != stats_b.shape[1:]:
    raise ValueError(f"A and B must be scored on the same sentences, got [n, k] = "
                     f"{stats_a.shape[1:]} and {stats_b.shape[1:]}")
  rng = np.random.default_rng(seed)
  weights = _sentence_weights(stats_a.shape[1], n_resamples, rng)
  diffs = (_seed_values(stats_a, statistic, weights, rng) -
           _seed_values(stats_b, statistic, weights, rng))  # [n_resamples]
  observed = (statistic.value(stats_a.sum(axis=1)).mean() -
              statistic.value(stats_b.sum(axis=1)).mean())
  wins = float(np.mean(diffs > 0 if statistic.higher_is_better else diffs < 0))
  low, high = _percentiles(diffs, confidence)
  return PairedResult(float(observed), low, high, wins, 1.0 - wins, n_resamples)
