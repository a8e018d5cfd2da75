"""CanClient when the store goes away: retries until it is back, gives up after retry_for with a
message naming the store and route, and an event stream that resumes without loss or repeats."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import httpx
import pytest
from tcp_proxy import TcpProxy

from cansync.can import CanClient, CanServiceUnavailable, StoreEvent
from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess, free_port, start_store_process


async def ingest(store: StoreProcess, content: bytes) -> dict:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{store.api}/ingest", files={"file": ("e.txt", content)})
    assert response.status_code == 200, response.text
    return response.json()["data"]


class EventCollector:
    """Runs client.events() in the background and keeps what arrives."""

    def __init__(self, client: CanClient, since: int = 0) -> None:
        self.events: list[StoreEvent] = []
        self._task = asyncio.create_task(self._run(client, since))

    async def _run(self, client: CanClient, since: int) -> None:
        async for event in client.events(since=since):
            self.events.append(event)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[StoreEvent]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            if self._task.done():
                self._task.result()  # surface the error
            assert time.monotonic() < deadline, f"got {len(self.events)} of {count} events"
            await asyncio.sleep(0.02)
        return self.events

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


async def test_calls_retry_while_the_store_is_down_then_succeed(tmp_path: Path) -> None:
    port = free_port()
    content = b"pushed while the store was still starting"
    upload = tmp_path / "upload.bin"
    upload.write_bytes(content)
    meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(content).hexdigest(), timestamp=42, size=len(content))
    async with CanClient(f"http://127.0.0.1:{port}", SYNC_KEY, retry_for=30.0) as client:
        hashes = asyncio.create_task(client.hashes())
        push = asyncio.create_task(client.push(meta, upload))
        await asyncio.sleep(1.5)
        assert not hashes.done() and not push.done()  # still retrying
        store = await asyncio.to_thread(start_store_process, tmp_path / "store", port=port, sync_key=SYNC_KEY)
        try:
            assert (await asyncio.wait_for(hashes, 20)).watermark >= 0
            assert (await asyncio.wait_for(push, 20)).created
            assert [d.hash for d in (await client.hashes()).assets] == [meta.hash]
        finally:
            store.stop()


async def test_unavailable_after_retry_for_names_the_store_and_route() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with CanClient(url, SYNC_KEY, retry_for=1.0) as client:
        started = time.monotonic()
        with pytest.raises(CanServiceUnavailable) as caught:
            await client.hashes(since=7)
        elapsed = time.monotonic() - started
        text = str(caught.value)
        assert url in text and "/sync/hashes" in text and "unreachable" in text
        assert 0.5 <= elapsed < 5
        with pytest.raises(CanServiceUnavailable) as caught_meta:
            await client.update_meta(can_sync_pb2.MetaUpdate(hash="c" * 64))
        assert "/sync/meta" in str(caught_meta.value)


async def test_events_catch_up_on_ten_ingests_missed_during_a_drop(store: StoreProcess) -> None:
    proxy = TcpProxy(store.port)
    await proxy.start()
    async with CanClient(proxy.url, SYNC_KEY, retry_for=10.0) as client:
        collector = EventCollector(client)
        before = [await ingest(store, f"before {i}".encode()) for i in range(2)]
        await collector.wait_for(2)
        await proxy.stop()  # the client's stream is cut and it cannot reconnect
        missed = [await ingest(store, f"missed {i}".encode()) for i in range(10)]
        await asyncio.sleep(0.5)  # a few reconnect attempts fail meanwhile
        assert len(collector.events) == 2
        await proxy.start()  # same port again
        await collector.wait_for(12)
        after = await ingest(store, b"live again")
        events = await collector.wait_for(13)
        await asyncio.sleep(0.3)  # nothing more (no duplicates) arrives
        await collector.stop()
    await proxy.stop()
    assert proxy.connections >= 2
    assert [e.hash for e in collector.events] == [r["hash"] for r in [*before, *missed, after]]
    assert [e.changed_seq for e in events] == list(range(1, 14))
    assert all(e.kind == "new_asset" for e in events)
    assert [e.timestamp for e in events] == [r["timestamp"] for r in [*before, *missed, after]]


async def test_events_resume_across_a_store_restart(store: StoreProcess) -> None:
    async with CanClient(store.url, SYNC_KEY, retry_for=10.0) as client:
        first = await ingest(store, b"first")
        collector = EventCollector(client, since=0)
        await collector.wait_for(1)
        store.stop()
        await asyncio.sleep(0.3)
        restarted = await asyncio.to_thread(store.restart)
        try:
            missed = [await ingest(restarted, f"after restart {i}".encode()) for i in range(10)]
            async with httpx.AsyncClient(trust_env=False) as http:
                await http.post(f"{restarted.api}/asset/{first['hash']}/trash")
            events = await collector.wait_for(12)
            await asyncio.sleep(0.3)
            await collector.stop()
        finally:
            restarted.stop()
    assert [e.hash for e in collector.events] == [first["hash"], *[r["hash"] for r in missed], first["hash"]]
    assert [e.kind for e in events][-1] == "meta_changed"
    assert [e.changed_seq for e in events] == list(range(1, 13))


async def test_events_since_skips_what_the_caller_already_has(store: StoreProcess, client: CanClient) -> None:
    records = [await ingest(store, f"r{i}".encode()) for i in range(5)]
    collector = EventCollector(client, since=3)
    events = await collector.wait_for(2)
    await asyncio.sleep(0.2)
    await collector.stop()
    assert [e.hash for e in events] == [r["hash"] for r in records[3:]]
    assert len(collector.events) == 2
