"""``training.evaluate``'s metrics against known answers, through the real evaluation path:
gold attention has the alignment error rate its links allow (0 when every target token has one
sure link), per-length BLEU is sacrebleu's corpus BLEU of the bucket's sentences, and each run
writes the per-sentence outcomes its intervals are computed from."""

import functools
import json

import numpy as np
import pytest
import sacrebleu

from attnlab import decoding, export, intervals, metrics, training
from attnlab.config import base_config, shrink_for_smoke_test
from attnlab.data.vocab import EOS, UNK
from attnlab.training import evaluation


def toy_config():
  config = shrink_for_smoke_test(base_config("toy_translation"))
  config.data.vocab_size, config.data.max_len = 20, 12
  config.data.num_test = 80
  config.eval.length_boundaries = (5, 8)
  return config


def date_config():
  config = shrink_for_smoke_test(base_config("date"))
  config.data.num_test = 40
  return config


@functools.cache
def untrained_model(task: str):
  """(config, prepared, fresh state) of a tiny untrained model of ``task``."""
  config = toy_config() if task == "toy_translation" else date_config()
  prepared = training.prepare(config)
  return config, prepared, training.init_state(config, prepared)


def gold_eval_step(state, batch):
  """``eval_step`` whose teacher-forced attention is one-hot on each target token's first gold
  link (``batch['alignment']``: 1.0 at every sure link); the EOS row (no gold link) attends
  to source position 0, as any attention row must attend somewhere."""
  gold = np.asarray(batch["alignment"])  # [batch, tgt_len, src_len]
  attention = np.eye(gold.shape[2], dtype=np.float32)[gold.argmax(-1)]
  zero, one = np.zeros((), np.float32), np.ones((), np.int32)
  return {"loss_sum": zero, "tokens": one, "correct": np.zeros((), np.int32),
          "entropy_sum": zero, "entropy_rows": one, "attention": attention,
          "token_correct": np.zeros(gold.shape[:2], bool)}


def gold_floor(examples):
  """The AER of the best argmax alignment: each target token links to one of its sure links,
  so a token with k sure links misses k - 1 of them (Och & Ney 2003, eq. 18, with P = S)."""
  sure = sum(len(e.alignment) for e in examples)
  linked = sum(len({t for t, _ in e.alignment}) for e in examples)
  return 1.0 - 2 * linked / (linked + sure)


@pytest.mark.parametrize("task", ["toy_translation", "date"])
def test_gold_attention_scores_only_real_target_tokens(task, monkeypatch):
  config, prepared, state = untrained_model(task)
  monkeypatch.setattr(evaluation, "eval_step", gold_eval_step)
  test = prepared.task.test
  result, records = training.evaluate(state, prepared, test, config)
  floor = gold_floor(test)
  if prepared.task.name == "toy_translation":
    assert floor == 0.0  # one sure link per target word
  else:  # date: the month and the two century digits have two sure links each, 9 tokens
    assert floor == pytest.approx(1 - 18 / 21, abs=1e-15)
  assert result["alignment_error_rate"] == pytest.approx(floor, abs=1e-12)
  buckets = result["alignment_error_rate_by_length"]
  assert sum(b["count"] for b in buckets.values()) == len(test)
  for label, bucket in buckets.items():
    members = [r["example"] for r in records if r["length_bucket"] == label]
    assert bucket["mean"] == pytest.approx(gold_floor(members), abs=1e-12)
    assert bucket["low"] == pytest.approx(bucket["mean"]) == pytest.approx(bucket["high"])
  for record in records:  # the per-example AER of eval_{split}_examples.jsonl, too
    row = export.example_row(record, " ".join, " ".join, [], with_alignment=True)
    assert row["alignment_error_rate"] == pytest.approx(gold_floor([record["example"]]))


