"""experiments/colab_tpu.ipynb: a clean nbformat-4 notebook whose code runs top to bottom.

The execution test runs the notebook's code cells, in order, in one namespace, in a fresh
interpreter on two CPU devices with the notebook's tiny settings (``ATTNLAB_NOTEBOOK_QUICK=1``),
the way Colab's "Run all" would, minus the clone and install
(``ATTNLAB_NOTEBOOK_SKIP_INSTALL=1``: the subprocess starts in the repository root of an
installed checkout) and past the TPU check (``ATTNLAB_NOTEBOOK_ALLOW_NON_TPU=1``). Two devices
take the path a TPU's cores do: every seed of the sweep its own data-parallel trial.
``IPython.display`` is replaced by a recorder (CI installs no IPython), so the test also sees
what the notebook shows inline. The failure paths (the placeholder ``REPO_URL``, a failing
clone, a runtime without a TPU, a stale JAX) run the install and device cells in this process.
"""

import configparser
import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import jax
import pytest
from packaging.version import Version

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "experiments" / "colab_tpu.ipynb"

# Runs in the subprocess: argv = cells.json (the cells' Python sources), displayed.json (out).
RUNNER = r'''
import json
import sys
import types

cells_file, displayed_file = sys.argv[1:3]
displayed = []


class Image:
  def __init__(self, filename):
    with open(filename, "rb") as f:
      if f.read(8) != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{filename} is not a PNG")
    self.filename = filename


class Markdown:
  def __init__(self, data):
    self.data = data


class HTML(Markdown):
  pass


def display(*objs):
  for obj in objs:
    displayed.append({"type": type(obj).__name__,
                      "value": getattr(obj, "filename", None) or getattr(obj, "data", None)})


ipython = types.ModuleType("IPython")
# matplotlib looks for a loaded IPython's version_info; from 8.24 on it leaves IPython alone.
ipython.version_info = (8, 24, 0)
ipython.display = types.ModuleType("IPython.display")
ipython.display.Image, ipython.display.Markdown = Image, Markdown
ipython.display.HTML = HTML
ipython.display.display = display
sys.modules["IPython"], sys.modules["IPython.display"] = ipython, ipython.display

with open(cells_file, encoding="utf-8") as f:
  cells = json.load(f)
namespace = {"__name__": "__main__"}
try:
  for i, source in enumerate(cells):
    print(f"--- code cell {i}", flush=True)
    exec(compile(source, f"<code cell {i}>", "exec"), namespace)
finally:
  with open(displayed_file, "w", encoding="utf-8") as f:
    json.dump(displayed, f)
'''


def load_notebook() -> dict:
  return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def source_of(cell: dict) -> str:
  source = cell["source"]
  return "".join(source) if isinstance(source, list) else source


def python_source(cell: dict) -> str:
  """A code cell without its shell (``!``) and magic (``%``) lines; blank lines keep the
  line numbers of tracebacks."""
  return "\n".join("" if line.lstrip().startswith(("!", "%")) else line
                   for line in source_of(cell).split("\n"))


def code_cells() -> list[str]:
  return [source_of(c) for c in load_notebook()["cells"] if c["cell_type"] == "code"]


def install_cell() -> str:
  return code_cells()[0]


def devices_cell() -> str:
  (cell,) = [c for c in code_cells() if "jax.default_backend()" in c]
  return cell


def with_assignment(source: str, name: str, value: str) -> str:
  """``source`` with its one top-level ``NAME = ...`` line set to ``NAME = value``."""
  new, count = re.subn(rf"^{name} = .*$", lambda _: f"{name} = {value}", source, flags=re.M)
  assert count == 1, f"no single {name} = ... line in the cell"
  return new


def setup_cfg_jax_lower_bound() -> Version:
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg", encoding="utf-8")
  (bound,) = re.findall(r"^jax\s*>=\s*([\w.]+)", cfg["options"]["install_requires"], re.M)
  return Version(bound)


