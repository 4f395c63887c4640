"""``config.imports``: a score function defined outside attnlab (tests/plugins/) is named from a
config that does not import JAX, through the real entry point; its registry entry's checks
run at the boundary like attnlab's own, and eval from the workdir alone imports it again."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from test_main import ENV, REPO

PLUGINS = pathlib.Path(__file__).resolve().parent / "plugins"
CONFIG = PLUGINS / "toy_plugin_config.py"
# The plug-in is the user's own module, on the user's path (not attnlab's).
PLUGIN_ENV = {**ENV, "PYTHONPATH": os.pathsep.join(
    filter(None, [str(PLUGINS), ENV.get("PYTHONPATH", "")]))}


def _main(*args):
  return subprocess.run([sys.executable, "-m", "attnlab.main", *args], capture_output=True,
                        text=True, env=PLUGIN_ENV, cwd=REPO, timeout=600)


def test_the_plugin_config_imports_no_jax():
  code = ("import sys; from attnlab.defaults import load_config_file; "
          f"c = load_config_file({str(CONFIG)!r}).get_config(); "
          "assert c.imports == ('toy_plugin_score',), c.imports; "
          "assert 'jax' not in sys.modules and 'toy_plugin_score' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True, env=PLUGIN_ENV, cwd=REPO)


@pytest.mark.slow
def test_a_plugin_score_trains_and_evaluates_from_its_workdir(tmp_path):
  workdir = tmp_path / "w"
  train = _main("--config", str(CONFIG), "--workdir", str(workdir))
  assert train.returncode == 0, train.stderr
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["imports"] == ["toy_plugin_score"]
  assert saved["model"]["attention"] == "toy_plugin_dot"
  # eval reads config.json alone: a fresh process imports the plug-in from it again.
  evaluation = _main("--workdir", str(workdir), "--mode=eval")
  assert evaluation.returncode == 0, evaluation.stderr
  assert "exact_match" in evaluation.stdout


@pytest.mark.parametrize("override,needle", [
    ("--config.model.toy_plugin_scale=-1.0",
     "error: config.model.toy_plugin_scale: must be a finite number > 0, got -1.0"),
    ("--config.imports=('no_such_plugin_module',)",
     "error: config.imports: cannot import 'no_such_plugin_module': No module named "
     "'no_such_plugin_module'"),
])
def test_a_bad_plugin_option_or_module_is_one_line_and_exit_2(tmp_path, override, needle):
  proc = _main("--config", str(CONFIG), "--workdir", str(tmp_path / "w"), override)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert proc.stderr.strip() == needle
  assert not (tmp_path / "w").exists()
