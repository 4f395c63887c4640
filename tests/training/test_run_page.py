"""attnlab.training.run_page: which test examples a run keeps, and attention_examples.json.

Records are made by hand on the real toy-translation task (text, gold alignment), so the
selection's properties are checked without training; tests/experiments/test_atlas.py checks
what real runs write."""

import json
import pathlib

import numpy as np
import pytest

from attnlab.data import build_task
from attnlab.data.tasks import Example
from attnlab.data.vocab import EOS
from attnlab.defaults import load_config_file
from attnlab.training import run_page

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
toy = load_config_file(CONFIGS / "toy_translation.py")


@pytest.fixture(scope="module")
def task():
  config = toy.get_config("quick")
  config.data.num_test = 40
  return build_task(config.data)


def records_for(task, wrong=(), attention=True):
  """One evaluate-like record per test example: right predictions except those in ``wrong``
  (the output reversed), diagonal-ish attention (zeros with ``attention=False``)."""
  from attnlab import metrics
  records = []
  for i, example in enumerate(task.test):
    words = list(example.tgt)[::-1] if i in wrong else list(example.tgt)
    ids = task.tgt_vocab.encode(words) + [EOS]
    src_len = len(example.src)
    decode = np.eye(len(ids), src_len) * 0.9 + 0.1 / src_len if attention else np.zeros(
        (len(ids), src_len))
    forced = np.eye(len(example.tgt) + 1, src_len) if attention else np.zeros(
        (len(example.tgt) + 1, src_len))
    hyp, ref = " ".join(words), " ".join(example.tgt)
    records.append({"example": example, "prediction": ids, "decode_attention": decode,
                    "forced_attention": forced, "oovs": None, "score": -1.0,
                    "log_prob": -float(i), "exact_match": i not in wrong,
                    "sentence_bleu": metrics.corpus_bleu([hyp], [ref])})
  return records


def test_spread_covers_the_lengths_and_keeps_the_longest():
  examples = [Example(tuple("w" * n), ("t",)) for n in (3, 1, 7, 3, 12, 5, 9, 1, 12, 2, 4, 6,
                                                         8, 10, 11)]
  chosen = run_page.spread_indices(examples, count=5)
  lengths = [len(examples[i].src) for i in chosen]
  assert lengths == sorted(lengths) and len(chosen) == 5
  assert lengths[0] == 1 and lengths[-1] == 12
  assert chosen[-1] == 4  # the first example of the longest length
  assert run_page.spread_indices(examples, count=5) == chosen  # a pure function


def test_spread_with_few_lengths_takes_several_of_each():
  examples = [Example(tuple("w" * n), ("t",)) for n in (8, 8, 8, 8, 9, 9)]
  chosen = run_page.spread_indices(examples, count=4)
  assert chosen == [0, 1, 4, 5]  # round robin over the lengths, then ordered by length
  assert run_page.spread_indices(examples, count=100) == list(range(6))
  assert run_page.spread_indices([], count=4) == []


def test_spread_depends_on_the_examples_alone_so_every_trial_keeps_the_same(task):
  right = run_page.attention_examples(records_for(task), task)
  wrong = run_page.attention_examples(records_for(task, wrong=range(0, 40, 3)), task)
  spread = lambda c: [e["index"] for e in c["examples"] if e["spread"]]  # noqa: E731
  assert spread(right) == spread(wrong) and len(spread(right)) == run_page.NUM_SPREAD


def test_worst_are_the_lowest_scoring(task):
  wrong = (5, 17, 30)
  contents = run_page.attention_examples(records_for(task, wrong=wrong), task)
  worst = [e for e in contents["examples"] if e["worst"]]
  assert len(worst) == run_page.NUM_WORST
  assert set(wrong) <= {e["index"] for e in worst}
  assert all(e["quality"] < 1.0 for e in worst if e["index"] in wrong)
  assert contents["quality"] == "sentence BLEU" and contents["num_examples"] == 40


def test_example_fields_shapes_and_gold(task):
  contents = run_page.attention_examples(records_for(task), task)
  assert contents["has_attention"] and contents["has_alignment"]
  for e in contents["examples"]:
    assert np.shape(e["attention"]) == (len(e["prediction"]), len(e["src"]))
    assert np.shape(e["forced_attention"]) == (len(e["target"]) + 1, len(e["src"]))
    assert e["prediction"][-1] == "</s>" and e["exact_match"]
    assert all(0 <= t < len(e["target"]) and 0 <= s < len(e["src"]) for t, s in e["gold"])
    assert 0.0 <= e["alignment_error_rate"] <= 1.0
  json.dumps(contents, allow_nan=False)  # strict JSON


def test_a_model_without_attention_saves_no_matrices(task):
  contents = run_page.attention_examples(records_for(task, attention=False), task)
  assert not contents["has_attention"]
  assert all(e["attention"] is None and "alignment_error_rate" not in e
             for e in contents["examples"])


def test_quality_without_bleu_is_positional_token_accuracy(task):
  record = records_for(task, wrong=(0,))[0]
  del record["sentence_bleu"]
  reference = list(record["example"].tgt)
  expected = sum(a == b for a, b in zip(reference[::-1], reference)) / len(reference)
  assert run_page.quality(record, task) == pytest.approx(expected)


def test_write_run_page_writes_examples_and_the_page(task, tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"model": {"decoder": "luong"}}))
  (tmp_path / "summary.json").write_text(json.dumps({"step": 1, "test": {"exact_match": 1.0}}))
  page = run_page.write_run_page(str(tmp_path), task, [str(tmp_path)], [records_for(task)])
  assert page == str(tmp_path / "report.html")
  lines = (tmp_path / run_page.EXAMPLES_FILE).read_text().splitlines()
  contents = json.loads("\n".join(lines))
  assert len(lines) == len(contents["examples"]) + 2  # one example a line
  html = (tmp_path / "report.html").read_text()
  assert 'id="chart-explorer"' in html and "Test examples" in html


def test_markup_in_corpus_text_leaves_the_run_pages_json_parseable(tmp_path):
  """Issue 22: ``<!--<script>`` in corpus text, through the real entry point: report.html's
  JSON block holds no ``<`` (it would open a script-data escape and keep the charts from
  drawing) and still parses to the corpus's words."""
  import re
  import sys
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from test_main import run_main
  folder = tmp_path / "corpus"
  folder.mkdir()
  for stem, count in (("train", 40), ("valid", 6), ("test", 6)):
    words = [f"w{i % 7} <!--<script> a&b w{i % 5}" for i in range(count)]
    (folder / f"{stem}.de").write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
    (folder / f"{stem}.en").write_text("".join(f"{w} </script>\n" for w in words),
                                       encoding="utf-8")
  workdir = tmp_path / "w"
  run_main("--config", f"{CONFIGS / 'multi30k.py'}:quick", "--workdir", str(workdir),
           f"--config.data.path={folder}", "--config.data.splits=('train', 'valid', 'test')",
           "--config.data.min_freq=1", "--config.data.tokenizer=whitespace")
  html = (workdir / "report.html").read_text(encoding="utf-8")
  block = re.search(r'<script type="application/json" id="atlas-specs">(.*?)</script>', html,
                    re.DOTALL).group(1)
  assert "<" not in block and ">" not in block and "&" not in block
  specs = json.loads(block)
  text = json.dumps(specs, ensure_ascii=False)
  assert "<!--<script>" in text and "a&b" in text and "</script>" in text
  assert html.count("</script>") == html.count("<script")
