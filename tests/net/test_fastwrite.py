"""The fast-write patch: pinned to the bindings it was written for, byte-identical through a real stream."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from iroh import iroh_ffi

from cansync.net import fastwrite
from cansync.net.endpoint import PeerConnection


def test_bindings_are_what_the_patch_was_written_for() -> None:
    # Fails on an iroh upgrade: re-read the new iroh_ffi.py, re-check the patch, then update the pins.
    assert fastwrite.iroh_version() == fastwrite.PATCHED_FOR_IROH_VERSION
    assert fastwrite.shipped_write_matches(), (
        "iroh_ffi._UniffiRustBufferBuilder.write/_reserve differ from the per-byte loop the patch replaces"
    )


def test_install_patches_once() -> None:
    status = fastwrite.install()
    assert status in (fastwrite.FastWriteStatus.INSTALLED, fastwrite.FastWriteStatus.ALREADY_INSTALLED)
    assert fastwrite.is_installed()
    assert fastwrite.install() is fastwrite.FastWriteStatus.ALREADY_INSTALLED


def test_changed_bindings_are_not_patched(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A write method other than the per-byte loop (as after an upgrade) is left alone, loudly."""
    builder = iroh_ffi._UniffiRustBufferBuilder

    def write(self, value):  # type: ignore[no-untyped-def]  # stands in for a future generated method
        with self._reserve(len(value)):
            self.rbuf.data[self.rbuf.len : self.rbuf.len + len(value)] = value

    monkeypatch.setattr(builder, "write", write)
    monkeypatch.delattr(builder, "_cansync_original_write", raising=False)
    with caplog.at_level(logging.WARNING, logger="cansync.net.fastwrite"):
        status = fastwrite.install()
    assert status is fastwrite.FastWriteStatus.BINDINGS_CHANGED
    assert builder.write is write
    assert "NOT patching" in caplog.text


async def test_random_writes_arrive_byte_identical(connection: tuple[PeerConnection, PeerConnection]) -> None:
    assert fastwrite.is_installed()  # open_endpoint installs it
    sender, receiver = connection
    rng = random.Random(20261126)
    sizes = [0, 1, 2, 15, 16, 17, 255, 4096, 65535, 65536, 300_000]
    sizes += [rng.randrange(0, 300_001) for _ in range(45)]
    kinds = [bytes, bytearray, memoryview]
    writes = []
    for i, size in enumerate(sizes):
        data = rng.randbytes(size)
        kind = kinds[i % 3]
        writes.append(
            (data, bytearray(data) if kind is bytearray else memoryview(data) if kind is memoryview else data)
        )

    send = await sender._conn.open_uni()  # the raw bindings' stream: this tests their copy, not our frames

    async def write_all() -> None:
        for _, value in writes:
            await send.write_all(value)
        await send.finish()

    async def read_all() -> list[bytes]:
        recv = await receiver._conn.accept_uni()
        got = [await recv.read_exact(len(data)) if data else b"" for data, _ in writes]
        assert await recv.read(1) == b""  # nothing extra
        return got

    _, received = await asyncio.wait_for(asyncio.gather(write_all(), read_all()), 60)
    for (expected, _), got in zip(writes, received, strict=True):
        assert got == expected


async def test_strings_also_pass_through_the_patched_copy() -> None:
    # str arguments (tickets, addresses) are lowered by the same method
    fastwrite.install()
    assert fastwrite.is_installed()
    eid = iroh_ffi.SecretKey.generate().public()
    assert str(iroh_ffi.EndpointId.from_string(str(eid))) == str(eid)
