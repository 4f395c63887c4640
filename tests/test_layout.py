"""The package's shape, and experiments/'s: no import cycles, no file over ~400 lines, no module
reaching into another's private names (``from x import _y`` or ``x._y``), floors that only
import downward (experiments/ standing on attnlab/, never the reverse)."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attnlab"
EXPERIMENTS = ROOT / "experiments"
TOP_LEVEL = ("attnlab", "experiments")


def sources() -> list[pathlib.Path]:
  """Every module of the package and of experiments/."""
  return sorted(PACKAGE.rglob("*.py")) + sorted(EXPERIMENTS.glob("*.py"))


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
  """The attnlab and experiments modules ``path`` imports anywhere (functions included),
  resolved to the longest existing module name."""
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
      if name.split(".")[0] in TOP_LEVEL:
        found.add(name)
  return found


def test_no_import_cycles():
  paths = {module_name(p): p for p in sources()}
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
  long = {str(p.relative_to(ROOT)): n for p in sources()
          if (n := len(p.read_text().splitlines())) > 410}
  assert not long, long


PRIVATE_IMPORT = re.compile(r"from (attnlab|experiments)\S* import .*\b_[a-z]")


def test_no_module_uses_another_modules_private_names():
  pattern = re.compile(r"\b(?!self\b|cls\b|os\b|sys\b)[a-z_][a-z0-9_]*\._[a-z]\w*")
  offenders = []
  for path in sources():
    for number, line in enumerate(path.read_text().splitlines(), 1):
      code = line.split("#")[0]
      if pattern.search(code) or PRIVATE_IMPORT.search(code):
        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
  assert not offenders, offenders


def test_tests_of_experiments_use_public_names_only():
  """What a test of experiments/ needs from a module is public (``sweep.main``, not
  ``sweep._helper``)."""
  names = "|".join(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem != "__init__")
  pattern = re.compile(rf"\b(?:{names})\._[a-z]\w*")
  offenders = []
  for path in sorted((ROOT / "tests" / "experiments").glob("*.py")):
    for number, line in enumerate(path.read_text().splitlines(), 1):
      code = line.split("#")[0]
      if pattern.search(code) or PRIVATE_IMPORT.search(code):
        offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
  assert not offenders, offenders


# Floors, lowest first: a module imports only from its own floor or lower ones
# (ARCHITECTURE.md: scores -> mechanisms -> decoders -> models -> training -> main).
FLOORS = [
    {"attnlab", "attnlab.data", "attnlab.options", "attnlab.losses", "attnlab.parallel",
     "attnlab.checkpointing", "attnlab.summaries", "attnlab.run_record", "attnlab.corpus_scores",
     "attnlab.host_memory"},
    {"attnlab.attention", "attnlab.metrics", "attnlab.intervals", "attnlab.comparisons",
     "attnlab.defaults", "attnlab.run_config", "attnlab.sweeps"},
    {"attnlab.models", "attnlab.length_buckets", "attnlab.position_metrics", "attnlab.export",
     "attnlab.plots", "attnlab.atlas", "attnlab.results"},
    {"attnlab.decoding", "attnlab.config"},
    {"attnlab.training"},
    {"attnlab.main", "attnlab.average"},
]


def test_lower_floors_never_import_upper_ones():
  paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
  top = lambda name: ".".join(name.split(".")[:2])  # noqa: E731
  floor = {name: i for i, names in enumerate(FLOORS) for name in names}
  assert set(map(top, paths)) <= set(floor), set(map(top, paths)) - set(floor)
  upward = [f"{name} -> {dep}" for name, path in paths.items()
            for dep in imports_of(path, set(paths)) if floor[top(dep)] > floor[top(name)]]
  assert not upward, upward


# experiments/, above every floor of attnlab, lowest first (README.md's Layout): the shared
# command line; one job each on the library (a sweep's grid, lock records, the report's tables
# and figures, the atlas); what builds on those; the Ray launcher on the local queue; the
# entry points (python -m experiments.NAME); benchmark_limits, which reuses benchmark's --out
# and flops' census; benchmark_torch, benchmark_profile, benchmark_products and benchmark_padding,
# which reuse benchmark_limits (its train step, its machine record).
EXPERIMENT_FLOORS = [
    {"experiments", "experiments.cli", "experiments.parent_death"},
    {"experiments.grid", "experiments.locks", "experiments.report_tables",
     "experiments.report_figures", "experiments.atlas", "experiments.benchmark_grid",
     "experiments.flops"},
    {"experiments.launch", "experiments.report_positions", "experiments.report_comparison"},
    {"experiments.ray_launch"},
    {"experiments.sweep", "experiments.report", "experiments.benchmark",
     "experiments.benchmark_mechanisms", "experiments.date_wall_time", "experiments.screenshot"},
    {"experiments.benchmark_limits"},
    {"experiments.benchmark_torch", "experiments.benchmark_profile",
     "experiments.benchmark_products", "experiments.benchmark_padding"},
]


def test_experiments_stand_on_attnlab_and_import_downward():
  paths = {module_name(p): p for p in sources()}
  floor = {name: i for i, names in enumerate(EXPERIMENT_FLOORS) for name in names}
  mine = {name for name in paths if name.split(".")[0] == "experiments"}
  assert mine == set(floor), mine ^ set(floor)
  upward = [f"{name} -> {dep}" for name, path in paths.items()
            for dep in imports_of(path, set(paths))
            if dep.split(".")[0] == "experiments"
            and (name not in floor or floor[dep] > floor[name])]
  assert not upward, upward  # attnlab never imports experiments either
