"""Freed heap memory can be handed back on glibc Linux, and asking elsewhere is harmless."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from cansync.portable import heap


def test_the_trim_is_made_exactly_where_glibc_is():
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert heap.release_free_memory() is on_glibc
    assert heap.release_free_memory() is on_glibc  # again, nothing left to give: still fine


def test_where_there_is_no_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch):
    heap._glibc.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert heap.release_free_memory() is False
    finally:
        monkeypatch.undo()
        heap._glibc.cache_clear()


HEAPS_AFTER_THREADS = """
import ctypes, re, sys, tempfile, threading
from cansync.portable.heap import limit_heap_arenas
if sys.argv[1] == "limit":
    assert limit_heap_arenas(1)
held, ready, done = [], threading.Barrier(5), threading.Event()
def work():
    held.append([bytes(4096) for _ in range(64)])  # each thread mallocs and keeps its blocks
    ready.wait()
    done.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
ready.wait()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(len(re.findall(r"<heap nr=", open(report.name).read())))
done.set()
for thread in threads:
    thread.join()
"""


def heaps_after_four_threads(mode: str) -> int:
    """glibc's heaps (malloc_info) in a fresh interpreter once four threads have each allocated."""
    answer = subprocess.run([sys.executable, "-c", HEAPS_AFTER_THREADS, mode], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    return int(answer.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heaps are what is limited")
def test_threads_share_one_heap_once_limited():
    assert heaps_after_four_threads("default") >= 2  # the test can tell: unlimited, threads spread out
    assert heaps_after_four_threads("limit") == 1


def test_the_limit_is_refused_where_there_is_no_such_heap(monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError):
        heap.limit_heap_arenas(0)
    heap._glibc.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert heap.limit_heap_arenas(1) is False
    finally:
        monkeypatch.undo()
        heap._glibc.cache_clear()
