"""Replace the iroh bindings' per-byte argument copy with one memory move.

uniffi 0.31.2 (which generated iroh 1.2.0's iroh_ffi.py) lowers every `bytes` argument into a Rust
buffer with a Python `for` loop, one byte per iteration: sends crawl at about 7 MB/s with the CPU all
Python. `_UniffiRustBufferBuilder.write` is replaced here with a single `ctypes.memmove`, but only
after checking that the shipped method (and the `_reserve` helper it relies on) is exactly the code
this replacement was written for. Any other bindings are left alone and a warning is logged.
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import logging
import textwrap
from importlib import metadata
from typing import Any

log = logging.getLogger(__name__)

# What the patch was written against; tests fail when either changes, so an upgrade is re-checked.
PATCHED_FOR_IROH_VERSION = "1.2.0"

EXPECTED_WRITE_SOURCE = """\
def write(self, value):
    with self._reserve(len(value)):
        for i, byte in enumerate(value):
            self.rbuf.data[self.rbuf.len + i] = byte
"""

EXPECTED_RESERVE_SOURCE = """\
@contextlib.contextmanager
def _reserve(self, num_bytes):
    if self.rbuf.len + num_bytes > self.rbuf.capacity:
        self.rbuf = _UniffiRustBuffer.reserve(self.rbuf, num_bytes)
    yield None
    self.rbuf.len += num_bytes
"""


class FastWriteStatus(enum.Enum):
    INSTALLED = "installed"  # patched now
    ALREADY_INSTALLED = "already installed"
    BINDINGS_CHANGED = "bindings changed: not patched"
    BINDINGS_MISSING = "iroh bindings not importable: not patched"


def _builder_class() -> Any:
    from iroh import iroh_ffi

    return getattr(iroh_ffi, "_UniffiRustBufferBuilder", None)


def iroh_version() -> str | None:
    try:
        return metadata.version("iroh")
    except metadata.PackageNotFoundError:
        return None


def _source_of(func: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def _fast_write(self: Any, value: Any) -> None:
    """Copy a bytes-like argument into the Rust buffer with one memmove (same result as the loop)."""
    if not isinstance(value, bytes):
        view = memoryview(value)
        if view.itemsize != 1:
            raise TypeError(f"expected a byte buffer, got items of {view.itemsize} bytes")
        value = view.tobytes()  # one C copy; bytearray/memoryview are rare on the hot path
    n = len(value)
    with self._reserve(n):
        if n:
            dst = ctypes.cast(self.rbuf.data, ctypes.c_void_p).value
            assert dst is not None
            ctypes.memmove(dst + self.rbuf.len, value, n)


_fast_write.cansync_fastwrite = True  # type: ignore[attr-defined]


def shipped_write_matches() -> bool:
    """True when the bindings' write/_reserve are byte-for-byte the code the patch replaces."""
    builder = _builder_class()
    if builder is None:
        return False
    original = getattr(builder, "_cansync_original_write", builder.write)
    return _source_of(original) == EXPECTED_WRITE_SOURCE and _source_of(builder._reserve) == EXPECTED_RESERVE_SOURCE


def is_installed() -> bool:
    builder = _builder_class()
    return builder is not None and bool(getattr(builder.write, "cansync_fastwrite", False))


def install() -> FastWriteStatus:
    """Install the memmove write if, and only if, the shipped method is the per-byte loop."""
    try:
        builder = _builder_class()
    except ImportError:
        log.warning("iroh bindings are not importable; the fast-write patch was not installed")
        return FastWriteStatus.BINDINGS_MISSING
    if builder is None:
        log.warning("iroh bindings have no _UniffiRustBufferBuilder; the fast-write patch was not installed")
        return FastWriteStatus.BINDINGS_CHANGED
    if getattr(builder.write, "cansync_fastwrite", False):
        return FastWriteStatus.ALREADY_INSTALLED
    if not shipped_write_matches():
        log.warning(
            "iroh %s: _UniffiRustBufferBuilder.write is not the per-byte loop cansync's fast-write patch "
            "was written for (iroh %s); NOT patching. If sends run near 7 MB/s, re-check "
            "cansync/net/fastwrite.py against the new bindings.",
            iroh_version(),
            PATCHED_FOR_IROH_VERSION,
        )
        return FastWriteStatus.BINDINGS_CHANGED
    if iroh_version() != PATCHED_FOR_IROH_VERSION:
        log.warning(
            "iroh %s: the write method is unchanged from %s, patching it; re-run tests/net to confirm",
            iroh_version(),
            PATCHED_FOR_IROH_VERSION,
        )
    builder._cansync_original_write = builder.write
    builder.write = _fast_write
    return FastWriteStatus.INSTALLED


def uninstall() -> bool:
    """Put the shipped method back (benchmarks compare both); True if something was restored."""
    builder = _builder_class()
    original = getattr(builder, "_cansync_original_write", None)
    if original is None:
        return False
    builder.write = original
    del builder._cansync_original_write
    return True
