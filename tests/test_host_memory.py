"""attnlab.host_memory: glibc's malloc keeps freed memory, so XLA's CPU steps stop page-faulting
on fresh buffers, and nothing computed changes. Each case runs in a subprocess: the settings are
process-wide and must come before JAX starts its threads."""

import json
import subprocess
import sys

import pytest

from attnlab import host_memory
from tests.test_main import CONFIGS, ENV, REPO, run_main

needs_glibc = pytest.mark.skipif(host_memory.glibc() is None,
                                 reason="the C library is not glibc: mallopt is glibc's")

# A jitted program whose temporaries (16 MB products and more) are allocated afresh on every
# call, with a small result; the minor page faults of 20 calls after a warm-up, and a checksum.
FAULTS = """
import json, resource, sys
from attnlab import host_memory
kept = host_memory.keep_freed_memory() if sys.argv[1] == "keep" else False
import jax, jax.numpy as jnp
x = jax.random.normal(jax.random.key(0), (2048, 2048))
f = jax.jit(lambda x: jnp.sum(jnp.tanh(x @ x) @ jnp.tanh(x.T @ x), axis=0))
out = f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
  out = f(x).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
print(json.dumps({"kept": kept, "faults": faults, "sum": float(jnp.sum(out))}))
"""


def faults(mode):
  proc = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True,
                        env=ENV, cwd=REPO, timeout=300, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_glibc
def test_kept_memory_ends_the_page_faults_of_fresh_buffers_and_changes_no_number():
  default, kept = faults("default"), faults("keep")
  assert kept["kept"] and not default["kept"]
  # A 16 MB temporary is 4,096 pages when it comes back from the kernel. Measured here: about
  # 265,000 faults a call with glibc's defaults, 1,000-1,300 kept (those are not malloc's);
  # at the Multi30k step's shape, 65,000 a step and none.
  assert default["faults"] > 4096, default
  assert kept["faults"] < default["faults"] / 20, (kept, default)
  assert kept["sum"] == default["sum"]


def test_elsewhere_than_glibc_it_does_nothing_and_says_so(monkeypatch):
  monkeypatch.setattr(host_memory, "glibc", lambda: None)
  assert host_memory.keep_freed_memory() is False


@pytest.mark.slow
@needs_glibc
def test_training_gives_the_same_numbers_with_and_without_kept_memory(tmp_path):
  losses = {}
  for flag in ("--keep_host_memory", "--nokeep_host_memory"):
    workdir = tmp_path / flag.strip("-")
    run_main("--config", f"{CONFIGS / 'date.py'}:quick", "--workdir", str(workdir), flag,
             "--config.train.num_steps=20", "--config.train.log_every=5")
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    losses[flag] = [(r["step"], r["split"], r["loss"]) for r in map(json.loads, lines)]
  assert losses["--keep_host_memory"] == losses["--nokeep_host_memory"]
  assert len(losses["--keep_host_memory"]) >= 4
