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


def test_the_multi30k_tutorial_replica_has_the_tutorials_recipe():
  from attnlab.defaults import load_config_file
  module = load_config_file(str(CONFIGS / "multi30k.py"))
  config = module.get_config("tutorial=true")
  m, t = config.model, config.train
  assert (m.cell, m.bidirectional, m.decoder, m.attention) == ("gru", True, "bahdanau",
                                                                 "additive")
  assert (m.emb_dim, m.hidden_dim, m.dropout_rate) == (256, 512, 0.5)
  assert (t.learning_rate, t.schedule, t.warmup_steps, t.label_smoothing) == (1e-3, "constant",
                                                                               0, 0.0)
  assert config.batching.batch_size == 128
  # 10 epochs of the 29,000 training pairs in batches of 128.
  assert t.num_steps == 10 * -(-29000 // 128)


def test_the_multi30k_search_never_reads_the_test_set():
  from attnlab.defaults import load_config_file
  module = load_config_file(str(CONFIGS / "sweeps" / "multi30k_search.py"))
  splits = module.get_config().data.splits
  assert splits[2] == splits[1] == "val" and "test_2016_flickr" not in splits


def test_the_multi30k_search_pins_every_factor_and_a_later_pass_adds_only_new_settings(
    monkeypatch):
  import json
  from attnlab.defaults import load_config_file
  module = load_config_file(str(CONFIGS / "sweeps" / "multi30k_search.py"))
  every = module.settings()
  # The committed trials ran with what their labels say (results/multi30k_search).
  for workdir in sorted((CONFIGS.parent / "results" / "multi30k_search").glob("setting=*")):
    config = json.loads((workdir / "config.json").read_text())
    for key, value in every[workdir.name.removeprefix("setting=")].items():
      section, field = key.split(".")
      assert config[section][field] == value, (workdir.name, key)
  monkeypatch.setattr(module, "CENTRES", module.CENTRES[:1])
  first = module.settings()
  assert list(first) == ["default", "learning_rate=0.001", "learning_rate=0.004", "dropout=0.5",
                         "label_smoothing=0.0"]
  assert all(len(overrides) == 3 for overrides in first.values())
  monkeypatch.setattr(module, "CENTRES", module.CENTRES + (
      {"learning_rate": 2e-3, "dropout": 0.5, "label_smoothing": 0.1},))
  both = module.settings()
  assert list(both)[:5] == list(first) and all(both[k] == first[k] for k in first)
  assert list(both)[5:] == ["learning_rate=0.001+dropout=0.5", "learning_rate=0.004+dropout=0.5",
                            "dropout=0.5+label_smoothing=0.0"]
  assert both["learning_rate=0.001+dropout=0.5"] == {
      "train.learning_rate": 1e-3, "model.dropout_rate": 0.5, "train.label_smoothing": 0.1}
  # Pass 3's centre (learning rate 4e-3, dropout 0.5) reaches three settings earlier passes ran
  # (learning rates 1e-3 and 2e-3 at dropout 0.5, dropout 0.3 at 4e-3): one new trial.
  monkeypatch.setattr(module, "CENTRES", module.CENTRES + (
      {"learning_rate": 4e-3, "dropout": 0.5, "label_smoothing": 0.1},))
  three = module.settings()
  assert list(three)[:8] == list(both)
  assert list(three)[8:] == ["learning_rate=0.004+dropout=0.5+label_smoothing=0.0"]


def test_the_multi30k_recipe_is_the_search_s_last_centre():
  """configs/multi30k.py trains with the setting its search chose: the last pass's centre
  (the search ends when a pass's centre wins; configs/sweeps/multi30k_search.py)."""
  from attnlab.defaults import load_config_file
  search = load_config_file(str(CONFIGS / "sweeps" / "multi30k_search.py"))
  config = load_config_file(str(CONFIGS / "multi30k.py")).get_config()
  for name, (key, _) in search.FACTORS.items():
    section, field = key.split(".")
    assert config[section][field] == search.CENTRES[-1][name], name


def test_the_multi30k_sweep_reports_intervals_over_seeds_and_sentences():
  """The README quotes Multi30k's BLEU as a mean over seeds with an interval about a new seed
  on a new test set: the sweep's report defaults say so, and its grid is model x seed."""
  from attnlab.defaults import load_config_file
  from attnlab.results import POPULATIONS
  module = load_config_file(str(CONFIGS / "sweeps" / "multi30k.py"))
  report = module.get_report()
  assert report["intervals"] == "seeds_and_sentences" and report["intervals"] in POPULATIONS
  grid = module.get_sweep()
  assert list(grid) == ["model", "seed"] and list(grid["model"]) == ["attention", "none",
                                                                     "tutorial"]
  assert len(grid["seed"]) == 3 and len(module.get_sweep("seeds=5")["seed"]) == 5
