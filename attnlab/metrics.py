"""Metrics for attention seq2seq models: loss, accuracy, BLEU, alignment quality (per-length
buckets of them: ``attnlab.length_buckets``).

Two kinds of function live here:

* JAX functions (`sequence_cross_entropy`, `token_correct`, `attention_entropy`) are pure and
  jit-able, meant to run inside train/eval steps. Each returns *sums* and a token count, so a
  caller can add them up over batches (and `psum` them over devices) before dividing once.
* Host functions (`exact_match`, `corpus_bleu`, `alignment_error_rate`,
  `perplexity`, ...) take numpy arrays / Python sequences and return Python floats or dicts
  ready for `metrics.jsonl`.

Masks are booleans, `True` = valid (a real, non-padding token).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sacrebleu

from attnlab.corpus_scores import aer_from_counts, bleu_from_statistics  # noqa: F401
from attnlab.data.vocab import BOS, EOS, PAD

Array = jax.Array


# --------------------------------------------------------------------------------------------
# JAX functions (jit-able)
# --------------------------------------------------------------------------------------------


def _check_logits_targets_mask(logits: Array, targets: Array, mask: Array) -> None:
  """Static shape checks shared by the loss and accuracy (shapes are static under jit)."""
  if logits.ndim != 3:
    raise ValueError(f"logits must be [batch, tgt_len, vocab], got shape {logits.shape}")
  if targets.shape != logits.shape[:2]:
    raise ValueError(
        f"targets must be [batch, tgt_len] = {logits.shape[:2]}, got shape {targets.shape}")
  if mask.shape != targets.shape:
    raise ValueError(f"mask must have the shape of targets {targets.shape}, got {mask.shape}")


def sequence_cross_entropy(
    logits: Array,
    targets: Array,
    mask: Array,
    label_smoothing: float = 0.0,
) -> tuple[Array, Array]:
  """Summed token cross-entropy (nats) over valid target positions.

  Args:
    logits: [batch, tgt_len, vocab] unnormalized scores.
    targets: [batch, tgt_len] int token ids.
    mask: [batch, tgt_len] bool, True at positions that count.
    label_smoothing: alpha in [0, 1); the target distribution becomes
      `(1 - alpha) * one_hot + alpha / vocab` (`optax.smooth_labels`). The smoothed loss keeps
      the entropy of the smoothed target (it is not zero at the optimum), so report perplexity
      from a loss computed with `label_smoothing=0`.

  Returns:
    (loss_sum, token_count): float32 [] sum of per-token losses over valid positions and
    int32 [] number of valid positions. Mean loss = loss_sum / token_count after aggregating.
    Masked positions contribute exactly nothing, even if their logits are inf or NaN.
  """
  _check_logits_targets_mask(logits, targets, mask)
  if isinstance(label_smoothing, (int, float)) and not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  mask = mask.astype(bool)
  logits = logits.astype(jnp.float32)
  per_token = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0.0):
    # Cross-entropy is linear in the target: against (1 - alpha) * one_hot + alpha / vocab it
    # is (1 - alpha) * CE(one_hot) + alpha * CE(uniform), and CE(uniform) = logsumexp(logits)
    # - mean(logits). Equal to optax.softmax_cross_entropy(logits, optax.smooth_labels(...))
    # (tests/test_metrics.py) without the dense [batch, tgt_len, vocab] target, whose
    # materialization made the loss about 3x slower at Multi30k's vocabulary on CPU.
    uniform = jax.nn.logsumexp(logits, axis=-1) - jnp.mean(logits, axis=-1)
    per_token = (1.0 - label_smoothing) * per_token + label_smoothing * uniform
  # `where`, not a multiply: 0 * NaN from a garbage padded position would still be NaN.
  loss_sum = jnp.sum(jnp.where(mask, per_token, 0.0))
  return loss_sum, jnp.sum(mask, dtype=jnp.int32)


def token_correct(logits: Array, targets: Array, mask: Array) -> tuple[Array, Array]:
  """Number of valid positions where argmax(logits) equals the target.

  Args:
    logits: [batch, tgt_len, vocab].
    targets: [batch, tgt_len] int token ids.
    mask: [batch, tgt_len] bool, True at positions that count.

  Returns:
    (correct_sum, token_count): int32 [] each; accuracy = correct_sum / token_count.
  """
  _check_logits_targets_mask(logits, targets, mask)
  mask = mask.astype(bool)
  correct = (jnp.argmax(logits, axis=-1) == targets) & mask  # [batch, tgt_len]
  return jnp.sum(correct, dtype=jnp.int32), jnp.sum(mask, dtype=jnp.int32)


def attention_entropy(weights: Array, tgt_mask: Array, src_mask: Array) -> tuple[Array, Array]:
  """Summed entropy (nats) of the attention distribution of each valid target position.

  Each row is restricted to the valid source positions and renormalized there (weights on
  padded keys are dropped), so the result is the entropy of a proper distribution over the
  real source tokens: log(n) for uniform attention over n keys, 0 for a one-hot row.
  0 * log 0 is taken as 0, so the result is finite for hard (one-hot) attention too.

  Args:
    weights: [batch, tgt_len, src_len] non-negative attention weights.
    tgt_mask: [batch, tgt_len] bool, True for real target positions.
    src_mask: [batch, src_len] bool, True for real source positions.

  Returns:
    (entropy_sum, token_count): float32 [] sum over counted rows, int32 [] number of counted
    rows. A row counts when its target position is valid and its source has at least one
    valid position (an all-zero row also has entropy 0, but is counted).
  """
  if weights.ndim != 3:
    raise ValueError(f"weights must be [batch, tgt_len, src_len], got shape {weights.shape}")
  batch, tgt_len, src_len = weights.shape
  if tgt_mask.shape != (batch, tgt_len):
    raise ValueError(f"tgt_mask must be [batch, tgt_len] = {(batch, tgt_len)}, "
                     f"got {tgt_mask.shape}")
  if src_mask.shape != (batch, src_len):
    raise ValueError(f"src_mask must be [batch, src_len] = {(batch, src_len)}, "
                     f"got {src_mask.shape}")
  tgt_mask = tgt_mask.astype(bool)
  src_mask = src_mask.astype(bool)
  weights = weights.astype(jnp.float32)
  p = jnp.where(src_mask[:, None, :], weights, 0.0)  # [batch, tgt_len, src_len]
  total = jnp.sum(p, axis=-1, keepdims=True)  # [batch, tgt_len, 1]
  p = p / jnp.where(total > 0, total, 1.0)  # all-zero rows stay zero, never 0/0
  # Safe log: log(1) = 0 where p == 0, so 0 * log 0 -> 0 and gradients stay finite.
  plogp = jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
  row_entropy = -jnp.sum(plogp, axis=-1)  # [batch, tgt_len]
  rows = tgt_mask & jnp.any(src_mask, axis=-1, keepdims=True)  # [batch, tgt_len]
  return jnp.sum(jnp.where(rows, row_entropy, 0.0)), jnp.sum(rows, dtype=jnp.int32)


# --------------------------------------------------------------------------------------------
# Host-side metrics
# --------------------------------------------------------------------------------------------


def perplexity(loss_sum, token_count, max_perplexity: float = 1.0e4) -> float:
  """exp(loss_sum / token_count), clipped at `max_perplexity`.

  The clip (as in the flax wmt / lm1b examples) keeps an untrained or diverged model from
  overflowing to inf in the logs; a reported value equal to `max_perplexity` means "at least".

  Args:
    loss_sum: [] summed cross-entropy in nats (from `sequence_cross_entropy`).
    token_count: [] number of tokens it was summed over.
    max_perplexity: upper bound of the result.

  Returns:
    Perplexity as a Python float.
  """
  loss_sum, token_count = float(loss_sum), float(token_count)
  if token_count <= 0:
    raise ValueError(f"token_count must be positive, got {token_count}")
  if not math.isfinite(loss_sum):
    raise ValueError(f"loss_sum must be finite, got {loss_sum}")
  if max_perplexity <= 1.0:
    raise ValueError(f"max_perplexity must be > 1, got {max_perplexity}")
  return math.exp(min(loss_sum / token_count, math.log(max_perplexity)))


def strip_special(tokens: Iterable[int]) -> list[int]:
  """The content tokens of one sequence: drop a leading BOS, cut at the first EOS, drop PAD.

  Args:
    tokens: [len] token ids (list, tuple or 1-D array), as produced by a decoder or a batch.

  Returns:
    List of Python ints, e.g. [BOS, 5, 6, EOS, 7, PAD] -> [5, 6].
  """
  out = [int(t) for t in np.asarray(tokens).reshape(-1)]
  if out and out[0] == BOS:
    out = out[1:]
  if EOS in out:
    out = out[:out.index(EOS)]
  return [t for t in out if t != PAD]


def exact_match(predictions: Sequence[Sequence[int]],
                references: Sequence[Sequence[int]]) -> float:
  """Fraction of sequences predicted exactly, after `strip_special` on both sides.

  Both sides are compared on their content tokens: a leading BOS is dropped, everything from
  the first EOS on is ignored, and PAD tokens are removed. So [5, 6, EOS, 9, 9] matches
  [5, 6, EOS, PAD] and [5, 6], but [5, 6, 7] does not match [5, 6].

  Args:
    predictions: [num_sequences][pred_len] token ids (a padded 2-D array works too).
    references: [num_sequences][ref_len] token ids.

  Returns:
    Exact-match rate in [0, 1].
  """
  if len(predictions) != len(references):
    raise ValueError(f"got {len(predictions)} predictions for {len(references)} references")
  if len(references) == 0:
    raise ValueError("exact_match needs at least one sequence")
  matches = sum(strip_special(p) == strip_special(r) for p, r in zip(predictions, references))
  return matches / len(references)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str],
                tokenize: str = "none") -> float:
  """Corpus BLEU (0-100) with sacrebleu, one reference per hypothesis.

  Args:
    hypotheses: [num_sentences] detokenized strings, or (our default) tokens joined by spaces.
    references: [num_sentences] strings in the same format.
    tokenize: sacrebleu tokenizer name. "none" because our text is already tokenized and
      space-joined (sacrebleu's "forgot to detokenize" warning is then off: the tokenization
      is on purpose); use "13a" (sacrebleu's default) for raw, detokenized text.

  Returns:
    BLEU score as a Python float, 100.0 for identical corpora.
  """
  if isinstance(hypotheses, str) or isinstance(references, str):
    raise ValueError("hypotheses and references must be sequences of strings, not a string")
  if len(hypotheses) != len(references):
    raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
  if len(references) == 0:
    raise ValueError("corpus_bleu needs at least one sentence")
  return float(
      sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize,
                            force=tokenize == "none").score)


def detokenized_bleu(hypotheses: Sequence[str], references: Sequence[str],
                     lowercase: bool = False) -> tuple[float, str]:
  """sacrebleu's standard BLEU: detokenized hypotheses [n] against the corpus's own reference
  lines [n], sacrebleu's 13a tokenizer, case-insensitive with ``lowercase`` (``-lc``, for a
  model that writes lowercase). Returns (BLEU 0-100, sacrebleu's signature)."""
  bleu = sacrebleu.metrics.BLEU(lowercase=lowercase)
  score = bleu.corpus_score(list(hypotheses), [list(references)])
  return float(score.score), str(bleu.get_signature())


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[str],
                    tokenize: str = "none") -> np.ndarray:
  """sacrebleu's sufficient statistics of each sentence, as `corpus_bleu` computes them.

  Corpus BLEU is a function of these statistics summed over the sentences
  (`bleu_from_statistics`, from ``attnlab.corpus_scores``), so a subset's or a resampled
  corpus's BLEU needs no re-scoring.

  Args:
    hypotheses, references: [num_sentences] strings, as `corpus_bleu`.
    tokenize: as `corpus_bleu`.

  Returns:
    [num_sentences, 2 + 2 * 4] int64: hypothesis length, reference length, then matching and
    total n-grams of each order n = 1..4 (sacrebleu's order).
  """
  if len(hypotheses) != len(references):
    raise ValueError(f"got {len(hypotheses)} hypotheses for {len(references)} references")
  bleu = sacrebleu.BLEU(tokenize=tokenize)
  rows = []
  for hyp, ref in zip(hypotheses, references):
    score = bleu.corpus_score([hyp], [[ref]])
    rows.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
  return np.array(rows, np.int64).reshape(len(rows), 2 + 2 * bleu.max_ngram_order)


