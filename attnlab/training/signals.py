"""Stopping well: SIGTERM / SIGINT become a flag the loop checks after each step (it saves,
then raises ``Interrupted``), and the non-finite policy (``train.on_nonfinite``: skipped
updates are counted and reported; 'stop' raises ``NonFiniteError``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading


class Interrupted(Exception):
  """Training stopped by SIGTERM/SIGINT after saving a checkpoint at ``step``."""

  def __init__(self, step: int, signum: int):
    super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint "
                     "saved, run the same command again to resume")
    self.step, self.signum = step, signum


class NonFiniteError(FloatingPointError):
  """The loss or a gradient became NaN/inf and ``train.on_nonfinite='stop'``."""


@contextlib.contextmanager
def stop_on_signals():
  """Turns SIGTERM and SIGINT into a flag the loop checks after each step.

  Yields a list that holds the signal number once one arrived. Only the main
  thread can install handlers; elsewhere the flag simply never sets.
  """
  received: list[int] = []
  if threading.current_thread() is not threading.main_thread():
    yield received
    return
  handler = lambda signum, frame: received.append(signum)  # noqa: E731
  previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
  try:
    yield received
  finally:
    for sig, old in previous.items():
      signal.signal(sig, old)


def check_finite(state, config, reported: list[int]) -> None:
  """Stops (mode 'stop') or warns (mode 'skip') about skipped non-finite updates."""
  first = int(state.first_nonfinite_step)
  if first < 0:
    return
  if config.train.on_nonfinite == "stop":
    raise NonFiniteError(
        f"non-finite loss or gradient at step {first + 1}; the update was not applied and "
        "the last good checkpoint is kept (train.on_nonfinite='skip' skips such updates)")
  count = int(state.nonfinite_steps)
  if count > reported[0]:
    logging.warning("skipped %d update(s) with a non-finite loss or gradient (first at step %d)",
                    count, first + 1)
    reported[0] = count