def test_bleu_by_length_is_corpus_bleu_of_each_bucket():
  config, prepared, state = untrained_model("toy_translation")
  result, records = training.evaluate(state, prepared, prepared.task.test, config)
  check_bucket_bleu(result, records, prepared.task)


def check_bucket_bleu(result, records, task):
  hyps = [" ".join(evaluation.prediction_text(r, task)) for r in records]
  refs = [" ".join(r["example"].tgt) for r in records]
  assert result["bleu"] == sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score
  buckets = result["bleu_by_length"]
  assert sum(b["count"] for b in buckets.values()) == len(records)
  for label, bucket in buckets.items():
    mine = [i for i, r in enumerate(records) if r["length_bucket"] == label]
    expected = sacrebleu.corpus_bleu([hyps[i] for i in mine], [[refs[i] for i in mine]],
                                     tokenize="none").score
    assert bucket["mean"] == pytest.approx(expected, abs=1e-9)
    assert bucket["low"] <= bucket["high"]
    sentence = result["sentence_bleu_by_length"][label]
    assert sentence["mean"] == pytest.approx(np.mean([records[i]["sentence_bleu"]
                                                      for i in mine]))
  return buckets


def reference_decoder(corrupt: bool):
  """A ``decode_batch`` that outputs each reference (``tgt_out``, EOS included); with
  ``corrupt``, one word of every other sentence becomes UNK."""

  def decode(model, params, batch, max_len, *args, **kwargs):
    tokens = np.array(batch["tgt_out"], np.int32)
    lengths = np.array(batch["tgt_lengths"], np.int32)
    if corrupt:
      for row in range(0, len(tokens), 2):
        if lengths[row] > 1:  # not a filler row (its target is EOS alone)
          tokens[row, (row // 2) % (lengths[row] - 1)] = UNK
    assert all(tokens[r, lengths[r] - 1] == EOS for r in range(len(tokens)))
    zeros = np.zeros(len(tokens), np.float32)
    attention = np.zeros(tokens.shape + (batch["src"].shape[1],), np.float32)
    return decoding.DecodeResult(tokens=tokens, scores=zeros, log_probs=zeros, lengths=lengths,
                                 attention=attention)

  return decode


@pytest.mark.parametrize("corrupt", [False, True])
def test_bucket_bleu_of_reference_outputs(monkeypatch, corrupt):
  config, prepared, state = untrained_model("toy_translation")
  monkeypatch.setattr(evaluation, "decode_batch", reference_decoder(corrupt))
  result, records = training.evaluate(state, prepared, prepared.task.test, config)
  buckets = check_bucket_bleu(result, records, prepared.task)
  assert len(buckets) == 3
  if not corrupt:
    assert result["bleu"] == pytest.approx(100.0) and result["exact_match"] == 1.0
    for label, bucket in buckets.items():
      assert bucket["mean"] == bucket["low"] == bucket["high"] == pytest.approx(100.0)
      assert result["exact_match_by_length"][label]["mean"] == 1.0
  else:
    assert 0.0 < result["bleu"] < 100.0
    for label, bucket in buckets.items():
      assert 0.0 < bucket["mean"] < 100.0 and bucket["low"] < bucket["high"]
      em = result["exact_match_by_length"][label]
      assert em["low"] <= em["mean"] <= em["high"]


@pytest.mark.slow
def test_a_run_writes_its_test_outcomes(tmp_path):
  config = toy_config()
  config.train.num_steps = config.train.checkpoint_every = 2
  summary = training.train_and_evaluate(config, str(tmp_path))
  rows = [json.loads(line) for line in
          (tmp_path / "test_outcomes.jsonl").read_text().splitlines()]
  test = training.prepare(config).task.test
  assert len(rows) == len(test) == summary["test"]["num_examples"]
  for i, (row, example) in enumerate(zip(rows, test)):
    assert row["index"] == i and row["src_length"] == len(example.src)
    assert row["alignment_counts"][3] == len(example.alignment)  # |S|
    assert row["alignment_counts"][2] == len(example.tgt)  # |A|: one link per real token
  found = {name: intervals.sentence_statistics(rows, name) for name in intervals.STATISTICS}
  test_metrics = summary["test"]
  assert intervals.STATISTICS["exact_match"].value(found["exact_match"].sum(0)) == \
      pytest.approx(test_metrics["exact_match"])
  assert intervals.STATISTICS["bleu"].value(found["bleu"].sum(0)) == \
      pytest.approx(test_metrics["bleu"], abs=1e-9)
  assert intervals.STATISTICS["alignment_error_rate"].value(
      found["alignment_error_rate"].sum(0)) == pytest.approx(test_metrics["alignment_error_rate"])
  assert {row["length_bucket"] for row in rows} == set(test_metrics["bleu_by_length"])
  # A tokenized text task's hypotheses are its output tokens joined: BLEU on them is the run's.
  assert all(isinstance(row["hypothesis"], str) for row in rows)
  assert metrics.corpus_bleu([row["hypothesis"] for row in rows],
                             [" ".join(example.tgt) for example in test]) == \
      pytest.approx(test_metrics["bleu"])


def test_sentence_bleu_statistics_give_sacrebleu_scores():
  hyps = ["a b c d", "a b", "", "x y z w v", "a b c d"]
  refs = ["a b c e", "a b c", "a", "x y z w v", "a b c d"]
  stats = metrics.bleu_statistics(hyps, refs)  # [5, 10]
  assert stats.shape == (5, 10)
  for h, r, s in zip(hyps, refs, stats):
    assert metrics.bleu_from_statistics(s) == metrics.corpus_bleu([h], [r])
  assert metrics.bleu_from_statistics(stats.sum(0)) == metrics.corpus_bleu(hyps, refs)


@pytest.mark.parametrize("decoder", ["model", "reference"])
def test_corpus_runs_report_sacrebleus_detokenized_bleu_with_its_signature(monkeypatch, tmp_path,
                                                                            decoder):
  from attnlab.defaults import load_config_file
  from tests.conftest import CONFIGS
  config = load_config_file(str(CONFIGS / "mar_eng.py")).get_config("quick")
  prepared = training.prepare(config)
  state = training.init_state(config, prepared)
  if decoder == "reference":
    monkeypatch.setattr(evaluation, "decode_batch", reference_decoder(False))
  result, records = training.evaluate(state, prepared, prepared.task.test, config)
  task = prepared.task
  hyps = [task.tgt_tokenizer.detokenize(evaluation.prediction_text(r, task)) for r in records]
  raw = [r["example"].reference for r in records]
  assert all(isinstance(line, str) and line for line in raw)
  expected = sacrebleu.corpus_bleu(hyps, [raw], lowercase=task.tgt_tokenizer.lowercase)
  assert result["detokenized_bleu"] == pytest.approx(expected.score)
  signature = result["detokenized_bleu_signature"]
  assert "tok:13a" in signature and "nrefs:1" in signature
  assert ("case:lc" in signature) == bool(task.tgt_tokenizer.lowercase)
  # The test outcomes keep these hypotheses: sacrebleu on them gives the run's score again.
  path = evaluation.write_test_outcomes(records, str(tmp_path), beam_size=1)
  rows = [json.loads(line) for line in open(path, encoding="utf-8")]
  assert [row["hypothesis"] for row in rows] == hyps
  again = sacrebleu.corpus_bleu([row["hypothesis"] for row in rows], [raw],
                                lowercase=task.tgt_tokenizer.lowercase)
  assert again.score == pytest.approx(result["detokenized_bleu"])


def test_detokenized_bleu_of_the_references_themselves_is_100():
  refs = ["The cat sat on the mat.", "Hello, world!"]
  score, signature = metrics.detokenized_bleu(refs, refs)
  assert score == pytest.approx(100.0) and signature.startswith("nrefs:1|case:mixed")
