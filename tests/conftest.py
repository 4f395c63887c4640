"""Shared pytest setup: fast compilation for the many tiny programs tests build."""

import os
import pathlib

import jax
import pytest

# Optimizing test programs costs more than running them.
jax.config.update("jax_disable_most_optimizations", True)
# (XLA_FLAGS=--xla_cpu_use_fusion_emitters=false compiles tiny programs faster, but then a
# run resumed from restored arrays is no longer bitwise equal to an uninterrupted one.)

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent compilation cache per test session, shared by its xdist workers: many
  tests compile the same tiny programs (in both workers, and in functions jitted afresh per
  run), and each is then compiled once. It lives in the session's base temporary folder
  (a worker's is popen-gwN inside it), which pytest removes with old sessions."""
  base = tmp_path_factory.getbasetemp()
  shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  jax.config.update("jax_compilation_cache_dir", str(shared / "jax-compilation-cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return shared / "jax-compilation-cache"


@pytest.fixture(scope="session")
def beam_run(tmp_path_factory):
  """A tiny long-sentence run (one seed, 4 steps, validation every 2) trained on sources of
  at most 4 words, whose final test evaluation also decodes with beam 2
  (``eval.test_beam_sizes``): (workdir, summary). Shared by the training and report tests."""
  from attnlab.config import validate
  from attnlab.defaults import load_config_file
  from attnlab.training import train_and_evaluate
  config = load_config_file(str(CONFIGS / "sweeps" / "long_sentence.py")).get_config("tiny")
  config.num_seeds = 1
  config.data.train_max_src_len = 4  # test buckets 5-6 and >6 are beyond the training lengths
  config.train.eval_every = 2
  config.eval.test_beam_sizes = (2,)
  validate(config)
  workdir = tmp_path_factory.mktemp("beam_run") / "run"
  return workdir, train_and_evaluate(config, str(workdir))
