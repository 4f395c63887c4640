"""How sure a test metric is, with the training seed as the unit: intervals over seeds, tests
of system A against B (paired by seed when both share trained models, Welch otherwise), the
sentence bootstrap and permutation test for a single model, and Holm's correction over a family
of tests.

What the seed-level numbers are about. A setting is trained S times (seeds) and every trained
model is scored on the same n test sentences; the report's number is the mean over seeds of each
model's corpus metric. `seed_interval` and the seed-level tests treat those S per-seed values as
independent draws, so their population is **a new training seed scored on this test set**. The
sentence-level noise that differs between seeds (which sentences each model happens to get
right) is inside each seed's value, so the interval carries it; the choice of the test set does
not vary between seeds, so it is not in the interval: a new test set of the same kind would move
every seed together. The sentence bootstrap (`bootstrap_interval`) measures that part for one
fixed model; with a single seed it is the only interval there is, and results say so
(`Interval.method`, `Comparison.design`). `seeds_and_sentences_interval` is about a new seed on
a new test set: the seed interval widened by the test set's share of the variance, estimated
from the same per-sentence statistics (its docstring has the decomposition).

Why Student t, not a bootstrap over seeds: resampling 3 seeds with replacement (the former
two-level percentile bootstrap) covered 76-86% of a nominal 95% in simulation and called
identical systems different 13-15% of the time. The t interval with S - 1 degrees of freedom is
exact for normal seed values and close for the means over hundreds of sentences that metrics
are; ``tests/test_intervals.py`` simulates systems with a known truth at 3 and 10 seeds and
checks coverage and false positives.

Every metric here is a function of per-sentence *sufficient statistics* summed over the
sentences, so a resampled test set costs one weighted sum, never a re-decode:

  exact_match           [correct, 1]                       sum0 / sum1
  bleu                  sacrebleu's [hyp_len, ref_len,     corpus BLEU by sacrebleu
                        correct_1..4, total_1..4]          (``bleu_from_statistics``)
                        (``metrics.bleu_statistics``)
  alignment_error_rate  [|A∩S|, |A∩P|, |A|, |S|]           pooled AER, Och & Ney 2003
                        (``metrics.alignment_counts``)     (``aer_from_counts``)

(the right-hand functions are ``attnlab.corpus_scores``': no JAX, so reading a sweep's
results needs none).

A run's ``test_outcomes.jsonl`` (``attnlab.export.outcome_row``) holds them per test sentence;
`sentence_statistics` turns its rows into the [n, k] arrays the functions below take. Sentence
intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13), as sacrebleu's and
Koehn's: they stay defined when every resample gives the same value (a bucket of all-correct
sentences), where BCa divides by zero. p-values are two-sided.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import scipy.stats

from attnlab import corpus_scores

CONFIDENCE = 0.95
N_RESAMPLES = 1000  # bootstrap intervals: Koehn (2004) and sacrebleu use 1000 as well


def _per_row(fn: Callable[..., float], sums: np.ndarray) -> np.ndarray:
  """``fn(*row)`` or ``fn(row)`` of each [k] row of ``sums`` [..., k], as an array [...]."""
  flat = sums.reshape(-1, sums.shape[-1])
  return np.array([fn(row) for row in flat], float).reshape(sums.shape[:-1])


def _exact_match(sums: np.ndarray) -> np.ndarray:
  return sums[..., 0] / sums[..., 1]


def _bleu(sums: np.ndarray) -> np.ndarray:
  return _per_row(corpus_scores.bleu_from_statistics, sums)


def _alignment_error_rate(sums: np.ndarray) -> np.ndarray:
  return _per_row(lambda row: corpus_scores.aer_from_counts(*(int(x) for x in row)), sums)


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


def check_stats(stats, ndim: int, what: str) -> np.ndarray:
  """``stats`` as a non-empty ``ndim``-D integer array; ValueError naming ``what`` else."""
  stats = np.asarray(stats)
  if stats.ndim != ndim or 0 in stats.shape:
    raise ValueError(f"{what} must be a non-empty {ndim}-D array, got shape {stats.shape}")
  if not np.issubdtype(stats.dtype, np.integer):
    raise ValueError(f"{what} must be integer sufficient statistics, got dtype {stats.dtype}")
  return stats


def bootstrap_interval(stats, statistic: Statistic | str, confidence: float = CONFIDENCE,
                       n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
  """Percentile bootstrap interval of a corpus metric over test sentences
  (``scipy.stats.bootstrap``): resample the sentences with replacement, recompute the metric
  from their summed statistics. Assumes the sentences are independent draws from the test
  population and the model is fixed: it is about a new test set for this one trained model,
  and says nothing of how another training seed would do.

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
  stats = check_stats(stats, 2, "stats")
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


