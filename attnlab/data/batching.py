"""Length bucketing and padded int32 batches with a deterministic, resumable order.

A batch is a dict of numpy arrays with static shapes per bucket, so a jitted step compiles once
per bucket:

  src          [batch, src_len] int32    source ids, PAD after the true length, no BOS/EOS
  src_lengths  [batch] int32             number of source tokens
  tgt_in       [batch, tgt_len] int32    BOS + target ids, then PAD (decoder input)
  tgt_out      [batch, tgt_len] int32    target ids + EOS, then PAD (decoder labels)
  tgt_lengths  [batch] int32             len(target) + 1
  example_mask [batch] bool              False on filler rows that pad out a partial batch
  index        [batch] int32             position of the example in its list, -1 on fillers
  alignment    [batch, tgt_len, src_len] float32   only when every example has an alignment:
                                         1.0 at (tgt_out position, src position) of each sure
                                         link; the EOS row is all zero.
  src_ext      [batch, src_len] int32    only with `copy=True` (a pointer-generator model):
                                         source ids in the example's extended target vocabulary
                                         (`Vocab.source_oovs`): a source word of the target
                                         vocabulary has its target id, the k-th distinct other
                                         one `len(tgt_vocab) + k` (k < src_len), PAD after the
                                         length. `tgt_out` is then in extended ids too: a target
                                         word outside the target vocabulary that the source holds
                                         gets its slot, others stay UNK (`tgt_in` keeps UNK).
                                         The OOV word lists stay on the host:
                                         `tgt_vocab.source_oovs(example.src)` gives them back.

Filler rows hold a one-token source (PAD) and a one-token target (BOS in, EOS out) with lengths
1, so nothing downstream divides by zero; `example_mask` keeps them out of losses and metrics.
A bucket is a `(src_len, tgt_len)` padded shape.

Training batches hold `batch_size` rows, or, under a token budget (`max_tokens`, fairseq's
--max-tokens), `token_batch_rows` rows per bucket: as many as keep both padded arrays
`[rows, src_len]` and `[rows, tgt_len]` within the budget, so a step of long sentences holds
about as many tokens as a step of short ones, and there is still one padded shape per bucket.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from attnlab.data.base import Example
from attnlab.data.vocab import BOS, EOS, PAD, Vocab

Bucket = tuple[int, int]


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def _check_examples(examples: Sequence[Example]) -> None:
  if len(examples) == 0:
    raise ValueError("no examples to batch")
  for i, e in enumerate(examples):
    if len(e.src) == 0:
      raise ValueError(f"example {i} has an empty source; models need at least one position")


def _check_buckets(buckets: Sequence[Bucket]) -> tuple[Bucket, ...]:
  buckets = tuple((int(s), int(t)) for s, t in buckets)
  if not buckets:
    raise ValueError("no buckets given")
  if any(s < 1 or t < 1 for s, t in buckets):
    raise ValueError(f"bucket shapes must be positive, got {buckets}")
  if any(a[0] >= b[0] for a, b in zip(buckets, buckets[1:])):
    raise ValueError(f"buckets must have strictly increasing src_len, got {buckets}")
  return buckets


def make_buckets(
    examples: Sequence[Example],
    num_buckets: int = 4,
    *,
    round_to: int = 1,
    boundaries: Sequence[int] | None = None,
    tgt_quantile: float = 1.0,
) -> tuple[Bucket, ...]:
  """Padded `(src_len, tgt_len)` shapes covering `examples`, sorted by src_len.

  Source-length upper boundaries are the `k / num_buckets` quantiles (k = 1..num_buckets) of
  the source lengths, taken as observed lengths (`inverted_cdf`) and rounded up to a multiple
  of `round_to`; equal boundaries merge, so there may be fewer than `num_buckets` buckets. The
  last boundary is at least the longest source. An example falls in the first bucket whose
  src_len fits it; each bucket's tgt_len is the largest `len(tgt) + 1` (target + EOS) among its
  examples, rounded up to `round_to`. Buckets that no example falls in are dropped. The result
  depends only on the lengths, so it is deterministic.

  With `tgt_quantile` below 1, a bucket's tgt_len is that quantile of its examples' `len(tgt) +
  1` instead (observed lengths, rounded up): the few pairs whose target is far longer than their
  source then go to the first later bucket with room for both (`bucket_of`), rather than padding
  every batch of their bucket to their length; the last bucket grows to hold any example no
  bucket has room for, so every example still fits.

  Args:
    examples: the examples the buckets must cover.
    num_buckets: at most this many buckets (ignored with `boundaries`).
    round_to: round padded lengths up to a multiple of this (e.g. 8 for friendlier shapes).
    boundaries: explicit source-length upper boundaries instead of quantiles; the largest must
      cover the longest source.
    tgt_quantile: in (0, 1]: the quantile of target lengths each bucket's tgt_len holds.

  Returns:
    `((src_len, tgt_len), ...)` with strictly increasing src_len.
  """
  _check_examples(examples)
  if round_to < 1:
    raise ValueError(f"round_to must be >= 1, got {round_to}")
  if not 0 < tgt_quantile <= 1:
    raise ValueError(f"tgt_quantile must be in (0, 1], got {tgt_quantile}")
  src_lens = np.array([len(e.src) for e in examples])
  tgt_lens = np.array([len(e.tgt) + 1 for e in examples])
  if boundaries is None:
    if num_buckets < 1:
      raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
    quantiles = np.arange(1, num_buckets + 1) / num_buckets
    bounds = np.quantile(src_lens, quantiles, method="inverted_cdf")
  else:
    bounds = np.asarray(boundaries, dtype=np.int64)
    if bounds.ndim != 1 or bounds.size == 0 or np.any(bounds < 1):
      raise ValueError(f"boundaries must be positive source lengths, got {boundaries}")
    if bounds.max() < src_lens.max():
      raise ValueError(f"the largest boundary {bounds.max()} does not cover the longest source "
                       f"({src_lens.max()} tokens, example {int(src_lens.argmax())})")
  bounds = np.unique([_round_up(int(b), round_to) for b in bounds])
  which = np.searchsorted(bounds, src_lens)  # first boundary >= each source length
  buckets = []
  for b, src_len in enumerate(bounds):
    in_bucket = which == b
    if in_bucket.any():
      tgt_len = np.quantile(tgt_lens[in_bucket], tgt_quantile, method="inverted_cdf")
      buckets.append((int(src_len), _round_up(int(tgt_len), round_to)))
  fits = np.zeros(len(examples), dtype=bool)
  for src_len, tgt_len in buckets:
    fits |= (src_lens <= src_len) & (tgt_lens <= tgt_len)
  if not fits.all():  # only with tgt_quantile < 1
    src_len, tgt_len = buckets[-1]
    buckets[-1] = (src_len, max(tgt_len, _round_up(int(tgt_lens[~fits].max()), round_to)))
  return tuple(buckets)


def bucket_of(src_len: int, buckets: Sequence[Bucket], tgt_len: int = 1) -> int:
  """Index of the first bucket with room for `src_len` source and `tgt_len` decoder positions.

  Args:
    src_len: number of source tokens.
    buckets: `((src_len, tgt_len), ...)` sorted by src_len, e.g. from `make_buckets`.
    tgt_len: decoder positions needed, `len(target) + 1`; the default 1 looks at src_len only.

  Raises:
    ValueError: no bucket is large enough.
  """
  for b, (bucket_src, bucket_tgt) in enumerate(buckets):
    if src_len <= bucket_src and tgt_len <= bucket_tgt:
      return b
  raise ValueError(f"an example with {src_len} source tokens and {tgt_len} decoder positions "
                   f"fits no bucket of {tuple(buckets)}")


@dataclasses.dataclass(frozen=True)
class _Encoded:
  """Examples as id arrays, computed once per list."""
  src: list[np.ndarray]
  tgt: list[np.ndarray]
  alignment: list[np.ndarray] | None  # each [num_links, 2] (tgt_pos, src_pos), or None
  # copy=True only: source and target in extended target-vocabulary ids (module doc).
  src_ext: list[np.ndarray] | None = None
  tgt_ext: list[np.ndarray] | None = None

  @classmethod
  def of(cls, examples, src_vocab: Vocab, tgt_vocab: Vocab, with_alignment: bool | None,
         copy: bool = False):
    if with_alignment is None:
      with_alignment = all(e.alignment is not None for e in examples)
    if with_alignment and any(e.alignment is None for e in examples):
      raise ValueError("with_alignment=True but some examples have no alignment")
    src_ext = tgt_ext = None
    if copy:
      oovs = [tgt_vocab.source_oovs(e.src) for e in examples]
      src_ext = [np.asarray(tgt_vocab.encode_extended(e.src, o), np.int32)
                 for e, o in zip(examples, oovs)]
      tgt_ext = [np.asarray(tgt_vocab.encode_extended(e.tgt, o), np.int32)
                 for e, o in zip(examples, oovs)]
    return cls(
        src=[np.asarray(src_vocab.encode(e.src), np.int32) for e in examples],
        tgt=[np.asarray(tgt_vocab.encode(e.tgt), np.int32) for e in examples],
        alignment=([np.asarray(e.alignment, np.int64).reshape(-1, 2) for e in examples]
                   if with_alignment else None),
        src_ext=src_ext, tgt_ext=tgt_ext)

  def batch(self, indices: Sequence[int], shape: Bucket, batch_size: int,
            positions: Sequence[int] | None = None) -> dict:
    """Rows for `indices` (positions in this encoding) in a `shape` batch; `positions` (default
    `indices`) is what the `index` column and error messages report."""
    positions = indices if positions is None else positions
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(indices) > batch_size:
      raise ValueError(f"{len(indices)} examples do not fit a batch of {batch_size}")
    src_len, tgt_len = shape
    # Filler rows by default: PAD source of length 1, target BOS -> EOS of length 1.
    src = np.full((batch_size, src_len), PAD, np.int32)
    tgt_in = np.full((batch_size, tgt_len), PAD, np.int32)
    tgt_out = np.full((batch_size, tgt_len), PAD, np.int32)
    tgt_in[:, 0], tgt_out[:, 0] = BOS, EOS
    src_lengths = np.ones(batch_size, np.int32)
    tgt_lengths = np.ones(batch_size, np.int32)
    index = np.full(batch_size, -1, np.int32)
    example_mask = np.zeros(batch_size, bool)
    alignment = (np.zeros((batch_size, tgt_len, src_len), np.float32)
                 if self.alignment is not None else None)
    src_ext = np.full((batch_size, src_len), PAD, np.int32) if self.src_ext is not None else None
    for row, (i, position) in enumerate(zip(indices, positions)):
      s, t = self.src[i], self.tgt[i]
      if len(s) > src_len or len(t) + 1 > tgt_len:
        raise ValueError(f"example {position} ({len(s)} source, {len(t) + 1} decoder "
                         f"positions) does not fit the batch shape {shape}")
      src[row, :len(s)] = s
      tgt_in[row, 1:len(t) + 1] = t
      tgt_out[row, :len(t)] = t if self.tgt_ext is None else self.tgt_ext[i]
      tgt_out[row, len(t)] = EOS
      if src_ext is not None:
        src_ext[row, :len(s)] = self.src_ext[i]
      src_lengths[row], tgt_lengths[row] = len(s), len(t) + 1
      index[row], example_mask[row] = position, True
      if alignment is not None and len(self.alignment[i]):
        alignment[row, self.alignment[i][:, 0], self.alignment[i][:, 1]] = 1.0
    batch = dict(src=src, src_lengths=src_lengths, tgt_in=tgt_in, tgt_out=tgt_out,
                 tgt_lengths=tgt_lengths, example_mask=example_mask, index=index)
    if alignment is not None:
      batch["alignment"] = alignment
    if src_ext is not None:
      batch["src_ext"] = src_ext
    return batch


def encode_batch(
    examples: Sequence[Example],
    indices: Sequence[int],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    shape: Bucket,
    batch_size: int,
    with_alignment: bool | None = None,
    copy: bool = False,
) -> dict[str, np.ndarray]:
  """One padded batch of `examples[indices]`, filler rows after them (see the module doc).

  Args:
    examples: the example list; `index` in the batch refers to positions in it.
    indices: up to `batch_size` positions into `examples`.
    src_vocab, tgt_vocab: vocabularies for the ids.
    shape: the bucket `(src_len, tgt_len)`; every chosen example must fit.
    batch_size: rows in the batch.
    with_alignment: include `alignment [batch, tgt_len, src_len]`; None: when every example
      in `examples` (the whole list, so all batches of a list share their keys) has one.
    copy: add `src_ext` and give `tgt_out` in extended ids (a copy model; module doc).

  Returns:
    The batch dict (module doc).
  """
  chosen = [examples[i] for i in indices]
  if with_alignment is None:
    with_alignment = all(e.alignment is not None for e in examples)
  encoded = _Encoded.of(chosen, src_vocab, tgt_vocab, with_alignment, copy)
  return encoded.batch(range(len(chosen)), shape, batch_size, positions=indices)


def _group_by_bucket(encoded: _Encoded, buckets: tuple[Bucket, ...]) -> list[np.ndarray]:
  """Example positions in each bucket, in list order: `[num_buckets]` int arrays."""
  which = np.empty(len(encoded.src), np.int64)
  for i, (s, t) in enumerate(zip(encoded.src, encoded.tgt)):
    try:
      which[i] = bucket_of(len(s), buckets, len(t) + 1)
    except ValueError as e:
      raise ValueError(f"example {i} is longer than the largest bucket: {e}") from None
  return [np.flatnonzero(which == b) for b in range(len(buckets))]


def _chunks(indices: np.ndarray, batch_size: int) -> list[np.ndarray]:
  return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]


def token_batch_rows(buckets: Sequence[Bucket], max_tokens: int,
                     multiple: int = 1) -> tuple[int, ...]:
  """Rows per training batch of each bucket under a budget of `max_tokens` padded tokens.

  Bucket `(src_len, tgt_len)` gets the most rows r, a multiple of `multiple` (the data-parallel
  device count), with `r * max(src_len, tgt_len) <= max_tokens`: neither the padded source
  `[r, src_len]` nor the padded target `[r, tgt_len]` holds more than `max_tokens` tokens
  (filler rows count: the budget bounds the arrays the step computes on). 0 where the budget
  holds fewer than `multiple` rows of the bucket.
  """
  if max_tokens < 1 or multiple < 1:
    raise ValueError(f"max_tokens and multiple must be >= 1, got {max_tokens}, {multiple}")
  return tuple((max_tokens // max(s, t)) // multiple * multiple for s, t in buckets)


class TrainBatches:
  """Training batches whose order is a pure function of (seed, step), so resuming is exact.

  Epoch `e = step // steps_per_epoch` uses `np.random.default_rng([seed, e])` to shuffle the
  examples within each bucket, cut each bucket into batches (the last partial batch of a
  bucket is padded with filler rows) and shuffle the order of all the epoch's batches. Every
  example appears exactly once per epoch. `batch(step)` returns the `step % steps_per_epoch`-th
  batch of that order. A batch of bucket b has `rows[b]` rows: `batch_size`, or with
  `max_tokens` the bucket's `token_batch_rows`.
  """

  def __init__(
      self,
      examples: Sequence[Example],
      src_vocab: Vocab,
      tgt_vocab: Vocab,
      batch_size: int,
      buckets: Sequence[Bucket],
      seed: int,
      copy: bool = False,
      max_tokens: int = 0,
      rows_multiple: int = 1,
  ):
    """Args: the training examples, their vocabularies, rows per batch, bucket shapes (e.g.
    from `make_buckets(examples)`), the non-negative shuffling seed, `copy` (extended ids
    for a copy model: `src_ext`, see the module doc), and `max_tokens` (0: off; else rows per
    bucket from `token_batch_rows(buckets, max_tokens, rows_multiple)`, `batch_size` unused).

    Raises:
      ValueError: bad sizes, an example no bucket holds, or a budget too small for one batch
        of a bucket the examples fall in.
    """
    _check_examples(examples)
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(seed) < 0:
      raise ValueError(f"seed must be >= 0, got {seed}")
    self.batch_size = int(batch_size)
    self.buckets = _check_buckets(buckets)
    self.seed = int(seed)
    self._encoded = _Encoded.of(examples, src_vocab, tgt_vocab, None, copy)
    self._by_bucket = _group_by_bucket(self._encoded, self.buckets)
    self.rows = (token_batch_rows(self.buckets, max_tokens, rows_multiple) if max_tokens
                 else (self.batch_size,) * len(self.buckets))
    for shape, rows, ix in zip(self.buckets, self.rows, self._by_bucket):
      if len(ix) and rows == 0:
        raise ValueError(f"max_tokens={max_tokens} holds no batch of the padded shape {shape}: "
                         f"it needs at least {max(shape) * rows_multiple} tokens")
    self._plan_cache: tuple[int, list[tuple[int, np.ndarray]]] | None = None

  @property
  def num_examples(self) -> int:
    return len(self._encoded.src)

  @property
  def steps_per_epoch(self) -> int:
    """Batches per epoch: sum over buckets of ceil(bucket size / rows of its batches)."""
    return sum(math.ceil(len(ix) / rows) for ix, rows in zip(self._by_bucket, self.rows)
               if len(ix))

  def epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
    """The epoch's batches in order, as `(bucket, example positions)` pairs."""
    if self._plan_cache is not None and self._plan_cache[0] == epoch:
      return self._plan_cache[1]
    rng = np.random.default_rng([self.seed, epoch])
    # Every bucket draws its permutation, an empty one too (max(rows, 1): a bucket without
    # examples may hold no row under max_tokens), so the order is as before token batching.
    plan = [(b, chunk) for b, ix in enumerate(self._by_bucket)
            for chunk in _chunks(rng.permutation(ix), max(self.rows[b], 1))]
    plan = [plan[i] for i in rng.permutation(len(plan))]
    self._plan_cache = (epoch, plan)
    return plan

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """The batch for training step `step` (>= 0); see the module doc for the keys."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    epoch, position = divmod(int(step), self.steps_per_epoch)
    bucket, indices = self.epoch_plan(epoch)[position]
    return self._encoded.batch(indices, self.buckets[bucket], self.rows[bucket])


def eval_batches(
    examples: Sequence[Example],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    batch_size: int,
    buckets: Sequence[Bucket],
    copy: bool = False,
) -> list[dict[str, np.ndarray]]:
  """Every example exactly once: bucket by bucket, list order within a bucket, fillers masked.

  `copy`: extended ids for a copy model (`src_ext`, see the module doc).

  Returns:
    Batches (module doc); `index` maps rows back to positions in `examples`.
  """
  _check_examples(examples)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  buckets = _check_buckets(buckets)
  encoded = _Encoded.of(examples, src_vocab, tgt_vocab, None, copy)
  return [encoded.batch(chunk, buckets[b], batch_size)
          for b, ix in enumerate(_group_by_bucket(encoded, buckets))
          for chunk in _chunks(ix, batch_size)]