def test_notebook_is_clean_nbformat_4():
  notebook = load_notebook()
  assert notebook["nbformat"] == 4 and isinstance(notebook["nbformat_minor"], int)
  assert notebook["metadata"]["kernelspec"]["language"] == "python"
  cells = notebook["cells"]
  kinds = [cell["cell_type"] for cell in cells]
  assert set(kinds) <= {"markdown", "code", "raw"}
  assert kinds.count("code") >= 5 and kinds.count("markdown") >= 5
  ids = [cell.get("id") for cell in cells]
  if notebook["nbformat_minor"] >= 5:  # cell ids are required from nbformat 4.5 on
    assert all(ids) and len(set(ids)) == len(ids)
  for cell in cells:
    assert isinstance(cell["metadata"], dict) and isinstance(cell["source"], (list, str))
    if cell["cell_type"] == "code":
      # Committed clean: no stored outputs or execution counts.
      assert cell["outputs"] == [] and cell["execution_count"] is None, source_of(cell)[:80]
    else:
      assert "outputs" not in cell and "execution_count" not in cell
  code = [source_of(cell) for cell in cells if cell["cell_type"] == "code"]
  # Every code cell is plain Python (no `!` shell or `%` magic lines, whose failures Jupyter
  # ignores) and compiles.
  for source in code:
    assert python_source({"source": source}) == source, source[:80]
    compile(source, "<cell>", "exec")
  # The install cell comes first: a checked clone, then attnlab and a pinned JAX for TPU.
  assert "REPO_URL" in code[0] and "check=True" in code[0]
  assert "jax[tpu]=={JAX_VERSION}" in code[0]
  assert "https://storage.googleapis.com/jax-releases/libtpu_releases.html" in code[0]
  assert "ATTNLAB_NOTEBOOK_QUICK" in code[1]  # the settings cell comes right after install
  assert "jax.default_backend()" in code[2]  # then the TPU check, the first import of JAX
  assert not any("import jax" in c for c in code[:2])


def test_notebook_text_leaves_settings_to_the_files_that_define_them():
  """The markdown names no profile's sizes (they change with the sweep files; the cells print
  them) and describes the report's intervals, not the "mean ± sample std" it used to write."""
  text = "\n".join(source_of(c) for c in load_notebook()["cells"] if c["cell_type"] == "markdown")
  for stale in ("mean ± sample std", "±1\nstd", "9 variants", "400 steps", "20,000 steps",
                "1,200 steps", "every\nregistered score function"):
    assert stale not in text, stale
  assert "interval" in text and "atlas" in text


def test_pinned_jax_is_one_setup_cfg_allows():
  (line,) = [l for l in install_cell().splitlines() if l.startswith("JAX_VERSION = ")]
  pinned = Version(line.split("=", 1)[1].split("#")[0].strip().strip('"'))
  assert pinned >= setup_cfg_jax_lower_bound()


def test_placeholder_repo_url_stops_the_notebook_with_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.delenv("ATTNLAB_NOTEBOOK_SKIP_INSTALL", raising=False)
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a}"))
  source = with_assignment(install_cell(), "REPO_DIR", f"pathlib.Path({str(tmp_path / 'x')!r})")
  with pytest.raises(ValueError, match="REPO_URL is still the placeholder"):
    exec(compile(source, "<install cell>", "exec"), {"__name__": "__main__"})


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_failed_clone_stops_the_notebook_with_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.delenv("ATTNLAB_NOTEBOOK_SKIP_INSTALL", raising=False)
  monkeypatch.chdir(tmp_path)
  source = with_assignment(install_cell(), "REPO_DIR", f"pathlib.Path({str(tmp_path / 'x')!r})")
  source = with_assignment(source, "REPO_URL", repr(str(tmp_path / "no-such-repository")))
  with pytest.raises(RuntimeError, match=r"git clone .* failed \(exit status \d+"):
    exec(compile(source, "<install cell>", "exec"), {"__name__": "__main__"})
  assert not (tmp_path / "x").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_failed_clone_message_hides_the_token(tmp_path, monkeypatch, capsys):
  monkeypatch.delenv("ATTNLAB_NOTEBOOK_SKIP_INSTALL", raising=False)
  monkeypatch.chdir(tmp_path)
  source = with_assignment(install_cell(), "REPO_DIR", f"pathlib.Path({str(tmp_path / 'x')!r})")
  # Nothing listens on port 9 of this machine: git fails at once, without the network.
  source = with_assignment(source, "REPO_URL", '"https://user:s3cret@127.0.0.1:9/attnlab.git"')
  with pytest.raises(RuntimeError, match="failed") as error:
    exec(compile(source, "<install cell>", "exec"), {"__name__": "__main__"})
  printed = capsys.readouterr().out
  assert "https://***@127.0.0.1:9/attnlab.git" in printed and "s3cret" not in printed
  assert "s3cret" not in str(error.value)