def alignment_counts(
    attention,
    sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]] | None = None,
    tgt_length: int | None = None,
    src_length: int | None = None,
) -> dict[str, int]:
  """Counts behind the alignment error rate for one sentence pair.

  The hard alignment A links each valid target position i to argmax_j attention[i, j] over the
  valid source positions j < src_length. The possible links P are taken as P ∪ S, so S ⊆ P
  holds as Och & Ney (2003) require; P = S when `possible` is None.

  Args:
    attention: [tgt_len, src_len] attention weights (rows = output positions).
    sure: (tgt, src) index pairs of sure links S, in attention's row/column coordinates.
    possible: (tgt, src) index pairs of possible links P, or None.
    tgt_length: number of valid rows (default: all tgt_len).
    src_length: number of valid columns (default: all src_len).

  Returns:
    {"a_and_s": |A∩S|, "a_and_p": |A∩P|, "a": |A|, "s": |S|}.
  """
  attention = np.asarray(attention)
  if attention.ndim != 2:
    raise ValueError(f"attention must be [tgt_len, src_len], got shape {attention.shape}")
  tgt_len, src_len = attention.shape
  tgt_length = tgt_len if tgt_length is None else int(tgt_length)
  src_length = src_len if src_length is None else int(src_length)
  if not 0 <= tgt_length <= tgt_len:
    raise ValueError(f"tgt_length must be in [0, {tgt_len}], got {tgt_length}")
  if not 1 <= src_length <= src_len:
    raise ValueError(f"src_length must be in [1, {src_len}], got {src_length}")

  def links(pairs, name):
    out = {(int(i), int(j)) for i, j in pairs}
    for i, j in out:
      if not (0 <= i < tgt_length and 0 <= j < src_length):
        raise ValueError(f"{name} link {(i, j)} is outside the valid "
                         f"[{tgt_length}, {src_length}] region of the attention")
    return out

  s = links(sure, "sure")
  p = s | (links(possible, "possible") if possible is not None else set())
  hard = np.argmax(attention[:tgt_length, :src_length], axis=-1)  # [tgt_length]
  a = {(i, int(j)) for i, j in enumerate(hard)}
  return {"a_and_s": len(a & s), "a_and_p": len(a & p), "a": len(a), "s": len(s)}


