"""Checkpoint averaging: a new workdir whose one checkpoint holds the mean parameters of a
run's last K checkpoints, or of its best K by validation loss (``training.averaging``).

    python -m attnlab.average --workdir runs/date --last 5 --out runs/date_last5
    python -m attnlab.average --workdir runs/date --best 3 --out runs/date_best3
    python -m attnlab.main --mode=decode --workdir runs/date_last5 < dates.txt

The new workdir is self-contained (the run's config.json, vocab.json and run.json, the one
checkpoint at the newest averaged step, and averaged.json: source, steps, their validation
losses): eval and decode use it with ``--workdir`` alone. The run's own folder is only read
(nothing there is created, cleaned or moved), and ``--out`` must be new. The run keeps what
``train.keep_checkpoints`` (the newest) and the best checkpoint leave; best K ranks those of
them with a validation loss in metrics.jsonl. ``--mode=eval`` and ``--mode=decode`` take
``--average=last:K`` (or ``best:K``) to use such an average without writing it.

Prints one JSON line (out, steps); exit status 2 with one ``error:`` line for bad flags, a
run that has fewer checkpoints than K, or an ``--out`` that exists.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn, Sequence

from absl import app, flags, logging

HELP_FLAGS = ("--help", "-h", "--helpshort", "--helpfull", "-help")


def define_flags(fv: flags.FlagValues) -> None:
  """This command's flags, on their own ``FlagValues`` (``attnlab.main`` shares the names)."""
  flags.DEFINE_string("workdir", None, "The run whose checkpoints to average.", flag_values=fv)
  flags.DEFINE_integer("last", None, "Average the K newest checkpoints.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("best", None, "Average the K checkpoints with the lowest validation "
                       "loss (metrics.jsonl).", lower_bound=1, flag_values=fv)
  flags.DEFINE_string("out", None, "The new workdir to write (must not exist yet).",
                      flag_values=fv)


def fail(message: object) -> NoReturn:
  """One line on stderr and exit status 2, as ``attnlab.main`` does."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(2)


def parse_flags(argv: Sequence[str]) -> flags.FlagValues:
  """The flags of ``argv`` (no program name); ``--help`` prints them and exits 0, a bad or
  missing flag exits 2 with one line."""
  fv = flags.FlagValues()
  define_flags(fv)
  if any(arg in HELP_FLAGS for arg in argv):
    print(__doc__ + "\n" + fv.main_module_help(), flush=True)
    sys.exit(0)
  try:
    rest = fv(["prog", *argv])[1:]
  except flags.Error as e:
    fail(e)
  if rest:
    fail(f"unexpected arguments: {' '.join(rest)}")
  missing = [f"--{name}" for name in ("workdir", "out") if not fv[name].value]
  if missing:
    fail(f"{' and '.join(missing)} required (--help lists the flags)")
  if (fv.last is None) == (fv.best is None):
    fail("give one of --last=K (the K newest checkpoints) and --best=K (the K with the lowest "
         "validation loss)")
  return fv


def main(argv: Sequence[str]) -> dict:
  """Writes the averaged workdir; returns (and prints) {out, steps}."""
  fv = parse_flags(argv)
  from attnlab import summaries
  from attnlab.checkpointing import CheckpointMismatch, CheckpointUnreadable
  from attnlab.config import ConfigError, validate
  from attnlab.training import averaging, inference
  from attnlab.training.workdir import WorkdirError
  choice = averaging.Choice("last", fv.last) if fv.last else averaging.Choice("best", fv.best)
  try:
    averaging.check_new_folder(fv.out, fv.workdir)  # before any checkpoint is read
    config = inference.load_config(fv.workdir)
    validate(config)
    state, _, steps = inference.restore_checkpoints(
        config, fv.workdir, for_decoding=True, average=f"{choice.how}:{choice.k}")
    averaging.write_averaged_workdir(fv.workdir, fv.out, config, state, steps, choice)
  except (ConfigError, WorkdirError, CheckpointMismatch, CheckpointUnreadable,
          OSError) as e:  # OSError: no checkpoint, or --out could not be written
    fail(e)
  result = {"out": os.path.abspath(fv.out), "how": choice.how, "steps": steps}
  print(summaries.dumps(result), flush=True)
  return result


def _run(argv: list[str]) -> int:
  logging.set_verbosity(logging.WARNING)  # as attnlab.main: no INFO lines from libraries
  main(argv[1:])
  return 0


if __name__ == "__main__":
  app.run(_run, flags_parser=lambda argv: flags.FLAGS(argv[:1]) and argv)
