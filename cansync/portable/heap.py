"""Keep the agent's heap compact: one shared glibc heap, and freed memory given back after a burst.

Loading a million-asset snapshot or journaling a big store's first catch-up allocates and frees
hundreds of megabytes of small objects; glibc keeps the freed pages mapped, so the agent's RSS stays
at the burst's peak (about 50 MB more at a million assets) until `malloc_trim` hands them back. Other
C libraries (macOS, Windows, musl) either return memory on their own or lack the call: there it does
nothing.

glibc also gives each new thread a heap of its own (up to 8 per core), and memory stays resident in the
agent's worker threads' heaps (journal, snapshots, staging): beside a million assets the agent settled at
447-455 MB after a first meeting with a heap per thread, 380-392 MB with one heap shared by all
(bench/reconcile_bench.py).
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from functools import cache

_M_ARENA_MAX = -8  # glibc's mallopt parameter: the most heaps its threads may spread over


@cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, if this process runs on it (malloc_trim is glibc's own), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the symbols already loaded into this process, libc's among them: find_library would run
        # `ldconfig -p` in a child process at every start
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None


def _malloc_trim() -> Callable[[int], int] | None:
    libc = _glibc()
    if libc is None:
        return None
    trim = libc.malloc_trim
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return freed heap pages to the system where the C library can; True if it was asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def limit_heap_arenas(count: int) -> bool:
    """Let the threads started from now on share at most `count` glibc heaps; True if it was set."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    libc = _glibc()
    if libc is None:  # other allocators have no such heaps
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, count))
