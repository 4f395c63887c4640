"""The tiny sweep that the launcher and report tests share (it is run once per session)."""

import os
import pathlib

import pytest

from experiments import sweep

SWEEPS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "sweeps"

TINY_SWEEP = '''
import os
from attnlab.defaults import load_config_file
base = load_config_file(os.path.join({sweeps!r}, "long_sentence.py"))

def get_config(arg=None):
  return base.get_config("tiny")

def get_sweep(arg=None):
  axes = base.get_sweep("tiny")
  # A trial that crashes (an unknown score name): recorded, and the others go on.
  axes["variant"]["broken"] = {{"model.attention": "no_such_score"}}
  return axes

def get_report(arg=None):
  return base.get_report(arg)
'''


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
  """The tiny long-sentence sweep (2 variants x 1 regime x 2 vmapped seeds, 4 steps) plus a
  broken trial, run once through the local launcher: (root, exit status, sweep file)."""
  root = tmp_path_factory.mktemp("sweep")
  sweep_file = root / "tiny_sweep.py"
  sweep_file.write_text(TINY_SWEEP.format(sweeps=str(SWEEPS)))
  # Trials inherit the environment: compile fast, as tests/test_main.py's subprocesses do.
  saved = os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS")
  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"
  try:
    exit_code = sweep.main(["--sweep", str(sweep_file), "--root", str(root / "runs"),
                            "--max_parallel", "2"])
  finally:
    if saved is None:
      del os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"]
    else:
      os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = saved
  return root / "runs", exit_code, sweep_file
