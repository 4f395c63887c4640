"""Runs a trial's command so that it gets SIGTERM when its launcher dies (Linux)::

    python -m experiments.parent_death LAUNCHER_PID COMMAND [ARG ...]

asks the kernel for SIGTERM when its parent dies, even by SIGKILL (``PR_SET_PDEATHSIG``, which
survives ``exec``), then becomes ``COMMAND`` (``os.execvp``). A killed launcher thus leaves no
trial running: each checkpoints and exits, as ``attnlab.main`` does on SIGTERM, and a rerun
finds no trial still writing its workdir. If the launcher (``LAUNCHER_PID``) died before the
request took effect, it exits 143 (128 + SIGTERM) without running anything.

A process of its own rather than a ``preexec_fn``: the launcher has JAX loaded (sweep files
import attnlab), and forking a multithreaded process to run Python in the child is what JAX
warns against. It imports nothing but the standard library, so it starts at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def command(trial_command: Sequence[str]) -> list[str]:
  """``trial_command`` as a process that gets SIGTERM when this process dies (Linux only; the
  same command elsewhere). Runs with the checkout as its working directory (``-m``)."""
  if not sys.platform.startswith("linux"):
    return list(trial_command)
  return [sys.executable, "-m", "experiments.parent_death", str(os.getpid()), *trial_command]


def main(argv: Sequence[str]) -> NoReturn:
  """``argv``: the launcher's PID, then the command to become."""
  launcher, trial_command = int(argv[0]), list(argv[1:])
  try:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
  except (OSError, AttributeError):
    pass
  if os.getppid() != launcher:  # the launcher died before that took effect
    sys.exit(128 + signal.SIGTERM)
  try:
    os.execvp(trial_command[0], trial_command)
  except OSError as e:  # the trial's interpreter itself could not start
    sys.exit(f"{type(e).__name__}: {e}: {trial_command[0]}")


if __name__ == "__main__":
  main(sys.argv[1:])
