"""Shared pytest setup: fast compilation, float32 everywhere, small fixed seeds."""

import jax

# Tests compile many tiny programs; optimizing them costs more than running them.
jax.config.update("jax_disable_most_optimizations", True)
