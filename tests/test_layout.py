"""The package's shape: no import cycles, no file over ~400 lines, no module reaching into
another's private names (``from x import _y`` or ``x._y``)."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attnlab"


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
  """The attnlab modules ``path`` imports anywhere (functions included), resolved to the
  longest existing module name."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
    for name in names:
      while name and name not in modules:
        name = name.rpartition(".")[0]
      if name.startswith("attnlab"):
        found.add(name)
  return found


def test_no_import_cycles():
  paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {name: imports_of(path, set(paths)) - {name} for name, path in paths.items()}
  # A package's __init__ re-exporting its children is not a cycle of the children.
  graph = {name: {d for d in deps if not (d == name.rpartition(".")[0] or
                                          name.startswith(d + ".") and paths[d].name == "__init__.py")}
           for name, deps in graph.items()}
  state, cycles = {}, []

  def visit(node, stack):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        cycles.append(stack[stack.index(dep):] + [dep])
      elif dep not in state:
        visit(dep, stack + [dep])
    state[node] = "done"

  for name in sorted(graph):
    if name not in state:
      visit(name, [name])
  assert not cycles, cycles


def test_no_file_over_400_lines():
  long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
          if (n := len(p.read_text().splitlines())) > 410}
  assert not long, long


def test_no_module_uses_another_modules_private_names():
  pattern = re.compile(r"\b(?!self\b|cls\b|os\b|sys\b)[a-z_][a-z0-9_]*\._[a-z]\w*")
  offenders = []
  for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "experiments").glob("*.py")):
    for number, line in enumerate(path.read_text().splitlines(), 1):
      code = line.split("#")[0]
      if pattern.search(code) or re.search(r"from attnlab\S* import .*\b_[a-z]", code):
        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
  assert not offenders, offenders


# Floors, lowest first: a module imports only from its own floor or lower ones
# (ARCHITECTURE.md: scores -> mechanisms -> decoders -> models -> training -> main).
FLOORS = [
    {"attnlab", "attnlab.data", "attnlab.options", "attnlab.losses", "attnlab.parallel",
     "attnlab.checkpointing", "attnlab.summaries"},
    {"attnlab.attention", "attnlab.metrics", "attnlab.intervals", "attnlab.comparisons",
     "attnlab.defaults", "attnlab.run_config"},
    {"attnlab.models", "attnlab.length_buckets", "attnlab.position_metrics", "attnlab.export",
     "attnlab.plots", "attnlab.atlas"},
    {"attnlab.decoding", "attnlab.config"},
    {"attnlab.training"},
    {"attnlab.main"},
]


def test_lower_floors_never_import_upper_ones():
  paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
  top = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
  floor = {name: i for i, names in enumerate(FLOORS) for name in names}
  assert set(map(top, paths)) <= set(floor), set(map(top, paths)) - set(floor)
  upward = [f"{name} -> {dep}" for name, path in paths.items()
            for dep in imports_of(path, set(paths)) if floor[top(dep)] > floor[top(name)]]
  assert not upward, upward
