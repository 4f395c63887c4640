"""Decoding with an ensemble of runs through the real entry point (``--ensemble``): a run
together with itself decodes exactly as the run, runs that share vocabularies decode together,
and runs whose vocabularies differ are refused (issue 26, item 7). An ensemble of one model
decoding exactly as the model: tests/test_decoding_ensemble.py."""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import CONFIGS, ENV, REPO, run_main  # noqa: E402
from test_main_daily_use import assert_one_line_error  # noqa: E402

DATE = f"{CONFIGS / 'date.py'}:quick"
LINES = "98-03-23\n01-12-05\n\n17-07-30\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A finished date:quick run (checkpoints at 10 and 20) and another model of the same
  vocabularies: the average of its two checkpoints (``python -m attnlab.average``)."""
  root = tmp_path_factory.mktemp("ensemble")
  run_main("--config", DATE, "--workdir", str(root / "date"))
  subprocess.run([sys.executable, "-m", "attnlab.average", "--workdir", str(root / "date"),
                  "--last=2", "--out", str(root / "averaged")], env=ENV, cwd=REPO, check=True,
                 capture_output=True, timeout=600)
  return root / "date", root / "averaged"


def decode(workdir, *args, check=True):
  return run_main("--workdir", str(workdir), "--mode=decode", *args, stdin=LINES, check=check)


@pytest.mark.parametrize("beam", ["--config.eval.beam_size=1", "--config.eval.beam_size=3"])
def test_a_run_with_itself_decodes_exactly_as_the_run(runs, tmp_path, beam):
  run, _ = runs
  nbest = "--nbest=3" if beam.endswith("3") else "--nbest=1"
  outputs = []
  for name, extra in (("alone", []), ("twice", [f"--ensemble={run}"])):
    align = tmp_path / f"{name}.align"
    proc = decode(run, beam, nbest, "--output_format=jsonl", f"--alignments={align}", *extra)
    outputs.append((proc.stdout, align.read_text()))
  assert outputs[0] == outputs[1]  # texts, scores, log-probabilities and alignments
  rows = [json.loads(line) for line in outputs[0][0].splitlines()]
  assert len(rows) == 4 and rows[2]["hypotheses"] == []


def test_runs_that_share_vocabularies_decode_together(runs, tmp_path):
  run, other = runs
  weights = tmp_path / "weights.jsonl"
  proc = decode(run, f"--ensemble={other}", "--output_format=jsonl",
                f"--alignment_weights={weights}")
  rows = [json.loads(line) for line in proc.stdout.splitlines()]
  assert len(rows) == 4 and rows[2]["hypotheses"] == []
  assert proc.stdout != decode(run, "--output_format=jsonl").stdout  # scored as a mixture
  for row in (json.loads(line) for line in weights.read_text().splitlines()):
    for weight_row in row["weights"]:  # the mean of two attention distributions
      assert sum(weight_row) == pytest.approx(1.0, abs=1e-4)


def with_other_vocabulary(run, folder):
  """A copy of ``run`` whose target vocabulary names one token otherwise (a consistent
  vocab.json: its checksum recomputed), as a run trained on other data would."""
  from attnlab.training import workdir as workdir_lib
  shutil.copytree(run, folder)
  vocab = json.loads((folder / "vocab.json").read_text())
  vocab["tgt"][-1] = "<another token>"
  vocab[workdir_lib.VOCAB_CHECKSUM] = workdir_lib.vocab_checksum(vocab)
  (folder / "vocab.json").write_text(json.dumps(vocab))
  return folder


def test_runs_whose_vocabularies_differ_are_refused(runs, tmp_path):
  run, _ = runs
  other = with_other_vocabulary(run, tmp_path / "other")
  proc = decode(run, f"--ensemble={other}", check=False)
  assert_one_line_error(proc, f"--ensemble member {str(other)!r} has other vocabularies than")
  assert "tgt differ" in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("args,needle", [
    (["--ensemble=/no/such/run"], "--ensemble member '/no/such/run' does not exist"),
    (["--mode=eval", "--ensemble=X"], "--ensemble is for --mode=decode"),
])
def test_ensemble_mistakes_are_one_line(runs, args, needle):
  proc = decode(runs[0], *args, check=False)
  assert_one_line_error(proc, needle)


def test_outputs_never_name_a_members_file(runs):
  run, other = runs
  proc = decode(run, f"--ensemble={other}", f"--alignments={other / 'config.json'}",
                check=False)
  assert_one_line_error(proc, "is a file of --ensemble")
