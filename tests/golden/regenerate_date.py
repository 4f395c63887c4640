"""Regenerates tests/golden/date_50_steps.json: the date task's training losses at steps
1..50 and its test metrics after them, for a fixed seed, under the test suite's XLA flags.

    python tests/golden/regenerate_date.py

Run it only when a change is meant to change the numbers (and say so in the commit); a
refactor must leave ``tests/test_golden.py`` passing against the committed file. That test
compares within ``RTOL`` (another machine rounds some logged losses differently in the last
bits) and asserts two runs on one machine equal bitwise.
"""

import json
import os
import pathlib
import sys
import tempfile

import jax

jax.config.update("jax_disable_most_optimizations", True)  # as tests/conftest.py

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE / "date_50_steps.json"
STEPS = 50


def date_config():
  """configs/date.py for 50 steps, a loss logged at every step, evaluated at the end."""
  import runpy
  config = runpy.run_path(str(HERE.parents[1] / "configs" / "date.py"))["get_config"]()
  config.train.num_steps = STEPS
  config.train.log_every = 1
  config.train.eval_every = config.train.checkpoint_every = STEPS
  config.data.num_valid = config.data.num_test = 200
  config.eval.num_heatmaps = 0
  return config


def run(workdir: str) -> dict:
  """Trains the golden config in ``workdir``; returns {'losses': [...], 'test': {...}}."""
  from attnlab import training
  summary = training.train_and_evaluate(date_config(), workdir)
  records = [json.loads(line) for line in
             pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()]
  losses = [r["loss"] for r in records if r["split"] == "train"]
  test = {k: v for k, v in summary["test"].items() if isinstance(v, (int, float))}
  return {"losses": losses, "test": test}


if __name__ == "__main__":
  with tempfile.TemporaryDirectory() as workdir:
    result = run(os.path.join(workdir, "date"))
  assert len(result["losses"]) == STEPS, len(result["losses"])
  GOLDEN.write_text(json.dumps(result, indent=1) + "\n")
  print(f"wrote {GOLDEN}", file=sys.stderr)
