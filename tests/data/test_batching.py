"""Tests for attnlab.data.batching: buckets, padding layout, deterministic resumable order."""

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest

from attnlab.data.batching import (TrainBatches, bucket_of, encode_batch, eval_batches,
                                   make_buckets, token_batch_rows)
from attnlab.data.tasks import Example, build_task, default_data_config
from attnlab.data.vocab import BOS, EOS, PAD, Vocab


@pytest.fixture(scope="module")
def task():
  config = default_data_config("reverse")
  config.num_train, config.num_valid, config.num_test = 203, 30, 30
  config.min_len, config.max_len = 1, 12
  return build_task(config)


def _unaligned(examples):
  return [Example(e.src, e.tgt) for e in examples]


def _fits(example, bucket):
  return len(example.src) <= bucket[0] and len(example.tgt) + 1 <= bucket[1]


# ------------------------------------------------------------------------------ buckets


def test_make_buckets_cover_examples(task):
  examples = task.train
  buckets = make_buckets(examples, num_buckets=4)
  assert 1 <= len(buckets) <= 4
  assert [s for s, _ in buckets] == sorted({s for s, _ in buckets})
  assert buckets[-1][0] == max(len(e.src) for e in examples)
  for b, (src_len, tgt_len) in enumerate(buckets):
    low = buckets[b - 1][0] if b else 0
    members = [e for e in examples if low < len(e.src) <= src_len]
    assert members and tgt_len == max(len(e.tgt) + 1 for e in members)
  assert make_buckets(examples[::-1], num_buckets=4) == buckets


def test_make_buckets_round_to_and_boundaries(task):
  buckets = make_buckets(task.train, num_buckets=3, round_to=8)
  assert all(s % 8 == 0 and t % 8 == 0 for s, t in buckets)
  assert make_buckets(task.train, boundaries=(4, 12)) == ((4, 5), (12, 13))
  assert make_buckets(task.train, boundaries=(4, 100)) == ((4, 5), (100, 13))
  assert make_buckets(task.train, num_buckets=1) == ((12, 13),)
  with pytest.raises(ValueError, match="largest boundary"):
    make_buckets(task.train, boundaries=(4, 11))
  with pytest.raises(ValueError, match="no examples"):
    make_buckets([], num_buckets=2)
  with pytest.raises(ValueError, match="num_buckets"):
    make_buckets(task.train, num_buckets=0)


@hypothesis.settings(deadline=None, max_examples=40)
@hypothesis.given(
    lengths=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 30)), min_size=1, max_size=60),
    num_buckets=st.integers(1, 5),
    quantile=st.floats(0.05, 1.0),
    round_to=st.integers(1, 4),
)
def test_target_quantile_buckets_still_cover_every_example(lengths, num_buckets, quantile,
                                                           round_to):
  examples = [Example(("x",) * n, ("y",) * m) for n, m in lengths]
  full = make_buckets(examples, num_buckets, round_to=round_to)
  cut = make_buckets(examples, num_buckets, round_to=round_to, tgt_quantile=quantile)
  assert [s for s, _ in cut] == [s for s, _ in full]  # the source boundaries do not move
  assert all(any(_fits(e, b) for b in cut) for e in examples)
  assert all(t <= f for (_, t), (_, f) in zip(cut[:-1], full[:-1]))  # never more padding
  assert make_buckets(examples, num_buckets, round_to=round_to, tgt_quantile=1.0) == full


def test_a_target_quantile_moves_long_targets_to_a_later_bucket():
  examples = [Example(("x",) * 2, ("y",) * 2) for _ in range(19)]
  examples += [Example(("x",) * 2, ("y",) * 9)]  # one long target among short sources
  examples += [Example(("x",) * 8, ("y",) * 9) for _ in range(5)]
  assert make_buckets(examples, boundaries=(2, 8)) == ((2, 10), (8, 10))
  buckets = make_buckets(examples, boundaries=(2, 8), tgt_quantile=0.9)
  assert buckets == ((2, 3), (8, 10))
  assert bucket_of(2, buckets, 10) == 1
  with pytest.raises(ValueError, match="tgt_quantile"):
    make_buckets(examples, tgt_quantile=0)


