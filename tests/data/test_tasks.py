"""Tests for attnlab.data.tasks: every synthetic task, the registry and the default configs."""

import datetime

import ml_collections
import pytest

from attnlab.data import tasks
from attnlab.data.tasks import Example, build_task, date_example, default_data_config
from attnlab.data.vocab import UNK

SYNTHETIC = ("date", "copy", "reverse", "toy_translation")


def small_config(task, seed=0, **overrides):
  config = default_data_config(task)
  config.seed = seed
  config.num_train, config.num_valid, config.num_test = 300, 50, 40
  config.update(overrides)
  return config


@pytest.fixture(scope="module", params=SYNTHETIC)
def task_data(request):
  return build_task(small_config(request.param))


def test_registry_lists_all_tasks():
  assert sorted(tasks.TASKS) == ["copy", "corpus", "date", "reverse", "toy_translation"]


def test_unknown_task_lists_valid_names():
  config = ml_collections.ConfigDict({"task": "translate"})
  message = "unknown task 'translate'; valid tasks: copy, corpus, date, reverse, toy_translation"
  with pytest.raises(ValueError) as error:
    build_task(config)
  assert str(error.value) == message
  with pytest.raises(ValueError, match="valid tasks"):
    default_data_config("translate")


def test_register_task_rejects_duplicates():
  with pytest.raises(ValueError, match="already registered"):
    tasks.register_task("date")(lambda config: None)


@pytest.mark.parametrize("task", sorted(tasks.TASKS))
def test_default_configs_name_their_task(task):
  config = default_data_config(task)
  assert config.task == task
  assert isinstance(config.seed, int)


def test_sizes_and_flags(task_data):
  assert (len(task_data.train), len(task_data.valid), len(task_data.test)) == (300, 50, 40)
  assert task_data.has_alignment
  assert task_data.is_text == (task_data.name == "toy_translation")


def test_splits_are_disjoint(task_data):
  train, valid, test = ({e.src for e in split}
                        for split in (task_data.train, task_data.valid, task_data.test))
  assert len(train) == len(task_data.train)  # no duplicates within train either
  assert not train & valid and not train & test and not valid & test


def test_same_seed_same_data_other_seed_other_data(task_data):
  config = small_config(task_data.name)
  assert build_task(config) == task_data
  other = build_task(small_config(task_data.name, seed=1))
  assert other.train != task_data.train


def test_alignment_links_in_range_and_cover_target(task_data):
  for e in task_data.train + task_data.valid + task_data.test:
    assert e.alignment
    for t, s in e.alignment:
      assert 0 <= t < len(e.tgt) and 0 <= s < len(e.src)
    assert {t for t, _ in e.alignment} == set(range(len(e.tgt)))
    assert {s for _, s in e.alignment} == set(range(len(e.src)))


def test_vocabularies_cover_every_token(task_data):
  for e in task_data.train + task_data.valid + task_data.test:
    assert UNK not in task_data.src_vocab.encode(e.src)
    assert UNK not in task_data.tgt_vocab.encode(e.tgt)


# ------------------------------------------------------------------------------------- date


@pytest.mark.parametrize("date, src, tgt", [
    (datetime.date(1998, 3, 23), "98-03-23", ("2", "3", "/", "Mar", "/", "1", "9", "9", "8")),
    (datetime.date(2005, 12, 1), "05-12-01", ("0", "1", "/", "Dec", "/", "2", "0", "0", "5")),
    (datetime.date(1974, 1, 1), "74-01-01", ("0", "1", "/", "Jan", "/", "1", "9", "7", "4")),
    (datetime.date(2034, 12, 31), "34-12-31", ("3", "1", "/", "Dec", "/", "2", "0", "3", "4")),
])
def test_date_known_examples(date, src, tgt):
  example = date_example(date)
  assert example.src == tuple(src)
  assert example.tgt == tgt
  links = set(example.alignment)
  assert {(0, 6), (1, 7), (3, 3), (3, 4), (7, 0), (8, 1)} <= links  # day, month, year digits
  assert {(5, 0), (5, 1), (6, 0), (6, 1)} <= links  # century from both yy digits
  assert {(2, 5), (4, 2)} <= links  # slashes from dashes


def test_date_examples_are_consistent():
  data = build_task(small_config("date"))
  for e in data.train:
    yy, mm, dd = "".join(e.src).split("-")
    year = int(yy) + (1900 if int(yy) >= 74 else 2000)
    date = datetime.date(year, int(mm), int(dd))
    assert tasks.DATE_FIRST <= date <= tasks.DATE_LAST
    assert e == date_example(date)


def test_date_rejects_too_many_examples():
  with pytest.raises(ValueError, match="exceeds"):
    build_task(small_config("date", num_train=22000, num_valid=200, num_test=200))


def test_default_date_config_sizes():
  data = build_task(default_data_config("date"))
  assert (len(data.train), len(data.valid), len(data.test)) == (10000, 1000, 1000)


# --------------------------------------------------------------------------- copy / reverse


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_copy_and_reverse_targets(task):
  data = build_task(small_config(task, vocab_size=30, min_len=2, max_len=6))
  assert len(data.src_vocab) == 4 + 30
  for e in data.train + data.valid + data.test:
    assert 2 <= len(e.src) <= 6
    expected = e.src if task == "copy" else e.src[::-1]
    assert e.tgt == expected
    assert all(e.tgt[t] == e.src[s] for t, s in e.alignment)


