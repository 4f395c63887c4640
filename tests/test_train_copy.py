"""Copy attention end to end: a tiny pointer-generator learns to copy symbols that are outside
its vocabularies (the copy task with `num_oov_symbols`), evaluation and decode mode map the
copied ids back to the source words, and the same model without copy never produces them."""

import numpy as np
import pytest

from attnlab import training
from attnlab.config import base_config

OOV_SYMBOLS = ("g", "h", "i", "j")  # the last 4 of a..j: <unk> to both vocabularies


def copy_config(copy=True, num_steps=150):
  c = base_config("copy")
  c.data.vocab_size, c.data.num_oov_symbols, c.data.min_len, c.data.max_len = 10, 4, 3, 8
  c.data.num_train, c.data.num_valid, c.data.num_test = 2000, 30, 100
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 32, 128, 1
  c.model.emb_dim, c.model.hidden_dim = 16, 32
  c.model.copy = copy
  c.train.num_steps, c.train.warmup_steps, c.train.learning_rate = num_steps, 20, 1e-2
  c.train.log_every = c.train.eval_every = c.train.checkpoint_every = num_steps
  c.eval.num_heatmaps = 1
  return c


def oov_reproduction(records, task):
  """Fraction of target positions holding an OOV symbol where the decoded word is that symbol,
  and the set of all decoded words."""
  hits, total, words = 0, 0, set()
  for r in records:
    predicted = task.tgt_vocab.decode(r["prediction"], r["oovs"])
    words.update(predicted)
    for position, word in enumerate(r["example"].tgt):
      if word not in task.tgt_vocab:
        total += 1
        hits += position < len(predicted) and predicted[position] == word
  return hits / total, words


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("copy"))
  config = copy_config()
  summary = training.train_and_evaluate(config, workdir)
  return config, workdir, summary


def test_copy_model_learns_to_copy_oov_symbols(copy_run):
  config, workdir, summary = copy_run
  assert summary["test"]["exact_match"] >= 0.9, summary["test"]
  state, prepared, _ = training.restore_for_inference(config, workdir, "latest")
  assert set(OOV_SYMBOLS).isdisjoint(prepared.task.tgt_vocab.tokens)
  _, records = training.evaluate(state, prepared, prepared.task.test, config)
  rate, words = oov_reproduction(records, prepared.task)
  # Chance is 1 in the 10 symbols; the vocabulary alone can only say <unk>.
  assert rate >= 0.9, rate
  assert set(OOV_SYMBOLS) <= words
  longest = summary["longest_test_example"]
  assert longest["prediction"][:-1] == longest["src"]  # copied OOVs shown as their words


def test_decode_mode_writes_copied_words(copy_run):
  config, workdir, _ = copy_run
  outputs = training.decode_lines(config, workdir, ["b i g a h", "", "j j c"])
  assert outputs == ["b i g a h", "", "j j c"]


def test_without_copy_oov_symbols_are_never_produced():
  # Structural: without copy the output layer spans the target vocabulary only, so however it
  # is trained (here: not at all, to keep the test fast) it can at best say <unk>.
  config = copy_config(copy=False)
  prepared = training.prepare(config)
  state = training.init_state(config, prepared)
  result, records = training.evaluate(state, prepared, prepared.task.test, config)
  rate, words = oov_reproduction(records, prepared.task)
  assert rate == 0.0 and words.isdisjoint(OOV_SYMBOLS)
  assert all(r["oovs"] is None for r in records)
  assert all(max(r["prediction"]) < len(prepared.task.tgt_vocab) for r in records)
  assert np.isfinite(result["loss"])


def test_copy_on_a_corpus_reports_bleu_over_copied_words(tmp_path):
  # Names seen once fall outside max_vocab_size: they are the per-example OOV slots.
  names = ["anna", "bert", "carl", "dora", "emil", "fred", "gina", "hugo", "ivan", "jana"]
  lines = [f"hello {n} .\tnamaste {n} ." for n in names] + ["hello .\tnamaste ."] * 20
  path = tmp_path / "names.txt"
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  c = base_config("corpus")
  c.data.path, c.data.num_valid, c.data.num_test, c.data.max_vocab_size = str(path), 4, 6, 7
  c.batching.batch_size, c.batching.eval_batch_size, c.batching.num_buckets = 8, 16, 1
  c.model.emb_dim, c.model.hidden_dim, c.model.copy = 8, 16, True
  prepared = training.prepare(c)
  state = training.init_state(c, prepared)
  result, records = training.evaluate(state, prepared, prepared.task.test, c)
  assert 0.0 <= result["bleu"] <= 100.0 and np.isfinite(result["loss"])
  tgt_vocab = prepared.task.tgt_vocab
  for r in records:
    assert r["oovs"] == tgt_vocab.source_oovs(r["example"].src)
    tgt_vocab.decode(r["prediction"], r["oovs"])  # every predicted id maps to a word
  assert any(set(r["oovs"]) & set(names) for r in records)
