"""Give freed heap memory back to the operating system after a burst of allocation.

Loading a million-asset snapshot or journaling a big store's first catch-up allocates and frees
hundreds of megabytes of small objects; glibc keeps the freed pages mapped, so the agent's RSS stays
at the burst's peak (about 50 MB more at a million assets) until `malloc_trim` hands them back. Other
C libraries (macOS, Windows, musl) either return memory on their own or lack the call: there it does
nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # the symbols already loaded into this process, libc's among them: find_library would run
        # `ldconfig -p` in a child process at every start
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Return freed heap pages to the system where the C library can; True if it was asked."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