# ---------------------------------------------------------------- the seed as the unit

def per_seed_values(stats, statistic: Statistic | str) -> np.ndarray:
  """[seeds] float: each seed's corpus metric on its test sentences, from [seeds, n, k]."""
  stats = check_stats(stats, 3, "stats")
  return np.asarray(statistic_of(statistic).value(stats.sum(axis=1)), float)


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[np.ndarray, ...]:
  """(mean, low, high), each [...]: the Student t interval (seeds - 1 degrees of freedom,
  ``scipy.stats.t``) of the mean of ``values`` [..., seeds], seeds >= 2.

  Assumes the seeds' values are independent draws from one distribution (one per training
  seed, all on the same test set) and their mean close to normal. About: the expected value
  of a new seed on this test set. No spread among the values: (mean, mean).
  """
  values = np.asarray(values, float)
  if values.shape[-1] < 2:
    raise ValueError(f"a t interval needs >= 2 seeds, got {values.shape[-1]}")
  mean = values.mean(axis=-1)
  half = (scipy.stats.t.ppf(0.5 + confidence / 2, values.shape[-1] - 1)
          * values.std(axis=-1, ddof=1) / np.sqrt(values.shape[-1]))
  return mean, mean - half, mean + half


SEED_METHOD, SENTENCE_METHOD = "t", "sentence bootstrap"
SEEDS_AND_SENTENCES_METHOD = "t + sentence bootstrap"
ABOUT = {SEED_METHOD: "a new training seed on this test set",
         SENTENCE_METHOD: "a new test set for this one trained model (seed variation not "
                          "measured)",
         SEEDS_AND_SENTENCES_METHOD: "a new training seed on a new test set of the same kind"}


@dataclasses.dataclass(frozen=True)
class Interval:
  """The mean over seeds of a metric and its interval.

  Attributes:
    mean: the mean over seeds of each seed's metric.
    low, high: the interval.
    seeds: the number of seeds.
    method: ``SEED_METHOD`` ("t": `t_interval` over the seeds, about ``ABOUT["t"]``),
      ``SEEDS_AND_SENTENCES_METHOD`` (`seeds_and_sentences_interval`) or, with one seed,
      ``SENTENCE_METHOD`` (`bootstrap_interval` over its test sentences).
  """

  mean: float
  low: float
  high: float
  seeds: int
  method: str

  @property
  def label(self) -> str:
    """How it was made, for a table's note: ``t over 10 seeds``, ``sentence bootstrap, 1
    seed``."""
    if self.method == SEED_METHOD:
      return f"t over {self.seeds} seeds"
    if self.method == SEEDS_AND_SENTENCES_METHOD:
      return f"t over {self.seeds} seeds and the test sentences"
    return f"{self.method}, {self.seeds} seed"


# The values a metric can take: an interval is cut to them (``values_interval``).
RANGES: Mapping[str, tuple[float, float]] = {
    "exact_match": (0.0, 1.0), "bleu": (0.0, 100.0), "detokenized_bleu": (0.0, 100.0),
    "alignment_error_rate": (0.0, 1.0), "token_accuracy": (0.0, 1.0),
    "first_error_share": (0.0, 1.0), "attention_entropy": (0.0, np.inf),
    "loss": (0.0, np.inf), "perplexity": (1.0, np.inf),
}


def values_interval(values, confidence: float = CONFIDENCE,
                    bounds: tuple[float, float] = (-np.inf, np.inf)) -> Interval:
  """The t interval (`t_interval`) of the mean of per-seed values [seeds], seeds >= 2: any
  metric each seed reports (test loss, attention entropy), with the same assumptions.

  ``bounds``: the values the metric can take (``RANGES``); the interval is cut to them, so an
  exact match near 1 never has an upper end of 1.004. Its coverage is unchanged: the true mean
  lies within the bounds, so the cut never removes it.
  """
  values = np.asarray(values, float)
  mean, low, high = t_interval(values, confidence)
  low, high = np.clip([low, high], *bounds)
  return Interval(float(mean), float(low), float(high), len(values), SEED_METHOD)