def test_bucket_of():
  buckets = ((4, 6), (8, 9), (12, 13))
  assert [bucket_of(n, buckets) for n in (1, 4, 5, 8, 12)] == [0, 0, 1, 1, 2]
  assert bucket_of(3, buckets, tgt_len=7) == 1  # the target does not fit bucket 0
  with pytest.raises(ValueError, match="fits no bucket"):
    bucket_of(13, buckets)


# ------------------------------------------------------------------------------ layout


def check_layout(batch, examples, src_vocab, tgt_vocab):
  """Asserts the documented PAD/BOS/EOS layout, lengths, masks and alignments of a batch."""
  size, src_len = batch["src"].shape
  tgt_len = batch["tgt_in"].shape[1]
  assert batch["tgt_out"].shape == (size, tgt_len)
  for key in ("src", "src_lengths", "tgt_in", "tgt_out", "tgt_lengths", "index"):
    assert batch[key].dtype == np.int32, key
  assert batch["example_mask"].dtype == bool
  for row in range(size):
    i = batch["index"][row]
    if not batch["example_mask"][row]:
      assert i == -1
      src_ids, tgt_ids = [PAD], []
    else:
      src_ids, tgt_ids = src_vocab.encode(examples[i].src), tgt_vocab.encode(examples[i].tgt)
    n, m = len(src_ids), len(tgt_ids)
    assert batch["src_lengths"][row] == n and batch["tgt_lengths"][row] == m + 1
    pad = [PAD] * (tgt_len - m - 1)
    np.testing.assert_array_equal(batch["src"][row], src_ids + [PAD] * (src_len - n))
    np.testing.assert_array_equal(batch["tgt_in"][row], [BOS] + tgt_ids + pad)
    np.testing.assert_array_equal(batch["tgt_out"][row], tgt_ids + [EOS] + pad)
    if "alignment" in batch:
      expected = np.zeros((tgt_len, src_len), np.float32)
      if batch["example_mask"][row]:
        for t, s in examples[i].alignment:
          expected[t, s] = 1.0
      np.testing.assert_array_equal(batch["alignment"][row], expected)
      assert not batch["alignment"][row, m].any()  # the EOS row


def test_encode_batch_layout_and_fillers(task):
  examples = task.train
  indices = [5, 0, 17]
  shape = (12, 13)
  batch = encode_batch(examples, indices, task.src_vocab, task.tgt_vocab, shape, batch_size=5)
  assert batch["src"].shape == (5, 12) and batch["alignment"].shape == (5, 13, 12)
  assert batch["alignment"].dtype == np.float32
  np.testing.assert_array_equal(batch["index"], [5, 0, 17, -1, -1])
  np.testing.assert_array_equal(batch["example_mask"], [True, True, True, False, False])
  check_layout(batch, examples, task.src_vocab, task.tgt_vocab)
  # Reverse task: the alignment is the anti-diagonal over the true lengths.
  n = len(examples[5].src)
  np.testing.assert_array_equal(batch["alignment"][0, :n, :n], np.eye(n)[::-1])


def test_encode_batch_without_alignment_and_errors(task):
  examples = _unaligned(task.train)
  batch = encode_batch(examples, [1, 2], task.src_vocab, task.tgt_vocab, (12, 13), 2)
  assert "alignment" not in batch
  check_layout(batch, examples, task.src_vocab, task.tgt_vocab)
  long_one = max(range(len(examples)), key=lambda i: len(examples[i].src))
  with pytest.raises(ValueError, match=f"example {long_one} "):
    encode_batch(examples, [long_one], task.src_vocab, task.tgt_vocab, (3, 13), 2)
  with pytest.raises(ValueError, match="do not fit"):
    encode_batch(examples, [1, 2, 3], task.src_vocab, task.tgt_vocab, (12, 13), 2)
  with pytest.raises(ValueError, match="with_alignment"):
    encode_batch(examples, [1], task.src_vocab, task.tgt_vocab, (12, 13), 2,
                 with_alignment=True)


