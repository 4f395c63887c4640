"""experiments/colab_tpu.ipynb: a clean nbformat-4 notebook whose code runs top to bottom.

The execution test runs the notebook's code cells, in order, in one namespace, in a fresh
interpreter on CPU with the notebook's tiny settings (``ATTNLAB_NOTEBOOK_QUICK=1``), the way
Colab's "Run all" would, minus the shell and magic lines (``!pip install``, ``%cd``): the
subprocess starts in the repository root, where ``%cd`` would have left it. ``IPython.display``
is replaced by a recorder (CI installs no IPython), so the test also sees what the notebook
shows inline.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

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


def display(*objs):
  for obj in objs:
    displayed.append({"type": type(obj).__name__,
                      "value": getattr(obj, "filename", None) or getattr(obj, "data", None)})


ipython = types.ModuleType("IPython")
# matplotlib looks for a loaded IPython's version_info; from 8.24 on it leaves IPython alone.
ipython.version_info = (8, 24, 0)
ipython.display = types.ModuleType("IPython.display")
ipython.display.Image, ipython.display.Markdown = Image, Markdown
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
  # Every Python part compiles; the install is a shell line from a placeholder REPO_URL.
  for cell in cells:
    if cell["cell_type"] == "code":
      compile(python_source(cell), "<cell>", "exec")
  assert "REPO_URL" in code[0] and "!pip install" in code[0]
  assert "ATTNLAB_NOTEBOOK_QUICK" in code[1]  # the settings cell comes right after install


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_with_quick_settings(tmp_path):
  out = tmp_path / "out"
  cells_file, displayed_file = tmp_path / "cells.json", tmp_path / "displayed.json"
  cells = [python_source(c) for c in load_notebook()["cells"] if c["cell_type"] == "code"]
  cells_file.write_text(json.dumps(cells), encoding="utf-8")
  runner = tmp_path / "run_notebook.py"
  runner.write_text(RUNNER, encoding="utf-8")
  env = {**os.environ, "ATTNLAB_NOTEBOOK_QUICK": "1", "ATTNLAB_NOTEBOOK_OUT": str(out),
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
  displayed = json.loads(displayed_file.read_text(encoding="utf-8"))
  images = [pathlib.Path(d["value"]) for d in displayed if d["type"] == "Image"]

  # The date run: 20 steps (configs/date.py:quick), test metrics, heatmaps shown inline.
  summary = json.loads((out / "date" / "summary.json").read_text(encoding="utf-8"))
  assert summary["step"] == 20
  assert 0.0 <= summary["test"]["exact_match"] <= 1.0 and "loss" in summary["test"]
  heatmaps = [out / "date" / name for name in summary["heatmaps"]]
  assert heatmaps and all(p.is_file() and p.stat().st_size > 1000 for p in heatmaps)
  assert set(heatmaps) <= set(images)

  # The tiny long-sentence sweep, in the launcher's layout, and its report.
  root = out / "long_sentence"
  sweep = json.loads((root / "sweep.json").read_text(encoding="utf-8"))
  names = [t["name"] for t in sweep["trials"]]
  assert names == ["variant=none,train_len=8", "variant=additive,train_len=8"]
  assert all(t["status"] == "ok" for t in sweep["trials"])
  for name in names:
    trial_summary = json.loads((root / name / "summary.json").read_text(encoding="utf-8"))
    assert len(trial_summary["seeds"]) == 2  # the tiny profile's vmapped seeds
  report = root / "report"
  assert (report / "results.csv").is_file()
  markdown = (report / "results.md").read_text(encoding="utf-8")
  assert "**exact match by source length**" in markdown and "| additive | 8 |" in markdown
  assert any(d["type"] == "Markdown" and "| additive | 8 |" in d["value"] for d in displayed)
  for figure in ("exact_match_vs_length__train_len-8.png", "bleu_vs_length__train_len-8.png",
                 "attention_grid__train_len-8.png"):
    assert report / figure in images, figure
