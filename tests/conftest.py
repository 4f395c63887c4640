"""Shared pytest setup: fast compilation for the many tiny programs tests build."""

import os

# XLA's CPU fusion emitters cost more compile time than they save on tiny test
# programs (about 2x on one compile here). Set before the backend starts; the
# subprocesses that tests launch inherit it.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")

import jax  # noqa: E402

# Optimizing test programs costs more than running them.
jax.config.update("jax_disable_most_optimizations", True)
