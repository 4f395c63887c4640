"""Times the README's main command end to end: `python -m attnlab.main --config configs/date.py`.

    python -m experiments.date_wall_time [--runs 2] [--warm_cache]

Each run uses a fresh workdir and (unless --warm_cache) an empty XLA
compilation cache, so start-up and compilation are included, as a new user
sees them. Prints wall time and held-out exact match per run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

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


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", type=int, default=2)
  parser.add_argument("--warm_cache", action="store_true",
                      help="share one compilation cache across runs (the second is warm)")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    for i in range(args.runs):
      cache = tmp / ("cache" if args.warm_cache else f"cache{i}")
      result = run_once(tmp / f"run{i}", cache)
      print(json.dumps({"run": i, **result}), flush=True)


if __name__ == "__main__":
  main()
