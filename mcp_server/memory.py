"""The server process's native memory: glibc keeps memory that tool calls freed unless told otherwise.

Measured with bench/bench_memory_soak.py (mixed calls of every tool over stdio, after a warm-up): Python objects
stay flat (tracemalloc) while RSS grew 93-290 KB per call. Tool calls run on the SDK's worker threads, beside
torch's threads and tensorize's pool, and glibc gives each new thread its own malloc arena (up to 8 per core);
memory freed in an arena stays there, and the main heap only returns its top. Capping the arenas at two cut the
growth to 17-46 KB per call; also releasing free pages after each call (malloc_trim, a few ms) makes it flat.
Figures in docs/reliability.md. Only on Linux with glibc; elsewhere these do nothing.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_ARENA_MAX = -8  # glibc mallopt parameter (malloc.h)
MALLOC_ARENAS = 2


@functools.cache
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018  # both exist in glibc only
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before threads start); returns whether the cap was set.

    MALLOC_ARENA_MAX in the environment still wins.
    """
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def release_freed_memory() -> None:
    """Give the pages of freed memory back to the system (after a tool call: its arrays and tensors are gone)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
