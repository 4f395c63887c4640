"""Shared pytest setup: fast compilation for the many tiny programs tests build."""

import jax

# Optimizing test programs costs more than running them.
jax.config.update("jax_disable_most_optimizations", True)
# (XLA_FLAGS=--xla_cpu_use_fusion_emitters=false compiles tiny programs faster, but then a
# run resumed from restored arrays is no longer bitwise equal to an uninterrupted one.)
