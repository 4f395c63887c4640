"""Configs are data: every file in configs/ and configs/sweeps/ loads without JAX or Flax,
takes its variants through ``attnlab.defaults.parse_arg``, and validates."""

import pathlib
import subprocess
import sys

import pytest

from attnlab import defaults
from attnlab.config import validate

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(CONFIGS.glob("*.py")) + sorted((CONFIGS / "sweeps").glob("*.py"))


def test_reading_every_config_file_loads_no_jax_or_flax():
  script = f"""
import runpy, sys
for path in {[str(p) for p in FILES]!r}:
  module = runpy.run_path(path)
  module["get_config"]()
  if "get_sweep" in module:
    module["get_sweep"]()
heavy = sorted(m for m in ("jax", "flax", "optax", "orbax") if m in sys.modules)
assert not heavy, heavy
"""
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", [p for p in FILES if p.parent == CONFIGS], ids=lambda p: p.name)
def test_every_config_has_a_valid_quick_variant_and_rejects_unknown_ones(path):
  module = defaults.load_config_file(path)
  config = module.get_config("quick")
  if config.data.task != "corpus" or pathlib.Path(config.data.path).exists():
    validate(config)
  assert config.train.num_steps <= 50
  with pytest.raises(ValueError, match="unknown config argument 'quik'"):
    module.get_config("quik")


def test_parse_arg_profiles_and_types():
  assert defaults.parse_arg("quick,src=en,attention=false", profile="", profiles=("", "quick"),
                            src="de", attention=True) == {"profile": "quick", "src": "en",
                                                          "attention": False}
  with pytest.raises(ValueError, match="unknown argument 'srcc'"):
    defaults.parse_arg("srcc=en", profile="", src="de")