def test_install_cell_installs_attnlab_with_the_pinned_jax_for_tpu(tmp_path, monkeypatch):
  # A checkout already in REPO_DIR: no clone, and one pip command for attnlab and jax[tpu].
  monkeypatch.delenv("ATTNLAB_NOTEBOOK_SKIP_INSTALL", raising=False)
  monkeypatch.chdir(tmp_path)
  checkout = tmp_path / "attnlab"
  checkout.mkdir()
  (checkout / "setup.cfg").write_text("[metadata]\nname = attnlab\n")
  commands = []
  monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append((command, kw)))
  source = with_assignment(install_cell(), "REPO_DIR", f"pathlib.Path({str(checkout)!r})")
  namespace = {"__name__": "__main__"}
  exec(compile(source, "<install cell>", "exec"), namespace)
  (command, kwargs), = commands
  assert kwargs.get("check") is True
  assert command[:5] == [sys.executable, "-m", "pip", "install", "-q"]
  assert command[5:] == ["-e", str(checkout), f"jax[tpu]=={namespace['JAX_VERSION']}", "-f",
                         "https://storage.googleapis.com/jax-releases/libtpu_releases.html"]
  assert pathlib.Path.cwd() == checkout


def run_devices_cell(**settings) -> dict:
  namespace = {"__name__": "__main__", "SKIP_INSTALL": True, "JAX_VERSION": jax.__version__,
               "ALLOW_NON_TPU": False, **settings}
  exec(compile(devices_cell(), "<devices cell>", "exec"), namespace)
  return namespace


def test_a_runtime_without_a_tpu_stops_the_notebook_unless_allowed(capsys):
  if jax.default_backend() == "tpu":
    pytest.skip("this machine has a TPU")
  with pytest.raises(RuntimeError, match=r"not on a TPU\. In Colab: Runtime -> Change runtime "
                                         r"type -> a TPU .* set ALLOW_NON_TPU = True"):
    run_devices_cell()
  namespace = run_devices_cell(ALLOW_NON_TPU=True)
  assert namespace["BACKEND"] == jax.default_backend()
  assert f"WARNING: JAX runs on {jax.default_backend()!r}" in capsys.readouterr().out