def test_unknown_words_become_unk_ids():
  vocab = Vocab.build([["a"]])
  batch = encode_batch([Example(("a", "zz"), ("zz",))], [0], vocab, vocab, (2, 2), 1)
  np.testing.assert_array_equal(batch["src"][0], [vocab.index("a"), 3])


# ------------------------------------------------------------------------------ training order


@pytest.fixture(scope="module")
def train_batches(task):
  buckets = make_buckets(task.train, num_buckets=3)
  return TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16, buckets, seed=7)


def _equal(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_batch_is_a_pure_function_of_seed_and_step(task, train_batches):
  steps = [0, 3, train_batches.steps_per_epoch + 2, 5 * train_batches.steps_per_epoch - 1]
  first = [train_batches.batch(s) for s in steps]
  assert all(_equal(a, train_batches.batch(s)) for a, s in zip(first, steps))
  fresh = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16,
                       train_batches.buckets, seed=7)
  assert all(_equal(a, fresh.batch(s)) for a, s in reversed(list(zip(first, steps))))
  other_seed = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16,
                            train_batches.buckets, seed=8)
  assert not all(_equal(train_batches.batch(s), other_seed.batch(s)) for s in range(3))


def _epoch_indices(batches, epoch):
  steps = range(epoch * batches.steps_per_epoch, (epoch + 1) * batches.steps_per_epoch)
  return [batches.batch(s) for s in steps]


def test_every_example_once_per_epoch(task, train_batches):
  orders = []
  for epoch in (0, 1):
    epoch_batches = _epoch_indices(train_batches, epoch)
    indices = np.concatenate([b["index"][b["example_mask"]] for b in epoch_batches])
    assert sorted(indices.tolist()) == list(range(len(task.train)))
    orders.append(indices)
    for b in epoch_batches:
      assert (b["src"].shape[1], b["tgt_in"].shape[1]) in train_batches.buckets
      assert b["src"].shape[0] == 16
      assert np.all(b["index"][~b["example_mask"]] == -1)
  assert not np.array_equal(orders[0], orders[1])  # epochs reshuffle
  sizes = np.bincount([bucket_of(len(e.src), train_batches.buckets) for e in task.train])
  assert train_batches.steps_per_epoch == sum(-(-n // 16) for n in sizes)


def test_train_batches_layout(task, train_batches):
  for step in range(4):
    check_layout(train_batches.batch(step), task.train, task.src_vocab, task.tgt_vocab)


def test_train_batches_validation(task, train_batches):
  vocab_args = (task.src_vocab, task.tgt_vocab)
  with pytest.raises(ValueError, match="batch_size"):
    TrainBatches(task.train, *vocab_args, 0, train_batches.buckets, seed=0)
  with pytest.raises(ValueError, match="no examples"):
    TrainBatches([], *vocab_args, 4, train_batches.buckets, seed=0)
  with pytest.raises(ValueError, match="longer than the largest bucket"):
    TrainBatches(task.train, *vocab_args, 4, ((5, 6),), seed=0)
  with pytest.raises(ValueError, match="step"):
    train_batches.batch(-1)
  with pytest.raises(ValueError, match="empty source"):
    TrainBatches([Example((), ("a",))], *vocab_args, 4, ((5, 6),), seed=0)


@hypothesis.settings(deadline=None, max_examples=25)
@hypothesis.given(
    lengths=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 9)), min_size=1, max_size=40),
    batch_size=st.integers(1, 7),
    num_buckets=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_epoch_covers_random_example_lists(lengths, batch_size, num_buckets, seed):
  examples = [Example(("x",) * n, ("y",) * m, tuple((t, 0) for t in range(m)))
              for n, m in lengths]
  vocab = Vocab.build([["x", "y"]])
  buckets = make_buckets(examples, num_buckets)
  assert all(any(_fits(e, b) for b in buckets) for e in examples)
  batches = TrainBatches(examples, vocab, vocab, batch_size, buckets, seed)
  epoch = _epoch_indices(batches, 1)
  seen = np.concatenate([b["index"][b["example_mask"]] for b in epoch])
  assert sorted(seen.tolist()) == list(range(len(examples)))
  for b in epoch:
    check_layout(b, examples, vocab, vocab)


