"""Decode mode through the real entry point: n-best lists with scores (``--nbest``,
``--output_format=jsonl``, ``--scores``) and streams that go on past a bad line (issue 26,
items 1 and 3)."""

import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, ENV, REPO, run_main  # noqa: E402
from test_main_daily_use import assert_one_line_error  # noqa: E402

DATE = f"{CONFIGS / 'date.py'}:quick"
BEAM = "--config.eval.beam_size=4"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished date:quick run."""
  workdir = tmp_path_factory.mktemp("nbest") / "date"
  run_main("--config", DATE, "--workdir", str(workdir))
  return workdir


def decode(workdir, *args, stdin="", check=True):
  return run_main("--workdir", str(workdir), "--mode=decode", *args, stdin=stdin, check=check)


def test_nbest_jsonl_ranks_hypotheses_with_scores_and_alignments(trained, tmp_path):
  lines = ["98-03-23", "", "01-12-05"]
  stdin = "\n".join(lines) + "\n"
  align = tmp_path / "align.txt"
  proc = decode(trained, BEAM, "--nbest=3", "--output_format=jsonl", f"--alignments={align}",
                stdin=stdin)
  rows = [json.loads(line) for line in proc.stdout.splitlines()]
  assert [r["source"] for r in rows] == lines
  assert rows[1]["hypotheses"] == []
  best = decode(trained, BEAM, stdin=stdin).stdout.splitlines()  # the plain default
  assert len(best) == 3 and best[1] == ""
  pharaoh = align.read_text().splitlines()
  for k in (0, 2):
    hypotheses = rows[k]["hypotheses"]
    assert len(hypotheses) == 3
    assert set(hypotheses[0]) == {"text", "score", "log_prob", "alignment"}
    scores = [h["score"] for h in hypotheses]
    assert scores == sorted(scores, reverse=True)
    assert len({h["text"] for h in hypotheses}) == 3  # distinct hypotheses
    assert hypotheses[0]["text"] == best[k] and hypotheses[0]["alignment"] == pharaoh[k]
    assert all(h["log_prob"] <= 0 for h in hypotheses)


def test_scores_file_keeps_stdout_plain(trained, tmp_path):
  scores = tmp_path / "scores.jsonl"
  proc = decode(trained, BEAM, "--nbest=2", f"--scores={scores}", stdin="98-03-23\n")
  rows = [json.loads(line) for line in scores.read_text().splitlines()]
  assert len(rows) == 1 and len(rows[0]["hypotheses"]) == 2
  assert "alignment" not in rows[0]["hypotheses"][0]  # only with --alignments
  assert proc.stdout.splitlines() == [rows[0]["hypotheses"][0]["text"]]
  greedy = decode(trained, "--output_format=jsonl", stdin="98-03-23\n")  # nbest 1, beam 1
  (row,) = [json.loads(line) for line in greedy.stdout.splitlines()]
  assert len(row["hypotheses"]) == 1 and row["hypotheses"][0]["score"] is not None


@pytest.mark.parametrize("args,needle", [
    (["--nbest=3"], "--nbest=3 needs --config.eval.beam_size=3 or more (it is 1)"),
    ([BEAM, "--nbest=5"], "--nbest=5 needs --config.eval.beam_size=5 or more (it is 4)"),
    ([BEAM, "--nbest=2"], "--nbest shows its hypotheses with --output_format=jsonl"),
    (["--nbest=0"], "--nbest"),
])
def test_nbest_mistakes_are_one_line(trained, args, needle):
  proc = decode(trained, *args, "--output_format=text", stdin="98-03-23\n", check=False)
  assert_one_line_error(proc, needle)
  assert proc.stdout == ""


def test_scores_file_never_names_another_output(trained, tmp_path):
  same = tmp_path / "same.txt"
  proc = decode(trained, f"--scores={same}", f"--alignments={same}", stdin="x\n", check=False)
  assert_one_line_error(proc, "name the same file")


def test_bad_lines_in_a_stream_get_an_empty_line_and_decoding_goes_on(trained, tmp_path):
  good = ["98-03-23", "01-12-05"]
  stdin = f"{good[0]}\n98-03-23-11-11-11\n01-0\xff-03\n{good[1]}\n".encode("latin-1")
  align = tmp_path / "align.txt"
  proc = subprocess.run([sys.executable, "-m", "attnlab.main", "--workdir", str(trained),
                         "--mode=decode", f"--alignments={align}"], input=stdin,
                        capture_output=True, env=ENV, cwd=REPO, timeout=600)
  stdout, stderr = proc.stdout.decode(), proc.stderr.decode()
  assert proc.returncode == 2, stderr
  assert "Traceback" not in stderr
  out = stdout.splitlines()
  assert len(out) == 4 and out[1] == out[2] == ""  # one line in, one line out
  assert decode(trained, stdin="\n".join(good) + "\n").stdout.splitlines() == [out[0], out[3]]
  assert len(align.read_text().splitlines()) == 4
  errors = [line for line in stderr.splitlines() if line.strip()]
  assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
  assert "input line 2 has 17 tokens" in errors[0] and "output line is empty" in errors[0]
  assert "stdin line 3 is not UTF-8 text" in errors[1]


def test_bad_line_in_a_file_and_in_jsonl(trained, tmp_path):
  inputs = tmp_path / "in.txt"
  inputs.write_text("98-03-23-11-11-11\n98-03-23\n")
  proc = decode(trained, f"--input={inputs}", "--output_format=jsonl", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  rows = [json.loads(line) for line in proc.stdout.splitlines()]
  assert rows[0]["hypotheses"] == [] and "input line 1 has 17 tokens" in rows[0]["error"]
  assert len(rows[1]["hypotheses"]) == 1 and "error" not in rows[1]
  truncated = decode(trained, f"--input={inputs}", "--config.eval.on_long_input=truncate")
  assert len(truncated.stdout.splitlines()) == 2
