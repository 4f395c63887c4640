"""Decode and evaluation outputs (attnlab.export): Pharaoh alignments, attention weights,
per-example evaluation lines, and decode mode as a streaming Unix filter."""

import importlib.util
import io
import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from attnlab import export, training
from attnlab.config import base_config, shrink_for_smoke_test

REPO = pathlib.Path(__file__).resolve().parents[1]
DATE = f"{REPO / 'configs' / 'date.py'}:quick"
ENV = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
       "ATTNLAB_JAX_CACHE_DIR": os.path.join(tempfile.gettempdir(), "attnlab-test-xla-cache")}
LINE_TIMEOUT_S = 300  # start-up, restore and compilation on a busy 2-core machine


def date_quick_config():
  spec = importlib.util.spec_from_file_location("date_config", REPO / "configs" / "date.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("quick")
  config.train.num_steps = config.train.checkpoint_every = 2
  return config


@pytest.fixture(scope="module")
def date_run(tmp_path_factory):
  """A date model trained for 2 steps (`configs/date.py:quick`): (config, workdir)."""
  workdir = tmp_path_factory.mktemp("date")
  config = date_quick_config()
  training.train_and_evaluate(config, str(workdir))
  return config, workdir


# ---------------------------------------------------------------- formats

def test_alignment_links_are_the_argmax_source_of_each_output_token():
  attention = np.array([[0.1, 0.7, 0.2],   # output 0 <- source 1
                        [0.6, 0.2, 0.2],   # output 1 <- source 0
                        [0.1, 0.1, 0.8],   # output 2 <- source 2
                        [0.4, 0.4, 0.2]])  # a tie: the first source position
  links = export.alignment_links(attention)
  assert links == [(1, 0), (0, 1), (2, 2), (0, 3)]
  assert export.pharaoh(links) == "1-0 0-1 2-2 0-3"
  assert export.pharaoh(export.alignment_links(np.zeros((0, 3)))) == ""
  with pytest.raises(ValueError, match="out_len, src_len"):
    export.alignment_links(np.zeros(3))


def test_weights_record_and_decode_writer_write_one_flushed_line_each(tmp_path):
  translation = export.Translation(text="b a", source=("a", "b"), target=("b", "a"),
                                   attention=np.array([[0.25, 0.75], [1.0, 0.0]], np.float32))
  out = io.StringIO()
  with export.DecodeWriter(out, str(tmp_path / "a.txt"), str(tmp_path / "w.jsonl")) as writer:
    writer.write(translation)
    assert (tmp_path / "a.txt").read_text() == "1-0 0-1\n"  # flushed before the next line
    writer.write(export.Translation(text=""))
  assert out.getvalue() == "b a\n\n"
  assert (tmp_path / "a.txt").read_text() == "1-0 0-1\n\n"
  first, empty = map(json.loads, (tmp_path / "w.jsonl").read_text().splitlines())
  assert first == {"source": ["a", "b"], "target": ["b", "a"],
                   "weights": [[0.25, 0.75], [1.0, 0.0]]}
  assert empty == {"source": [], "target": [], "weights": []}


def test_is_regular_file_tells_files_from_pipes(tmp_path):
  path = tmp_path / "in.txt"
  path.write_text("x\n")
  with open(path, encoding="utf-8") as f:
    assert export.is_regular_file(f)
  read, write = os.pipe()
  with os.fdopen(read) as r, os.fdopen(write, "w"):
    assert not export.is_regular_file(r)
  assert not export.is_regular_file(io.StringIO("x"))


# ---------------------------------------------------------------- decode and eval outputs

@pytest.mark.slow
def test_alignment_files_have_one_line_per_input_and_match_the_outputs(date_run, tmp_path):
  config, workdir = date_run
  lines = ["98-03-23", "", "05-12-01", "31-12-99"]
  translations = list(training.decode_stream(config, str(workdir), lines, batch_size=2))
  one_by_one = list(training.decode_stream(config, str(workdir), lines, batch_size=1))
  assert [t.text for t in translations] == [t.text for t in one_by_one]
  assert [t.text for t in translations] == training.decode_lines(config, str(workdir), lines)

  out = io.StringIO()
  align, weights = tmp_path / "align.txt", tmp_path / "weights.jsonl"
  with export.DecodeWriter(out, str(align), str(weights)) as writer:
    for translation in translations:
      writer.write(translation)
  assert out.getvalue().splitlines() == [t.text for t in translations]
  pharaoh = align.read_text().splitlines()
  records = [json.loads(line) for line in weights.read_text().splitlines()]
  assert len(pharaoh) == len(records) == len(lines) and pharaoh[1] == ""
  for line, translation, record in zip(pharaoh, translations, records):
    assert record["source"] == list(translation.source)
    assert record["target"] == list(translation.target)
    assert "".join(translation.target) == translation.text  # date: character tokens
    links = [tuple(map(int, link.split("-"))) for link in line.split()]
    assert [j for _, j in links] == list(range(len(translation.target)))  # no EOS link
    assert [i for i, _ in links] == [int(np.argmax(row)) for row in record["weights"]]
    assert all(0 <= i < len(translation.source) for i, _ in links)


@pytest.mark.slow
def test_eval_writes_one_example_line_per_test_example(date_run):
  config, workdir = date_run
  result = training.evaluate_checkpoint(config, str(workdir))
  rows = [json.loads(line) for line in
          (workdir / "eval_test_examples.jsonl").read_text().splitlines()]
  task = training.prepare(config).task
  assert len(rows) == len(task.test) == result["num_examples"]
  for row, example in zip(rows, task.test):
    assert set(row) == {"source", "reference", "hypothesis", "score", "log_prob",
                        "exact_match", "alignment_error_rate"}  # date: no BLEU, true alignment
    assert row["source"] == "".join(example.src) and row["reference"] == "".join(example.tgt)
    assert row["log_prob"] <= 0 and row["score"] == pytest.approx(row["log_prob"])  # greedy
    assert 0.0 <= row["alignment_error_rate"] <= 1.0
  assert np.mean([r["exact_match"] for r in rows]) == pytest.approx(result["exact_match"])


@pytest.mark.slow
def test_eval_examples_of_a_text_task_carry_sentence_bleu(tmp_path):
  config = shrink_for_smoke_test(base_config("toy_translation"))
  config.data.vocab_size, config.data.max_len = 20, 8
  config.train.num_steps = config.train.checkpoint_every = 2
  training.train_and_evaluate(config, str(tmp_path))
  training.evaluate_checkpoint(config, str(tmp_path))
  rows = [json.loads(line) for line in
          (tmp_path / "eval_test_examples.jsonl").read_text().splitlines()]
  assert len(rows) == config.data.num_test
  assert all(0.0 <= r["sentence_bleu"] <= 100.0 and "alignment_error_rate" in r for r in rows)


# ---------------------------------------------------------------- decode as a Unix filter

def _read_line(fd: int, buffer: bytes) -> tuple[str, bytes]:
  """The next line from a pipe within LINE_TIMEOUT_S, and what was read past it."""
  deadline = time.monotonic() + LINE_TIMEOUT_S
  while b"\n" not in buffer:
    ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    assert ready, f"no output line within {LINE_TIMEOUT_S} s while stdin stayed open"
    chunk = os.read(fd, 4096)
    assert chunk, "decode closed its output"
    buffer += chunk
  line, _, rest = buffer.partition(b"\n")
  return line.decode(), rest


def test_an_unwritable_alignment_file_is_one_line_and_exit_2(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "attnlab.main", "--config", DATE, "--workdir", str(tmp_path),
       "--mode=decode", f"--alignments={tmp_path / 'no' / 'such' / 'dir.txt'}"],
      input="98-03-23\n", capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines() == [
      f"error: cannot open '{tmp_path / 'no' / 'such' / 'dir.txt'}': No such file or directory"]


@pytest.mark.slow
def test_decode_streams_one_line_in_one_line_out_through_pipes(date_run, tmp_path):
  _, workdir = date_run
  align = tmp_path / "align.txt"
  with open(tmp_path / "stderr.txt", "wb") as stderr:
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnlab.main", "--config", DATE, "--workdir", str(workdir),
         "--mode=decode", f"--alignments={align}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0, env=ENV,
        cwd=REPO)
  try:
    fd, rest = proc.stdout.fileno(), b""
    proc.stdin.write(b"98-03-23\n")
    first, rest = _read_line(fd, rest)  # answered while stdin is still open
    assert first and align.read_text().count("\n") == 1  # its alignment line is there too
    proc.stdin.write(b"\n05-12-01\n")
    empty, rest = _read_line(fd, rest)
    second, rest = _read_line(fd, rest)
    assert empty == "" and second
    # The reader leaves (`| head -3`): the next output meets a closed pipe; decode stops
    # quietly with 128 + SIGPIPE, as Unix filters do.
    proc.stdout.close()
    proc.stdin.write(b"01-01-01\n")
    proc.stdin.close()
    assert proc.wait(timeout=LINE_TIMEOUT_S) == 128 + signal.SIGPIPE
  finally:
    if proc.poll() is None:
      proc.kill()
  assert "Traceback" not in (tmp_path / "stderr.txt").read_text()
  assert len(align.read_text().splitlines()) == 4  # one Pharaoh line per input line