def seed_interval(stats, statistic: Statistic | str, confidence: float = CONFIDENCE,
                  seed: int = 0) -> Interval:
  """The interval of a corpus metric's mean over seeds, from [seeds, n, k] per-sentence
  statistics (sentence i the same in every seed).

  Two or more seeds: the t interval over the per-seed metrics (`t_interval`; about a new
  training seed on this test set). One seed: the sentence bootstrap (`bootstrap_interval`;
  about a new test set for this model, nothing of seed variation), labelled as such in
  ``Interval.method``; never a zero-width "± 0" from a spread of one.
  """
  stats = check_stats(stats, 3, "stats")
  if stats.shape[0] >= 2:
    return values_interval(per_seed_values(stats, statistic), confidence,
                           RANGES[statistic_of(statistic).name])
  low, high = bootstrap_interval(stats[0], statistic, confidence, seed=seed)
  mean = float(per_seed_values(stats, statistic)[0])
  return Interval(mean, low, high, 1, SENTENCE_METHOD)


def resampled_seed_means(stats, statistic: Statistic | str, joint: bool,
                         n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
  """[n_resamples] the mean over seeds of the metric on resampled test sentences, from
  [seeds, n, k] statistics: ``joint``, one resample of the n sentences shared by every seed
  (a new test set, every model scored on it); else each seed its own resample."""
  statistic, stats = statistic_of(statistic), check_stats(stats, 3, "stats")
  seeds, n, _ = stats.shape
  rng, out = np.random.default_rng(seed), []
  batch = max(1, 2_000_000 // (seeds * n))
  for start in range(0, n_resamples, batch):
    size = min(batch, n_resamples - start)
    if joint:  # weights [size, n]: how often each sentence is drawn
      sums = np.einsum("rn,snk->rsk", rng.multinomial(n, np.full(n, 1 / n), size), stats)
    else:  # [size, seeds, n]
      sums = np.einsum("rsn,snk->rsk", rng.multinomial(n, np.full(n, 1 / n), (size, seeds)),
                       stats)
    out.append(np.asarray(statistic.value(sums), float).mean(axis=-1))
  return np.concatenate(out)


def seeds_and_sentences_interval(stats, statistic: Statistic | str,
                                 confidence: float = CONFIDENCE,
                                 n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
  """The interval of a corpus metric's mean over seeds about **a new training seed on a new
  test set of the same kind**: the seed t interval widened by the test set's own sampling
  variance. From [seeds, n, k] per-sentence statistics (sentence i the same in every seed).

  The mean over S seeds and n sentences varies by seed_var / S + sentence_var / n +
  interaction_var / (n S) (a crossed two-way design). The per-seed values' variance over S
  (`t_interval`'s) estimates seed_var / S + interaction_var / (n S); the bootstrap variance of
  the seed mean with one resample shared by every seed, B_joint, estimates sentence_var / n +
  interaction_var / (n S), and with each seed resampled on its own, B_own, (sentence_var +
  interaction_var) / (n S). Their difference gives the test set's share alone:
  sentence_var / n = S / (S - 1) (B_joint - B_own), added to the seeds' variance (so the
  interaction is counted once). The interval is mean +- t(S - 1) sqrt(that sum), cut to the
  metric's range: conservative (S - 1 degrees of freedom for a sum partly known far better),
  so it covers at least the nominal rate, near it when seeds dominate and above it when the
  test set does (``tests/test_intervals.py`` simulates 3 and 10 seeds). One seed: the sentence
  bootstrap, labelled as such.
  """
  statistic, stats = statistic_of(statistic), check_stats(stats, 3, "stats")
  seeds = stats.shape[0]
  if seeds < 2:
    return seed_interval(stats, statistic, confidence, seed)
  values = per_seed_values(stats, statistic)
  joint = resampled_seed_means(stats, statistic, True, n_resamples, seed).var(ddof=1)
  own = resampled_seed_means(stats, statistic, False, n_resamples, seed + 1).var(ddof=1)
  sentence_var = max(0.0, seeds / (seeds - 1) * (joint - own))
  mean = float(values.mean())
  half = float(scipy.stats.t.ppf(0.5 + confidence / 2, seeds - 1)
               * np.sqrt(values.var(ddof=1) / seeds + sentence_var))
  low, high = np.clip([mean - half, mean + half], *RANGES[statistic.name])
  return Interval(mean, float(low), float(high), seeds, SEEDS_AND_SENTENCES_METHOD)
