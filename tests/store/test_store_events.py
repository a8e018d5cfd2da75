"""Server-Sent Events of a real store: every change in order, replay after `since` without gaps or
duplicates, the public new_asset stream, and a clean stop with streams open."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from httpx_sse import aconnect_sse

from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess


async def collect(http: httpx.AsyncClient, url: str, count: int, **params: str) -> list[tuple[str, int, dict]]:
    """Read `count` events: (event name, id, data)."""
    events = []
    async with aconnect_sse(http, "GET", url, params=params) as source:
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            if not sse.data:
                continue  # a keep-alive comment (httpx-sse reports it as an empty message)
            events.append((sse.event, int(sse.id), json.loads(sse.data)))
            if len(events) == count:
                break
    return events


async def ingest(http: httpx.AsyncClient, store: StoreProcess, i: int) -> dict:
    response = await http.post(f"{store.api}/ingest", files={"file": (f"{i}.txt", f"event asset {i}".encode())})
    assert response.status_code == 200
    return response.json()["data"]


async def test_sync_events_deliver_every_ingest_in_order(store: StoreProcess, http: httpx.AsyncClient) -> None:
    reader = asyncio.create_task(collect(http, f"{store.url}/sync/events", 20, key=SYNC_KEY))
    await asyncio.sleep(0.3)  # let the stream open (no since: live only)
    records = await asyncio.gather(*(ingest(http, store, i) for i in range(20)))
    events = await asyncio.wait_for(reader, 20)
    assert {e[2]["hash"] for e in events} == {r["hash"] for r in records}
    assert [e[1] for e in events] == sorted(r["changed_seq"] for r in records)  # in changed_seq order
    assert all(name == "new_asset" for name, _, _ in events)
    by_hash = {r["hash"]: r for r in records}
    for _name, seq, data in events:
        assert data["changed_seq"] == seq == by_hash[data["hash"]]["changed_seq"]
        assert data["timestamp"] == by_hash[data["hash"]]["timestamp"]


async def test_replay_since_then_live_without_gap_or_duplicate(store: StoreProcess, http: httpx.AsyncClient) -> None:
    first = [await ingest(http, store, i) for i in range(5)]
    await http.post(f"{store.api}/asset/{first[0]['hash']}/trash")  # seq 6

    async def ingest_more() -> list[dict]:
        return [await ingest(http, store, i) for i in range(5, 15)]  # seqs 7..16, racing the replay

    reader = asyncio.create_task(collect(http, f"{store.url}/sync/events", 14, key=SYNC_KEY, since="2"))
    more = await ingest_more()
    events = await asyncio.wait_for(reader, 20)
    assert [seq for _, seq, _ in events] == list(range(3, 17))
    assert events[3][0] == "meta_changed" and events[3][2] == {"hash": first[0]["hash"], "changed_seq": 6}
    assert [e[2]["hash"] for e in events[4:]] == [r["hash"] for r in more]

    via_header = []
    async with aconnect_sse(
        http, "GET", f"{store.url}/sync/events", headers={"X-Sync-Key": SYNC_KEY, "Last-Event-ID": "14"}
    ) as source:
        async for sse in source.aiter_sse():
            if not sse.data:
                continue
            via_header.append(int(sse.id))
            if len(via_header) == 2:
                break
    assert via_header == [15, 16]


async def test_public_events_carry_new_assets_only(store: StoreProcess, http: httpx.AsyncClient) -> None:
    reader = asyncio.create_task(collect(http, f"{store.api}/events", 2))
    await asyncio.sleep(0.3)
    a = await ingest(http, store, 1)
    await http.post(f"{store.api}/asset/{a['hash']}/trash")  # not on the public stream
    b = await ingest(http, store, 2)
    events = await asyncio.wait_for(reader, 20)
    assert [(name, data["hash"]) for name, _, data in events] == [("new_asset", a["hash"]), ("new_asset", b["hash"])]


async def test_sigterm_stops_the_store_with_streams_open(store: StoreProcess, http: httpx.AsyncClient) -> None:
    readers = [asyncio.create_task(collect(http, f"{store.url}/sync/events", 99, key=SYNC_KEY)) for _ in range(3)]
    readers.append(asyncio.create_task(collect(http, f"{store.api}/events", 99)))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    assert await asyncio.to_thread(store.stop) == 0
    assert time.monotonic() - started < 5  # streams are ended, not waited on
    for reader in readers:
        assert await asyncio.wait_for(reader, 10) == []  # each stream ended without an event
