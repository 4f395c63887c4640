"""Host memory under XLA's CPU runtime: keep freed memory in the process.

XLA's CPU runtime allocates each call's buffers and temporaries afresh (``malloc``) and frees
them when the call ends. glibc's malloc hands large freed blocks back to the kernel: blocks
over its mmap threshold are unmapped, and the heaps of the per-thread arenas that XLA's worker
threads allocate from shrink. The next train step then writes to new pages, and each first
write is a page fault the kernel serves by zero-filling a page: at the Multi30k shape
(``experiments.benchmark_limits``) about 65,000 faults (255 MB) a step, a sixth of the step's
time (docs/benchmark.md, "Page faults").

``keep_freed_memory`` sets glibc's malloc (``mallopt``) so that freed memory stays in the
process for the next step: one arena for every thread (``M_ARENA_MAX`` 1), no blocks of their
own mapping (``M_MMAP_MAX`` 0), and the heap's free top kept up to 2 GiB
(``M_TRIM_THRESHOLD``). Nothing computed changes (the same programs run on the same values);
the process keeps its peak heap instead of returning it between steps. Call it first thing in
a process, before JAX starts its threads (``attnlab.main`` does, unless
``--nokeep_host_memory``): threads that have already allocated keep their own arenas.
Elsewhere than glibc (macOS, musl) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
M_ARENA_MAX = -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
_KEPT = []  # [True] once keep_freed_memory has set them in this process


def glibc() -> ctypes.CDLL | None:
  """The process's C library if it is glibc (it has ``gnu_get_libc_version`` and
  ``mallopt``), else None."""
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
  except OSError:
    return None
  if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
    return None
  return libc


def keep_freed_memory() -> bool:
  """Sets glibc's malloc to keep freed memory in the process (module doc). Returns whether
  it did: False where the C library is not glibc or refused a setting."""
  libc = glibc()
  if libc is None:
    return False
  libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
  libc.mallopt.restype = ctypes.c_int
  if all(libc.mallopt(param, value) == 1 for param, value in SETTINGS):
    _KEPT[:] = [True]
  return kept()


def kept() -> bool:
  """Whether ``keep_freed_memory`` has set glibc's malloc in this process (benchmarks record
  it beside their figures)."""
  return bool(_KEPT)
