"""What installing attnlab puts in site-packages: the attnlab package only.

experiments/ holds scripts run from the repository root (`python -m experiments.sweep`); it is
not installed, so no top-level `experiments` module lands in anyone's site-packages. Building a
wheel here would need the `wheel` package (CI's fresh virtualenv has none) or network access,
so the first test reads setup.cfg through setuptools, the way a build does; the second looks
at a regular (non-editable) installed attnlab, as `.ci/min_versions` makes one.
"""

import configparser
import importlib.metadata
import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_setup_cfg_installs_every_attnlab_package_and_nothing_else():
  # A virtualenv of Python 3.12+ has no setuptools unless installed (3.11's has it).
  setupcfg = pytest.importorskip("setuptools.config.setupcfg")
  packages = setupcfg.read_configuration(REPO / "setup.cfg")["options"]["packages"]
  assert {name.split(".")[0] for name in packages} == {"attnlab"}
  on_disk = {".".join(init.parent.relative_to(REPO).parts)
             for init in (REPO / "attnlab").rglob("__init__.py")}
  assert set(packages) == on_disk


def test_installed_distribution_has_no_top_level_experiments():
  # The installed one: not the attnlab.egg-info a build leaves in the checkout, which
  # importlib.metadata also finds when the repository root is on sys.path.
  installed = [d for d in importlib.metadata.distributions(name="attnlab")
               if pathlib.Path(d.locate_file("")).resolve() != REPO]
  if not installed:
    pytest.skip("attnlab is not installed (run from a checkout on sys.path)")
  dist = installed[0]
  direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
  if direct_url.get("dir_info", {}).get("editable"):
    # An editable install maps names to this checkout as of its `pip install -e`.
    pytest.skip("editable install: its metadata is only as fresh as its last pip install -e")
  assert "experiments" not in {pathlib.PurePosixPath(str(f)).parts[0] for f in dist.files}
  assert (dist.read_text("top_level.txt") or "attnlab").split() == ["attnlab"]


def test_experiments_run_from_the_repository_root():
  # `python -m` and `python -m pytest` put the working directory first on sys.path.
  import experiments
  assert pathlib.Path(experiments.__file__).resolve().parent == REPO / "experiments"
  proc = subprocess.run([sys.executable, "-m", "experiments.sweep", "--help"], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "--sweep" in proc.stdout + proc.stderr


CRASHING_SUITE = '''
import os, pathlib, signal, time

MARK = pathlib.Path(__file__).with_name("crashed_once")


def test_worker_dies_of_a_segfault_once():
  if not MARK.exists():
    MARK.write_text("")
    # A real crash comes seconds into a test (compiling); the plugin's record that this test
    # may be rerun reaches the controller asynchronously at the test's start.
    time.sleep(2)
    os.kill(os.getpid(), signal.SIGSEGV)


def test_fails():
  assert 1 == 2
'''


def test_a_crashed_worker_reruns_its_test_once_and_a_python_failure_never(tmp_path):
  # setup.cfg's rerun settings, as the suite gets them, in a suite of two tests under -n 2.
  pytest.importorskip("pytest_rerunfailures")
  pytest.importorskip("xdist")
  cfg = configparser.ConfigParser(interpolation=None)
  cfg.read(REPO / "setup.cfg")
  options = {key: cfg["tool:pytest"][key] for key in ("reruns", "only_rerun")}
  (tmp_path / "pytest.ini").write_text(
      "[pytest]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()))
  (tmp_path / "test_crash.py").write_text(CRASHING_SUITE)
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"],
      cwd=tmp_path, capture_output=True, text=True, timeout=300)
  summary = result.stdout.strip().splitlines()[-1]
  assert result.returncode == 1, result.stdout + result.stderr
  assert "1 failed, 1 passed, 1 rerun" in summary, result.stdout
  assert "FAILED test_crash.py::test_fails" in result.stdout
