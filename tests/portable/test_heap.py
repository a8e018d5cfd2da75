"""Freed heap memory can be handed back on glibc Linux, and asking elsewhere is harmless."""

from __future__ import annotations

import platform
import sys

import pytest

from cansync.portable import heap


def test_the_trim_is_made_exactly_where_glibc_is():
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert heap.release_free_memory() is on_glibc
    assert heap.release_free_memory() is on_glibc  # again, nothing left to give: still fine


def test_where_there_is_no_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch):
    heap._malloc_trim.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert heap.release_free_memory() is False
    finally:
        monkeypatch.undo()
        heap._malloc_trim.cache_clear()
