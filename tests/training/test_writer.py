"""attnlab.training.writer: what a resumed run keeps of metrics.jsonl."""

import json
import pathlib
import shutil
import sys

import pytest

from attnlab.run_record import read_jsonl
from attnlab.training.writer import step_of

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from test_main import CONFIGS, run_main  # noqa: E402

# Lines a crash or a bad disk can leave: torn ASCII, torn inside a UTF-8 character, bytes that
# are not UTF-8 at all, UTF-16 (valid JSON in another encoding: still not this file's).
BROKEN = [b'{"step": 20, "split": "tr', b'{"step": 20, "split": "tr\xc3',
          b'\xff\xfe{\x00"step": 3\n', '{"step": 3}\n'.encode("utf-16")]


@pytest.mark.parametrize("line", BROKEN)
def test_a_broken_line_counts_as_later_than_any_step(line):
  assert step_of(line) == sys.maxsize
  assert step_of(b'{"step": 7, "split": "train", "w": "\xc3\xa9"}\n') == 7


def test_read_jsonl_skips_broken_lines(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_bytes(b'{"step": 1}\n' + b"\n".join(BROKEN) + b'\n{"step": 2}\n')
  assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_non_utf8_bytes_in_metrics_jsonl_are_dropped_on_resume_like_a_torn_line(tmp_path):
  """Issue 22: non-UTF-8 bytes in metrics.jsonl crashed the resume (UnicodeDecodeError); the
  rerun now drops them with the records after the checkpoint, as it drops a torn line."""
  date = f"{CONFIGS / 'date.py'}:quick"  # 20 steps, checkpoints at 10 and 20
  straight = tmp_path / "straight"
  run_main("--config", date, "--workdir", str(straight))
  crashed = tmp_path / "crashed"
  shutil.copytree(straight, crashed)
  # As if killed mid-write after step 20's records, before its checkpoint was complete.
  shutil.rmtree(crashed / "checkpoints" / "20")
  (crashed / "summary.json").unlink()
  with open(crashed / "metrics.jsonl", "ab") as f:
    f.write(b'{"step": 20, "split": "\xff\xfe\n' + BROKEN[1])
  proc = run_main("--config", date, "--workdir", str(crashed))
  assert "resumed from step 10" in proc.stderr and "Traceback" not in proc.stderr
  resumed = (crashed / "metrics.jsonl").read_text(encoding="utf-8")  # UTF-8 again
  records, expected = (list(map(json.loads, text.splitlines())) for text in (
      resumed, (straight / "metrics.jsonl").read_text(encoding="utf-8")))
  assert [(r["step"], r["split"], r.get("loss")) for r in records] == [
      (r["step"], r["split"], r.get("loss")) for r in expected]