# ------------------------------------------------------------------------------ evaluation


def test_eval_batches_cover_all_once_in_bucket_order(task):
  buckets = make_buckets(task.valid, num_buckets=3)
  batches = eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 8, buckets)
  seen = np.concatenate([b["index"][b["example_mask"]] for b in batches])
  assert sorted(seen.tolist()) == list(range(len(task.valid)))
  shapes = [(b["src"].shape[1], b["tgt_in"].shape[1]) for b in batches]
  assert shapes == sorted(shapes) and set(shapes) <= set(buckets)
  for b in batches:
    check_layout(b, task.valid, task.src_vocab, task.tgt_vocab)
  again = eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 8, buckets)
  assert all(_equal(a, b) for a, b in zip(batches, again))


def test_eval_with_train_buckets_uses_a_bucket_that_fits(task):
  # Buckets from train may have a tgt_len too small for some eval example of the same source
  # length; such an example goes to the first larger bucket that fits.
  examples = [Example(("a",), ("a",)), Example(("a", "b"), ("a", "b"))]
  vocab = Vocab.build([["a", "b"]])
  buckets = ((1, 2), (2, 3))
  odd_one = [Example(("a",), ("a", "b"))]
  batches = eval_batches(examples + odd_one, vocab, vocab, 4, buckets)
  assert [(b["src"].shape[1], b["index"][b["example_mask"]].tolist()) for b in batches] == [
      (1, [0]), (2, [1, 2])]
  with pytest.raises(ValueError, match="batch_size"):
    eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 0, buckets)


def test_copy_batches_carry_extended_ids():
  vocab = Vocab.build([["a", "b"]])  # a=4, b=5
  examples = [Example(("a", "x", "y", "x"), ("x", "b", "z", "y")), Example(("q",), ("a",))]
  batch = encode_batch(examples, [0, 1], vocab, vocab, (5, 6), 3, copy=True)
  v = len(vocab)
  np.testing.assert_array_equal(batch["src_ext"], [[4, v, v + 1, v, PAD]] + [[v] + [PAD] * 4]
                                + [[PAD] * 5])
  # OOV target words the source holds get their slot; others (z) stay UNK; tgt_in keeps UNK.
  np.testing.assert_array_equal(batch["tgt_out"][0], [v, 5, 3, v + 1, EOS, PAD])
  np.testing.assert_array_equal(batch["tgt_in"][0], [BOS, 3, 5, 3, 3, PAD])
  np.testing.assert_array_equal(batch["src"][0], [4, 3, 3, 3, PAD])
  assert "src_ext" not in encode_batch(examples, [0], vocab, vocab, (5, 6), 3)
  plain = encode_batch(examples, [0], vocab, vocab, (5, 6), 3)
  np.testing.assert_array_equal(plain["tgt_out"][0], [3, 5, 3, 3, EOS, PAD])


def test_copy_train_and_eval_batches_match_encode_batch(task):
  train = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16,
                       make_buckets(task.train, 2), seed=0, copy=True)
  batch = train.batch(3)
  rows = batch["index"] >= 0
  again = encode_batch(task.train, batch["index"][rows], task.src_vocab, task.tgt_vocab,
                       batch["src"].shape[1:] + batch["tgt_out"].shape[1:], 16, copy=True)
  for key in ("src_ext", "tgt_out", "tgt_in"):
    np.testing.assert_array_equal(batch[key], again[key])
  for b in eval_batches(task.valid, task.src_vocab, task.tgt_vocab, 16,
                        make_buckets(task.valid, 2), copy=True):
    assert b["src_ext"].shape == b["src"].shape


# ------------------------------------------------------------------------------ token batches


