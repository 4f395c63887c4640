"""The Quickstart as a person runs it: in a terminal, where the progress bar is on.

Piped output (CI, every other test) never takes the progress bar's path, so this runs the
real CLI under a pseudo-terminal through log lines, evaluations and checkpoints.
"""

import fcntl
import os
import pathlib
import pty
import select
import struct
import subprocess
import sys
import termios
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).parent))
from test_main import ENV  # noqa: E402


def run_in_terminal(args, timeout=300):
  """Runs ``python -m attnlab.main ARGS`` with stdin, stdout and stderr on a pseudo-terminal;
  returns (exit status, everything it printed)."""
  leader, follower = pty.openpty()
  fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 x 100
  proc = subprocess.Popen([sys.executable, "-m", "attnlab.main", *args], stdin=follower,
                          stdout=follower, stderr=follower, env={**ENV, "TERM": "xterm"},
                          cwd=REPO, close_fds=True)
  os.close(follower)
  chunks, deadline = [], time.time() + timeout
  while time.time() < deadline:
    ready, _, _ = select.select([leader], [], [], 0.5)
    if ready:
      try:
        data = os.read(leader, 65536)
      except OSError:  # EIO: the child closed its end
        break
      if not data:
        break
      chunks.append(data)
    elif proc.poll() is not None:
      break
  os.close(leader)
  status = proc.wait(timeout=60)
  return status, b"".join(chunks).decode("utf-8", "replace")


def test_quickstart_in_a_terminal_logs_evaluates_and_checkpoints(tmp_path):
  workdir = tmp_path / "date"
  status, output = run_in_terminal([f"--config={REPO / 'configs' / 'date.py'}:quick",
                                    f"--workdir={workdir}"])
  assert status == 0, output
  assert "Traceback" not in output, output
  assert "step     10 | loss" in output and "step     20 | loss" in output  # log lines
  assert "step/s" in output or "it/s" in output or "%|" in output  # the progress bar drew
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]
  assert (workdir / "summary.json").exists()
  assert '"test_exact_match"' in output
