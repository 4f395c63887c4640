"""The experiments/ entry points share one command-line style: absl flags as attnlab/main.py,
``--help`` exits 0, a bad flag is one ``error:`` line and exit status 2, the benchmarks name
their flags as the config does, and every command the README and docs/ show still parses."""

import importlib
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
from absl import flags

from experiments import cli, grid, sweep

REPO = pathlib.Path(__file__).resolve().parents[2]
# Entry points: the experiments/ modules run as `python -m experiments.NAME` (libraries such as
# atlas.py and grid.py, which report.py and sweep.py import, have no __main__ block).
# parent_death.py runs as a module too, but only as the launcher's wrapper of a trial's
# command: its arguments are a PID and that command, not flags.
INTERNAL = ("parent_death",)
ENTRY_POINTS = sorted(p.stem for p in (REPO / "experiments").glob("*.py")
                      if not p.stem.startswith("_") and p.stem not in INTERNAL
                      and '__name__ == "__main__"' in p.read_text())


def test_the_entry_points():
  assert {"sweep", "report", "benchmark", "benchmark_mechanisms",
          "date_wall_time"} <= set(ENTRY_POINTS)


def _flag_names(module) -> set[str]:
  fv = flags.FlagValues()
  module.define_flags(fv)
  return {name for name in fv if name not in ("flagfile", "undefok")}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_uses_absl_flags(name):
  source = (REPO / "experiments" / f"{name}.py").read_text(encoding="utf-8")
  assert "argparse" not in source
  assert "from absl import" in source and "cli.run(main)" in source


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_help_exits_0_and_lists_every_flag(name):
  result = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert "\nflags:\n" in result.stdout
  for flag in _flag_names(importlib.import_module(f"experiments.{name}")):
    assert re.search(rf"--(\[no\])?{flag}:", result.stdout), flag


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_a_bad_flag_is_one_line_and_exit_2(name):
  result = subprocess.run([sys.executable, "-m", f"experiments.{name}", "--no_such_flag=1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  err = result.stderr.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: ") and "no_such_flag" in err[0], err


def test_benchmarks_name_their_flags_as_the_config_does():
  from experiments import benchmark, benchmark_mechanisms
  for module in (benchmark, benchmark_mechanisms):
    names = _flag_names(module)
    assert {"emb_dim", "hidden_dim", "src_lens", "tgt_len"} <= names
    assert not {"emb", "hidden", "batch", "styles", "scores"} & names
  assert {"decoders", "attentions", "batch_sizes"} <= _flag_names(benchmark)
  assert {"decoder", "attention", "batch_size"} <= _flag_names(benchmark_mechanisms)


def test_benchmark_flags_reach_the_run():
  from experiments import benchmark
  fv = benchmark.parse_flags(["--emb_dim=8", "--hidden_dim=16", "--decoders=luong,none",
                              "--attentions=dot", "--batch_sizes=4,8"])
  assert (fv.emb_dim, fv.hidden_dim) == (8, 16)
  assert fv.decoders == ["luong", "none"] and fv.attentions == ["dot"]
  assert fv.batch_sizes == ["4", "8"]


def test_sweep_passes_trial_flags_on_and_refuses_typos(capsys):
  fv, extra = sweep.parse_flags(["--sweep=s.py", "--root=r", "--config.train.num_steps=10",
                                 "--jax_cache_dir=/tmp/c", "--only", "variant=dot,*", "a=*",
                                 "--keep_host_memory=false", "--max_parallel", "2"])
  assert extra == ["--config.train.num_steps=10", "--jax_cache_dir=/tmp/c",
                   "--keep_host_memory=false"]
  assert fv.only == ["variant=dot,*", "a=*"] and fv.max_parallel == 2
  for bad, needle in ((["--max_paralel=2"], "unknown flag --max_paralel"),
                      (["--config.train.num_steps", "10"],
                       "needs a value: --config.train.num_steps=VALUE"),
                      (["--mode=eval"], "unknown flag --mode")):
    with pytest.raises(SystemExit) as exit_info:
      sweep.parse_flags(["--sweep=s.py", "--root=r", *bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


# ---------------------------------------------------------------- the documented commands

def _documented_commands():
  """Every ``python -m experiments.X ...`` in README.md and docs/**/*.md: (file, module, args)."""
  found = []
  for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
    text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))  # join continued lines
    for match in re.finditer(r"python -m experiments\.(\w+)([^`\n]*)", text):
      args = shlex.split(match.group(2), comments=True)
      if args and args[-1] in (";", ")"):
        args = args[:-1]
      found.append((path.relative_to(REPO).as_posix(), match.group(1), args))
  return found


def test_the_docs_show_commands_of_every_kind():
  modules = {module for _, module, _ in _documented_commands()}
  assert {"sweep", "report", "benchmark", "date_wall_time"} <= modules


@pytest.mark.parametrize("where,name,args", _documented_commands(),
                         ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_documented_command_parses(where, name, args):
  module = importlib.import_module(f"experiments.{name}")
  try:
    parsed = module.parse_flags(args)
  except SystemExit as e:
    pytest.fail(f"{where}: python -m experiments.{name} {' '.join(args)}: exit {e.code}")
  fv = parsed[0] if isinstance(parsed, tuple) else parsed
  if name == "sweep":
    path, _ = grid.split_spec(fv.sweep)
    assert (REPO / path).is_file(), f"{where}: no sweep file {path}"
  if "--help" not in args:
    assert isinstance(cli.usage(fv, module.__doc__), str)