def test_a_jax_imported_before_the_install_stops_the_notebook():
  with pytest.raises(RuntimeError, match="Restart session"):
    run_devices_cell(SKIP_INSTALL=False, JAX_VERSION="0.0.1", ALLOW_NON_TPU=True)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_with_quick_settings(tmp_path):
  out = tmp_path / "out"
  cells_file, displayed_file = tmp_path / "cells.json", tmp_path / "displayed.json"
  cells = [python_source(c) for c in load_notebook()["cells"] if c["cell_type"] == "code"]
  cells_file.write_text(json.dumps(cells), encoding="utf-8")
  runner = tmp_path / "run_notebook.py"
  runner.write_text(RUNNER, encoding="utf-8")
  env = {**os.environ, "ATTNLAB_NOTEBOOK_QUICK": "1", "ATTNLAB_NOTEBOOK_OUT": str(out),
         "ATTNLAB_NOTEBOOK_SKIP_INSTALL": "1", "ATTNLAB_NOTEBOOK_ALLOW_NON_TPU": "1",
         # Two devices, as a TPU has several cores: data parallelism, seeds as trials.
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         # tests/conftest.py's setting, for this fresh interpreter: compile fast.
         "JAX_DISABLE_MOST_OPTIMIZATIONS": "true", "JAX_PLATFORMS": "cpu",
         # The compilation cache tests/test_main.py's subprocesses share (never the user's):
         # the date model's programs are the same ones, and reruns skip compiling.
         "JAX_COMPILATION_CACHE_DIR": os.path.join(tempfile.gettempdir(),
                                                   "attnlab-test-xla-cache"),
         "MPLBACKEND": "Agg"}
  proc = subprocess.run([sys.executable, str(runner), str(cells_file), str(displayed_file)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
  assert "QUICK=True" in proc.stdout and "default backend: cpu" in proc.stdout
  assert "WARNING: JAX runs on 'cpu' (2 device(s)), not on a TPU" in proc.stdout
  displayed = json.loads(displayed_file.read_text(encoding="utf-8"))
  images = [pathlib.Path(d["value"]) for d in displayed if d["type"] == "Image"]

  # The date run: 20 steps (configs/date.py:quick), test metrics, heatmaps shown inline.
  summary = json.loads((out / "date" / "summary.json").read_text(encoding="utf-8"))
  assert summary["step"] == 20
  assert 0.0 <= summary["test"]["exact_match"] <= 1.0 and "loss" in summary["test"]
  heatmaps = [out / "date" / name for name in summary["heatmaps"]]
  assert heatmaps and all(p.is_file() and p.stat().st_size > 1000 for p in heatmaps)
  assert set(heatmaps) <= set(images)

  # The tiny long-sentence sweep, in the launcher's layout, and its report. On two devices
  # the tiny profile's 2 seeds are 2 trials each (a `seed` axis), data parallel over both.
  assert "4 trials (one per seed, each data parallel over 2 devices)" in proc.stdout
  root = out / "long_sentence"
  sweep = json.loads((root / "sweep.json").read_text(encoding="utf-8"))
  names = [t["name"] for t in sweep["trials"]]
  assert names == [f"variant={v},train_len=8,seed={s}" for v in ("none", "additive")
                   for s in (0, 1)]
  assert sweep["axes"] == ["variant", "train_len", "seed"]
  assert all(t["status"] == "ok" for t in sweep["trials"])
  for name in names:
    trial_summary = json.loads((root / name / "summary.json").read_text(encoding="utf-8"))
    trial_config = json.loads((root / name / "config.json").read_text(encoding="utf-8"))
    assert "seeds" not in trial_summary and trial_config["num_seeds"] == 1
    assert trial_config["seed"] == int(name[-1]) and trial_config["parallel"]["num_devices"] == 0
  report = root / "report"
  with (report / "results.csv").open(encoding="utf-8") as f:
    assert {row["num_seeds"] for row in csv.DictReader(f)} == {"2"}  # seeds pooled
  markdown = (report / "results.md").read_text(encoding="utf-8")
  assert "**exact match by source length**" in markdown and "| additive | 8 |" in markdown
  assert any(d["type"] == "Markdown" and "| additive | 8 |" in d["value"] for d in displayed)
  for figure in ("exact_match_vs_length__train_len-8.png", "bleu_vs_length__train_len-8.png",
                 "attention_grid__train_len-8.png"):
    assert report / figure in images, figure

  # What the settings hold is printed from the config and sweep files themselves.
  assert "configs/date.py:quick: 20 steps" in proc.stdout
  assert "long_sentence.py:tiny: 4 steps at most per trial, 2 seed(s) per setting" in proc.stdout
  assert "  variant: none, additive" in proc.stdout and "  train_len: 8" in proc.stdout
  # The atlas, written beside the report and shown inline in an iframe of its own.
  (page,) = [d["value"] for d in displayed if d["type"] == "HTML"]
  assert (report / "index.html").is_file() and page.startswith("<iframe srcdoc=")
  assert "attnlab atlas" in page and "chart-explorer-0" in page
