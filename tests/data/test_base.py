"""Tests for attnlab.data.base (the task registry) and the data package's import structure."""

import ast
import pathlib
import subprocess
import sys

import ml_collections
import pytest

from attnlab.data import base
from attnlab.data.text import WhitespaceTokenizer
from attnlab.data.vocab import SPECIALS, Vocab

DATA = pathlib.Path(base.__file__).parent


def _data_imports(path: pathlib.Path) -> set[str]:
  """The attnlab.data modules that `path` imports at module level or anywhere inside."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module == "attnlab.data":
        found.update(alias.name for alias in node.names)
      elif node.module.startswith("attnlab.data."):
        found.add(node.module.split(".")[2])
    elif isinstance(node, ast.Import):
      found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("attnlab.data."))
  return found


def test_no_import_cycles_in_the_data_package():
  modules = {p.stem for p in DATA.glob("*.py") if p.stem != "__init__"}
  graph = {m: _data_imports(DATA / f"{m}.py") & modules for m in modules}
  assert graph["corpus"] >= {"base"} and "corpus" not in graph["tasks"]
  done, visiting = set(), []

  def visit(module):
    if module in visiting:
      raise AssertionError(f"import cycle: {' -> '.join(visiting + [module])}")
    if module not in done:
      visiting.append(module)
      for dependency in graph[module]:
        visit(dependency)
      visiting.pop()
      done.add(module)

  for module in sorted(graph):
    visit(module)


@pytest.mark.parametrize("module", ["attnlab.data.tasks", "attnlab.data.corpus",
                                    "attnlab.data.base", "attnlab.config"])
def test_every_task_is_registered_whatever_is_imported_first(module):
  code = f"import {module}, attnlab.data.base as b; print(sorted(b.TASKS))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "['copy', 'corpus', 'date', 'reverse', 'toy_translation']"


def test_register_task_with_defaults(monkeypatch):
  monkeypatch.setattr(base, "TASKS", dict(base.TASKS))
  monkeypatch.setattr(base, "TASK_DEFAULTS", dict(base.TASK_DEFAULTS))

  def defaults(c):
    # Longest sequence.
    c.max_len = 7

  @base.register_task("sort", defaults=defaults)
  def sort_task(data_config):
    vocab = Vocab(SPECIALS + ("a", "b"))
    return base.TaskData("sort", (), (), (), vocab, vocab, is_text=False, has_alignment=False)

  config = base.default_data_config("sort")
  assert config.task == "sort" and config.max_len == 7 and config.train_max_src_len == 0
  task = base.build_task(config)
  assert base.TASKS["sort"] is sort_task
  # A task that names no tokenizer gets whitespace-separated tokens on both sides.
  assert task.src_tokenizer == task.tgt_tokenizer == WhitespaceTokenizer()
  with pytest.raises(ValueError, match="already registered"):
    base.register_task("sort")(sort_task)
  with pytest.raises(ValueError, match="unknown task 'sortt'; valid tasks: copy, corpus"):
    base.build_task(ml_collections.ConfigDict({"task": "sortt"}))
