"""Never one trial twice at once: whether a trial's workdir is already someone else's.

Two records say so, both in the trial's workdir (``attnlab.run_record``), never a message's
wording:

* ``status.json`` (``running_elsewhere``): a launcher on this host started the trial and that
  process still runs it. Checked before a trial starts, so it is not started twice.
* ``.lock`` (``locked_by``): the trainer (``attnlab.training.workdir.lock``) exits 2 when
  another run holds its workdir's lock, and the holder records its PID and host in the file
  while it holds it. A trial that exited 2 while the file names a live holder was refused
  for that reason; any other exit 2 (a bad config) is a failure. This covers runs of other
  hosts and runs started by hand, which no ``status.json`` of this host describes.
"""

from __future__ import annotations

import os
import pathlib
import socket
from collections.abc import Mapping

from attnlab import run_record

ALREADY_RUNNING = "already running"
LOCKED_EXIT = 2  # attnlab.main's exit status for a workdir it cannot use (WorkdirError)


def running_elsewhere(workdir: str | os.PathLike) -> str | None:
  """"PID N on HOST" when ``workdir/status.json`` says a launcher started the trial on this
  host and that process still runs it (another launcher's; PID reuse is ruled out by its
  command line where /proc has it), else None. Records from other hosts cannot be checked
  from here: the trainer's own workdir lock answers for those (``locked_by``)."""
  status = run_record.read_status(workdir) or {}
  pid = status.get("pid")
  if (status.get("status") != "running" or not isinstance(pid, int)
      or status.get("host") != socket.gethostname() or not run_record.pid_alive(pid)):
    return None
  try:
    cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
  except OSError:
    cmdline = None  # no /proc: trust the PID
  if cmdline is not None and os.fsencode(os.fspath(workdir)) not in cmdline:
    return None
  return f"PID {pid} on {status['host']}"


def locked_by(workdir: str | os.PathLike, returncode: int | None) -> str | None:
  """Why a trial that exited with ``returncode`` did not run, when another run holds its
  workdir: it exited ``LOCKED_EXIT`` and ``workdir/.lock`` names a holder that is not known
  to be gone (``run_record.live_holder``). Else None."""
  if returncode != LOCKED_EXIT:
    return None
  holder = run_record.live_holder(workdir)
  if holder is None:
    return None
  held_by = run_record.describe_holder(holder)
  return f"{os.fspath(workdir)} is in use by {held_by} ({run_record.LOCK})"


def already_running(trial: Mapping, holder: str) -> dict:
  """The status of a trial not started because ``holder`` runs it (``running_elsewhere``)."""
  return {"name": trial["name"], "status": ALREADY_RUNNING, "returncode": None,
          "reason": f"{trial['workdir']} is being run by {holder} ({run_record.STATUS})"}
