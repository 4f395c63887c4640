"""Command-line plumbing shared by the ``experiments/`` entry points: absl flags, as
``attnlab/main.py`` parses them, and the same exit statuses.

Each entry point defines its flags on its own ``flags.FlagValues`` (not the global
``flags.FLAGS``: the modules are imported side by side, by tests and by each other, and share
flag names such as ``--root`` and ``--out``), so its ``main(argv)`` can also be called in-process
(``argv`` without the program name). From a shell, ``run(main)`` goes through ``absl.app.run``.

* ``--help`` (``-h``, ``--helpshort``, ``--helpfull``) prints the module's docstring and its
  flags and exits 0, whatever else is on the command line.
* A bad flag, a missing required flag or bad input is one line, ``error: ...``, on stderr and
  exit status 2, no traceback (``fail``).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn

from absl import app, flags, logging

HELP_FLAGS = ("--help", "-h", "--helpshort", "--helpfull", "-help")


class UsageError(ValueError):
  """Bad flags or input: ``main`` turns it into one ``error:`` line and exit status 2."""


def fail(message: object) -> NoReturn:
  """One line on stderr and exit status 2 (bad flags or input), as ``attnlab.main`` does."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(2)


def usage(fv: flags.FlagValues, doc: str | None) -> str:
  """The module's docstring, then each flag: name, help, default."""
  lines = [(doc or "").rstrip(), "", "flags:"]
  for name in sorted(fv):
    flag = fv[name]
    if flag.name != name or name in ("flagfile", "undefok"):  # aliases, absl's own
      continue
    shown = f"--[no]{name}" if flag.boolean else f"--{name}"
    default = "" if flag.default is None else f" (default: {flag.default_as_str})"
    lines += textwrap.wrap(f"{shown}: {flag.help}{default}", 90, initial_indent="  ",
                           subsequent_indent="      ")
  return "\n".join(lines) + "\n"


def parse(define: Callable[[flags.FlagValues], None], argv: Sequence[str] | None,
          doc: str | None, required: Iterable[str] = (),
          known_only: bool = False) -> tuple[flags.FlagValues, list[str]]:
  """Parses ``argv`` (no program name; None: ``sys.argv[1:]``) with the flags ``define`` puts
  on a fresh ``FlagValues``.

  Returns (flag values, the arguments left over: only with ``known_only``, the flags this
  entry point does not know, in order). ``--help`` prints the usage and exits 0; a flag error,
  a missing ``required`` flag or (without ``known_only``) a positional argument exits 2 with
  one line.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  fv = flags.FlagValues()
  define(fv)
  options = argv[:argv.index("--")] if "--" in argv else argv
  if any(arg in HELP_FLAGS for arg in options):
    print(usage(fv, doc), end="", flush=True)
    sys.exit(0)
  try:
    rest = fv(["prog", *argv], known_only=known_only)[1:]
  except flags.Error as e:
    fail(e)
  if rest and not known_only:
    fail(f"unexpected arguments: {' '.join(rest)}")
  require(fv, required)
  return fv, rest


def require(fv: flags.FlagValues, names: Iterable[str]) -> None:
  """Exits 2 with one line unless every flag of ``names`` has a value."""
  missing = [f"--{name}" for name in names if fv[name].value in (None, "")]
  if missing:
    fail(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
         "(--help lists the flags)")


def run(main: Callable[[list[str]], object]) -> None:
  """``absl.app.run`` for an entry point whose ``main(argv)`` parses its own flags; exits
  with ``main``'s status (an int; anything else, e.g. a result dict, means 0)."""

  def _main(argv: list[str]) -> int:
    logging.set_verbosity(logging.WARNING)  # as attnlab.main: no INFO lines from libraries
    status = main(argv[1:])
    return status if isinstance(status, int) else 0

  def _parse_absl_flags(argv: list[str]) -> list[str]:
    flags.FLAGS(argv[:1])  # absl's own flags stay at their defaults; main parses the rest
    return argv

  app.run(_main, flags_parser=_parse_absl_flags)