def alignment_error_rate(
    attention,
    sure: Iterable[tuple[int, int]],
    possible: Iterable[tuple[int, int]] | None = None,
    tgt_length: int | None = None,
    src_length: int | None = None,
) -> float:
  """Alignment error rate of argmax attention against gold links, for one sentence pair.

  Args: as `alignment_counts`: attention [tgt_len, src_len], sure / possible (tgt, src) pairs,
    optional valid lengths.

  Returns:
    AER in [0, 1]; 0 when the argmax links equal the sure links (S = P).
  """
  return aer_from_counts(**alignment_counts(attention, sure, possible, tgt_length, src_length))


def corpus_alignment_error_rate(
    attentions: Sequence,
    sures: Sequence[Iterable[tuple[int, int]]],
    possibles: Sequence[Iterable[tuple[int, int]] | None] | None = None,
    tgt_lengths: Sequence[int] | None = None,
    src_lengths: Sequence[int] | None = None,
) -> float:
  """AER over a corpus, pooling link counts over sentences (not averaging per-sentence AERs).

  Args:
    attentions: [num_sentences] of [tgt_len, src_len] arrays (a padded
      [num_sentences, tgt_len, src_len] array works too).
    sures: [num_sentences] sure-link sets.
    possibles: [num_sentences] possible-link sets (entries may be None), or None.
    tgt_lengths: [num_sentences] valid target lengths, or None for full rows.
    src_lengths: [num_sentences] valid source lengths, or None for full columns.

  Returns:
    1 - (Σ|A∩S| + Σ|A∩P|) / (Σ|A| + Σ|S|).
  """
  n = len(attentions)
  if n == 0:
    raise ValueError("corpus_alignment_error_rate needs at least one sentence")
  for name, seq in (("sures", sures), ("possibles", possibles),
                    ("tgt_lengths", tgt_lengths), ("src_lengths", src_lengths)):
    if seq is not None and len(seq) != n:
      raise ValueError(f"{name} has {len(seq)} entries for {n} attention matrices")
  totals = {"a_and_s": 0, "a_and_p": 0, "a": 0, "s": 0}
  for k in range(n):
    counts = alignment_counts(
        attentions[k], sures[k],
        None if possibles is None else possibles[k],
        None if tgt_lengths is None else tgt_lengths[k],
        None if src_lengths is None else src_lengths[k])
    for key, value in counts.items():
      totals[key] += value
  return aer_from_counts(**totals)
