"""Times the README's main command end to end: `python -m attnlab.main --config configs/date.py`.

    python -m experiments.date_wall_time [--runs 2] [--warm_cache]

Each run uses a fresh workdir and (unless --warm_cache) an empty XLA
compilation cache, so start-up and compilation are included, as a new user
sees them. Prints wall time and held-out exact match per run.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from absl import flags

from experiments import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_once(workdir: pathlib.Path, cache_dir: pathlib.Path) -> dict:
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "attnlab.main", "--config", str(REPO / "configs/date.py"),
                  "--workdir", str(workdir), f"--jax_cache_dir={cache_dir}"],
                 check=True, capture_output=True, cwd=REPO)
  wall = time.perf_counter() - start
  summary = json.loads((workdir / "summary.json").read_text())
  return {"wall_s": round(wall, 2), "test_exact_match": summary["test"]["exact_match"],
          "num_test": summary["test"]["num_examples"], "steps": summary["step"]}


def define_flags(fv: flags.FlagValues) -> None:
  flags.DEFINE_integer("runs", 2, "Runs, each in a fresh workdir.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_boolean("warm_cache", False, "Share one compilation cache across runs (the "
                       "second is warm).", flag_values=fv)


def parse_flags(argv: Sequence[str] | None = None) -> flags.FlagValues:
  """The flags from ``argv`` (None: ``sys.argv[1:]``); bad flags exit 2 with one line."""
  return cli.parse(define_flags, argv, __doc__)[0]


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_flags(argv)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    for i in range(args.runs):
      cache = tmp / ("cache" if args.warm_cache else f"cache{i}")
      result = run_once(tmp / f"run{i}", cache)
      print(json.dumps({"run": i, **result}), flush=True)
  return 0


if __name__ == "__main__":
  cli.run(main)
