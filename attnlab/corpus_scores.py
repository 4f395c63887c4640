"""Corpus metrics from per-sentence sufficient statistics summed over the sentences: BLEU
(sacrebleu's) and the alignment error rate (Och & Ney 2003). Host functions, without JAX, so
that reading and resampling a run's ``test_outcomes.jsonl`` (``attnlab.intervals``,
``attnlab.results``) needs no accelerator library; ``attnlab.metrics`` computes the
statistics from a model's outputs and re-exports these.
"""

from __future__ import annotations

import numpy as np
import sacrebleu

# sacrebleu's BLEU settings, which `metrics.corpus_bleu` uses and `bleu_from_statistics`
# repeats.
BLEU = sacrebleu.BLEU(tokenize="none")


def bleu_from_statistics(stats) -> float:
  """BLEU (0-100) from summed `bleu_statistics` [2 + 2 * 4] with `corpus_bleu`'s settings
  (sacrebleu's defaults: exponential smoothing, 4-grams): `corpus_bleu` of those sentences."""
  stats = [int(x) for x in np.asarray(stats).reshape(-1)]
  order = (len(stats) - 2) // 2
  return float(sacrebleu.BLEU.compute_bleu(
      correct=stats[2:2 + order], total=stats[2 + order:], sys_len=stats[0], ref_len=stats[1],
      smooth_method=BLEU.smooth_method, smooth_value=BLEU.smooth_value,
      effective_order=BLEU.effective_order, max_ngram_order=order).score)


def aer_from_counts(a_and_s: int, a_and_p: int, a: int, s: int) -> float:
  """AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|)   (Och & Ney 2003, eq. 18)."""
  if a + s == 0:
    raise ValueError("alignment error rate is undefined with no predicted and no sure links")
  return 1.0 - (a_and_s + a_and_p) / (a + s)
