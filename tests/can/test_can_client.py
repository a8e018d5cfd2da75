"""CanClient against a real store process: every sync route, streaming both ways, and its errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cansync.can import CanClient, CanServiceAuthError, CanServiceError, CanServiceUnavailable
from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess


async def ingest(store: StoreProcess, content: bytes, tags: str = "") -> dict:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{store.api}/ingest", files={"file": ("a.bin", content)}, data={"tags": tags})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_hashes_since_and_watermark(store: StoreProcess, client: CanClient) -> None:
    empty = await client.hashes()
    assert list(empty.assets) == [] and empty.watermark == 0
    a = await ingest(store, b"one")
    b = await ingest(store, b"two")
    full = await client.hashes()
    assert [d.hash for d in full.assets] == [a["hash"], b["hash"]]
    assert full.watermark == 2
    later = await client.hashes(since=1)
    assert [d.hash for d in later.assets] == [b["hash"]]
    assert later.assets[0].timestamp == b["timestamp"] and later.assets[0].size == 3


async def test_pull_streams_assets_in_order(store: StoreProcess, client: CanClient) -> None:
    big = os.urandom(2_000_003)
    small = b"small"
    a = await ingest(store, big, "big")
    b = await ingest(store, small)
    unknown = "a" * 64
    received: dict[str, bytes | None] = {}
    async with client.pull([a["hash"], unknown, b["hash"]]) as assets:
        async for asset in assets:
            if not asset.found:
                received[asset.hash] = None
                continue
            parts = [chunk async for chunk in asset.content(chunk_size=65536)]
            assert all(len(p) <= 65536 for p in parts)
            received[asset.hash] = b"".join(parts)
            assert asset.meta.size == len(received[asset.hash])
    assert received == {a["hash"]: big, unknown: None, b["hash"]: small}

    async with client.pull([a["hash"]], offset=1_000_000) as assets:
        [(item, tail)] = [(asset.item, b"".join([c async for c in asset.content()])) async for asset in assets]
    assert item.offset == 1_000_000 and tail == big[1_000_000:]


async def test_unread_content_is_skipped_when_moving_on(store: StoreProcess, client: CanClient) -> None:
    first = await ingest(store, os.urandom(500_000))
    second = await ingest(store, b"second asset")
    async with client.pull([first["hash"], second["hash"]]) as assets:
        seen: list[bytes | None] = []
        async for asset in assets:
            if asset.hash == second["hash"]:
                seen.append(b"".join([c async for c in asset.content()]))
            else:
                seen.append(None)  # the first asset's content is never read
    assert seen == [None, b"second asset"]


async def test_push_from_iterator_and_from_file(store: StoreProcess, client: CanClient, tmp_path: Path) -> None:
    content = os.urandom(1_500_000)
    digest = hashlib.sha256(content).hexdigest()
    meta = can_sync_pb2.AssetMeta(hash=digest, timestamp=1_690_000_000_000, size=len(content), tags=["pushed"])
    result = await client.push(meta, chunks_of(content, 100_000))
    assert result.created and result.meta.timestamp == 1_690_000_000_000

    path = tmp_path / "upload.bin"
    other = os.urandom(700_000)
    path.write_bytes(other)
    file_meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(other).hexdigest(), timestamp=5, size=len(other))
    assert (await client.push(file_meta, path)).created
    again = await client.push(file_meta, path)
    assert not again.created

    async with client.pull([digest, file_meta.hash]) as assets:
        got = [b"".join([c async for c in asset.content()]) async for asset in assets]
    assert got == [content, other]


async def test_push_with_wrong_hash_raises_an_error_naming_store_and_route(
    store: StoreProcess, client: CanClient
) -> None:
    meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(b"other").hexdigest(), size=4)
    with pytest.raises(CanServiceError) as caught:
        await client.push(meta, chunks_of(b"real", 2))
    assert caught.value.status == 400
    text = str(caught.value)
    assert store.url in text and "/sync/push" in text and "hashes to" in text
    assert list((await client.hashes()).assets) == []


async def test_update_meta_last_writer_wins(store: StoreProcess, client: CanClient) -> None:
    record = await ingest(store, b"meta")
    newer = can_sync_pb2.MetaUpdate(hash=record["hash"], tags=["x"], description="d", updated_ms=50, origin="o")
    result = await client.update_meta(newer)
    assert result.applied and list(result.meta.tags) == ["x"] and result.meta.description == "d"
    older = can_sync_pb2.MetaUpdate(hash=record["hash"], tags=["y"], updated_ms=49, origin="z", trashed=True)
    result = await client.update_meta(older)
    assert not result.applied and not result.meta.trashed
    with pytest.raises(CanServiceError) as caught:
        await client.update_meta(can_sync_pb2.MetaUpdate(hash="b" * 64, updated_ms=1))
    assert caught.value.status == 404


async def test_wrong_key_is_an_error_at_once_not_a_retry(store: StoreProcess) -> None:
    async with CanClient(store.url, SYNC_KEY + "-wrong", retry_for=30.0) as wrong:
        with pytest.raises(CanServiceAuthError) as caught:
            await wrong.hashes()
        assert caught.value.status == 403 and not isinstance(caught.value, CanServiceUnavailable)
        assert "wrong sync key" in str(caught.value)
        assert "set sync_api_key" in str(caught.value) and "\n" not in str(caught.value)
        # the live feed is refused the same way, not reconnected forever
        with pytest.raises(CanServiceAuthError):
            await anext(aiter(wrong.events()))
    async with CanClient(store.url, "", retry_for=30.0) as keyless:
        with pytest.raises(CanServiceAuthError) as missing:
            await keyless.hashes()
    assert missing.value.status == 401 and isinstance(missing.value, CanServiceError)