def test_copy_rejects_more_examples_than_sequences():
  with pytest.raises(ValueError, match="distinct"):
    build_task(small_config("copy", vocab_size=2, min_len=1, max_len=3))  # 14 sequences exist
  with pytest.raises(ValueError, match="min_len"):
    build_task(small_config("copy", min_len=5, max_len=4))


# --------------------------------------------------------------------------- toy_translation


def _categories(example):
  return [w.rstrip("0123456789") for w in example.src]


def _target_positions(example):
  """Source position -> sorted target positions aligned to it."""
  positions = {}
  for t, s in example.alignment:
    positions.setdefault(s, []).append(t)
  return {s: sorted(ts) for s, ts in positions.items()}


def test_toy_translation_rules():
  data = build_task(small_config("toy_translation", min_len=3, max_len=15))
  for e in data.train:
    assert 3 <= len(e.src) <= 15
    cats, where = _categories(e), _target_positions(e)
    assert len(e.tgt) == len(e.src) + cats.count("prep")
    for s, cat in enumerate(cats):
      assert len(where[s]) == (2 if cat == "prep" else 1)
      if cat == "adj":  # the noun that follows comes before the adjective in the target
        noun = next(j for j in range(s, len(cats)) if cats[j] == "noun")
        assert where[noun][0] < where[s][0]
      if cat == "prep":  # circumposition around its noun phrase
        noun = next(j for j in range(s, len(cats)) if cats[j] == "noun")
        assert where[s][0] < where[noun][0] < where[s][1]
    # verb-final: each clause's verb is the last target word of that clause
    clause_ends = [where[s][0] - 1 for s, cat in enumerate(cats) if cat == "and"]
    clause_ends.append(len(e.tgt) - 1)
    verbs = [where[s][0] for s, cat in enumerate(cats) if cat in ("vtr", "vin")]
    assert verbs == clause_ends


def test_toy_translation_without_reordering_rules():
  data = build_task(small_config("toy_translation", verb_final=False, circumpositions=False))
  for e in data.train:
    cats, where = _categories(e), _target_positions(e)
    for s, cat in enumerate(cats):
      if cat in ("vtr", "vin"):  # the verb right after its subject, as in the source
        start = max([j + 1 for j in range(s) if cats[j] == "and"], default=0)
        assert where[s][0] == 1 + max(where[j][-1] for j in range(start, s))
      if cat == "prep":
        assert where[s][1] == where[s][0] + 1


def test_toy_translation_lexicon_is_a_function():
  data = build_task(small_config("toy_translation"))
  lexicon = {}
  for e in data.train:
    for t, s in e.alignment:
      lexicon.setdefault(e.src[s], set()).add(e.tgt[t])
  assert all(len(targets) <= 2 for targets in lexicon.values())
  assert len(data.src_vocab) == 4 + 100


def test_toy_translation_validates_fields():
  with pytest.raises(ValueError, match="vocab_size"):
    build_task(small_config("toy_translation", vocab_size=5))
  with pytest.raises(ValueError, match="min_len"):
    build_task(small_config("toy_translation", min_len=2))


def test_example_validates_alignment():
  with pytest.raises(ValueError, match="out of range"):
    Example(("a",), ("b",), ((1, 0),))


def test_train_max_src_len_caps_train_and_valid_never_test():
  full = build_task(small_config("toy_translation", max_len=12))
  capped_config = small_config("toy_translation", max_len=12)
  capped_config.train_max_src_len = 6
  capped = build_task(capped_config)
  assert capped.train == tuple(e for e in full.train if len(e.src) <= 6)
  assert 0 < len(capped.train) < len(full.train)
  # Model selection (valid) sees the training lengths only.
  assert capped.valid == tuple(e for e in full.valid if len(e.src) <= 6)
  assert 0 < len(capped.valid) < len(full.valid)
  # The test split keeps every length, so models are tested beyond their training lengths.
  assert capped.test == full.test
  assert max(len(e.src) for e in capped.test) > 6
  assert capped.src_vocab == full.src_vocab and capped.tgt_vocab == full.tgt_vocab
  assert default_data_config("corpus").train_max_src_len == 0  # every task has the field


def test_train_max_src_len_that_drops_everything_is_an_error():
  config = small_config("toy_translation", min_len=5, max_len=8)
  config.train_max_src_len = 4
  with pytest.raises(ValueError, match="drops every one of the 300 training examples"):
    build_task(config)


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_oov_symbols_are_left_out_of_both_vocabularies(task):
  data = build_task(small_config(task, vocab_size=6, num_oov_symbols=2))
  assert data.src_vocab.tokens[4:] == data.tgt_vocab.tokens[4:] == tuple("abcd")
  assert any({"e", "f"} & set(e.src) for e in data.test)  # the data still uses them
  assert UNK in data.tgt_vocab.encode(data.test[0].src + ("e", "f"))
  with pytest.raises(ValueError, match="num_oov_symbols"):
    build_task(small_config(task, vocab_size=6, num_oov_symbols=6))


def test_toy_translation_max_clauses_reaches_long_sources_and_keeps_the_default_stream():
  default = build_task(small_config("toy_translation", max_len=20))
  three = build_task(small_config("toy_translation", max_len=20, max_clauses=3))
  assert default == three  # the default draws exactly as before the option existed
  long = build_task(small_config("toy_translation", max_len=60, max_clauses=8))
  lengths = [len(e.src) for e in long.train]
  assert max(lengths) > 50 and min(lengths) >= 3
  for e in long.test:  # the gold alignment still covers every target word
    assert sorted(t for t, _ in e.alignment) == list(range(len(e.tgt)))
  with pytest.raises(ValueError, match="max_clauses >= 1"):
    build_task(small_config("toy_translation", max_clauses=0))