def test_token_batch_rows_keep_both_padded_arrays_within_the_budget():
  buckets = ((5, 7), (10, 12), (30, 8))
  assert token_batch_rows(buckets, 50) == (7, 4, 1)  # 50 // 7, 50 // 12, 50 // 30
  assert token_batch_rows(buckets, 50, multiple=2) == (6, 4, 0)  # whole rows per device
  assert token_batch_rows(buckets, 29) == (4, 2, 0)  # the budget holds no row of (30, 8)
  with pytest.raises(ValueError, match="max_tokens"):
    token_batch_rows(buckets, 0)


@pytest.fixture(scope="module")
def token_batches(task):
  buckets = make_buckets(task.train, num_buckets=3)
  return TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16, buckets, seed=7,
                      max_tokens=40)


def test_token_batches_stay_within_max_tokens_and_cover_every_example_once(task, token_batches):
  assert len(set(token_batches.rows)) > 1  # short buckets take more rows than long ones
  for epoch in (0, 1):
    epoch_batches = _epoch_indices(token_batches, epoch)
    indices = np.concatenate([b["index"][b["example_mask"]] for b in epoch_batches])
    assert sorted(indices.tolist()) == list(range(len(task.train)))
    for b in epoch_batches:
      assert b["src"].size <= 40 and b["tgt_in"].size <= 40 and b["tgt_out"].size <= 40
      check_layout(b, task.train, task.src_vocab, task.tgt_vocab)
    # One padded shape per bucket, as without a budget: jit compiles once per bucket.
    shapes = {(b["src"].shape, b["tgt_in"].shape) for b in epoch_batches}
    assert len(shapes) == len(token_batches.buckets)
  sizes = np.bincount([bucket_of(len(e.src), token_batches.buckets, len(e.tgt) + 1)
                       for e in task.train])
  assert token_batches.steps_per_epoch == sum(
      -(-n // rows) for n, rows in zip(sizes, token_batches.rows))


def test_token_batches_are_a_pure_function_of_seed_and_step(task, token_batches):
  steps = [0, 5, token_batches.steps_per_epoch + 1, 3 * token_batches.steps_per_epoch - 1]
  first = [token_batches.batch(s) for s in steps]
  fresh = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16, token_batches.buckets,
                       seed=7, max_tokens=40)
  assert all(_equal(a, fresh.batch(s)) for a, s in reversed(list(zip(first, steps))))
  other_seed = TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16,
                            token_batches.buckets, seed=8, max_tokens=40)
  assert not all(_equal(token_batches.batch(s), other_seed.batch(s)) for s in range(3))


def test_a_token_budget_below_one_row_of_a_training_bucket_is_refused(task, token_batches):
  longest = max(max(shape) for shape in token_batches.buckets)
  with pytest.raises(ValueError, match=f"max_tokens={longest - 1} holds no batch"):
    TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16, token_batches.buckets,
                 seed=0, max_tokens=longest - 1)
  # A bucket no training example falls in (e.g. of the test split's longer sources) needs none.
  wide = token_batches.buckets + ((99, 99),)
  TrainBatches(task.train, task.src_vocab, task.tgt_vocab, 16, wide, seed=0, max_tokens=longest)


@hypothesis.settings(deadline=None, max_examples=25)
@hypothesis.given(
    lengths=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 9)), min_size=1, max_size=40),
    max_tokens=st.integers(10, 60),
    num_buckets=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_token_epochs_cover_random_example_lists(lengths, max_tokens, num_buckets, seed):
  examples = [Example(("x",) * n, ("y",) * m) for n, m in lengths]
  vocab = Vocab.build([["x", "y"]])
  buckets = make_buckets(examples, num_buckets)
  batches = TrainBatches(examples, vocab, vocab, 1, buckets, seed, max_tokens=max_tokens)
  epoch = _epoch_indices(batches, 2)
  seen = np.concatenate([b["index"][b["example_mask"]] for b in epoch])
  assert sorted(seen.tolist()) == list(range(len(examples)))
  assert all(b["src"].size <= max_tokens and b["tgt_in"].size <= max_tokens for b in epoch)
