"""POST /sync/push_batch on a real store process, spoken with plain httpx and the generated messages.

Each asset is judged alone (a wrong hash refuses only that one, and nothing of it is kept), the answer
has one result per asset in order, and a batch that is cut off, unreadable or over a bound is refused
whole with a 4xx and leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct

import httpx
from store_files import asset_files, check_index_matches_files, leftover_temp_files
from test_store_sync_api import push_body

from cansync.store.push_batch import MAX_BATCH_ASSETS, MAX_BATCH_BYTES
from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import StoreProcess, wait_until

CREATED, HELD, REFUSED = can_sync_pb2.PUSH_CREATED, can_sync_pb2.PUSH_ALREADY_HELD, can_sync_pb2.PUSH_REFUSED
TIMESTAMP = 1_650_000_000_000


def meta_of(content: bytes, **fields: object) -> can_sync_pb2.AssetMeta:
    fields.setdefault("hash", hashlib.sha256(content).hexdigest())
    fields.setdefault("size", len(content))
    fields.setdefault("timestamp", TIMESTAMP)
    return can_sync_pb2.AssetMeta(**fields)  # type: ignore[arg-type]


async def push_batch(http: httpx.AsyncClient, store: StoreProcess, body: bytes, headers: dict) -> httpx.Response:
    return await http.post(f"{store.url}/sync/push_batch", content=body, headers=headers)


def results_of(response: httpx.Response) -> list[can_sync_pb2.PushBatchItemResult]:
    assert response.status_code == 200, response.text
    return list(can_sync_pb2.PushBatchResult.FromString(response.content).results)


async def watermark(http: httpx.AsyncClient, store: StoreProcess, headers: dict) -> int:
    response = await http.post(f"{store.url}/sync/hashes", headers=headers)
    return can_sync_pb2.HashesResponse.FromString(response.content).watermark


async def test_each_asset_is_judged_alone_and_answered_in_order(store, http, sync_headers) -> None:
    good = [f"batch asset {i}".encode() * (i + 1) for i in range(4)]
    held_before = b"pushed earlier, alone"
    alone = push_body(meta_of(held_before), held_before)
    assert (await http.post(f"{store.url}/sync/push", content=alone, headers=sync_headers)).status_code == 200
    wrong = b"this content is not what the hash says"
    body = b"".join(
        [
            push_body(meta_of(good[0], tags=["a", "b"], human_file_name="zero.txt"), good[0]),
            push_body(meta_of(wrong, hash=hashlib.sha256(b"something else").hexdigest()), wrong),
            push_body(meta_of(good[1], timestamp=TIMESTAMP + 1), good[1]),
            push_body(meta_of(held_before), held_before),
            push_body(meta_of(good[2], tags=["../escape"]), good[2]),  # a path-like tag: refused alone
            push_body(meta_of(good[3], trashed=True, meta_updated_ms=5, meta_origin="peer"), good[3]),
            push_body(meta_of(b"", hash="not a hash"), b""),
            push_body(meta_of(b""), b""),  # the empty content is an asset too
        ]
    )
    results = results_of(await push_batch(http, store, body, sync_headers))
    assert [r.outcome for r in results] == [CREATED, REFUSED, CREATED, HELD, REFUSED, CREATED, REFUSED, CREATED]
    assert "hashes to" in results[1].reason and "nothing was stored" in results[1].reason
    assert "../escape" in results[4].reason
    assert "not an asset hash" in results[6].reason
    assert all(not r.HasField("meta") for r in results if r.outcome == REFUSED)
    assert results[0].meta.timestamp == TIMESTAMP and list(results[0].meta.tags) == ["a", "b"]
    assert results[2].meta.timestamp == TIMESTAMP + 1
    assert results[5].meta.trashed and results[5].meta.meta_origin == "peer"
    # one transaction: the created assets took consecutive changed_seq values after the earlier push
    assert sorted(r.meta.changed_seq for r in results if r.outcome == CREATED) == [2, 3, 4, 5]

    stored = {p.name.split("_")[1].split(".")[0]: p for p in asset_files(store.root)}
    expected = [hashlib.sha256(c).hexdigest() for c in (held_before, good[0], good[1], good[3], b"")]
    assert set(stored) == set(expected)  # nothing of the refused assets
    assert stored[hashlib.sha256(good[3]).hexdigest()].parent.name == ".trash"
    assert check_index_matches_files(store.root) == 5
    for content in (good[0], good[1], b""):
        answer = await http.get(f"{store.api}/asset/{hashlib.sha256(content).hexdigest()}")
        assert answer.content == content


async def test_the_same_asset_twice_in_a_batch_is_stored_once(store, http, sync_headers) -> None:
    content = b"sent twice in one batch"
    body = push_body(meta_of(content), content) * 2
    results = results_of(await push_batch(http, store, body, sync_headers))
    assert [r.outcome for r in results] == [CREATED, HELD]
    assert results[0].meta == results[1].meta
    assert check_index_matches_files(store.root) == 1
    again = results_of(await push_batch(http, store, body, sync_headers))  # a retried batch: all held
    assert [r.outcome for r in again] == [HELD, HELD]


async def test_an_empty_batch_stores_nothing(store, http, sync_headers) -> None:
    assert results_of(await push_batch(http, store, b"", sync_headers)) == []
    assert await watermark(http, store, sync_headers) == 0


async def test_a_batch_cut_off_or_unreadable_is_refused_whole(store, http, sync_headers) -> None:
    first = b"the first asset of a broken batch"
    second = b"the second one" * 100
    good = push_body(meta_of(first), first)
    cases = {
        "ends inside the content": good + push_body(meta_of(second), second)[:-10],
        "ends inside a length prefix": good + b"\x00\x00",
        "ends inside a message": good + struct.pack(">I", 500) + b"xx",
        "not an AssetMeta": good + struct.pack(">I", 3) + b"\xff\xff\xff",
        "a message past the limit": good + struct.pack(">I", 2**31) + b"xx",
    }
    for name, body in cases.items():
        response = await push_batch(http, store, body, sync_headers)
        assert response.status_code == 400, f"{name}: {response.text}"
        assert response.json()["status"] == "error" and "/sync/push_batch asset 2" in response.json()["error"], name
    assert asset_files(store.root) == [] and leftover_temp_files(store.root) == []
    assert await watermark(http, store, sync_headers) == 0


async def test_a_batch_over_a_bound_is_refused_whole_with_413(store, http, sync_headers) -> None:
    contents = [f"bound {i}".encode() for i in range(MAX_BATCH_ASSETS + 1)]
    too_many = b"".join(push_body(meta_of(c), c) for c in contents)
    response = await push_batch(http, store, too_many, sync_headers)
    assert response.status_code == 413, response.text
    assert f"at most {MAX_BATCH_ASSETS} assets" in response.json()["error"]

    small = b"small"
    huge_claim = meta_of(b"x", size=MAX_BATCH_BYTES)  # the sizes are summed before any content is read
    too_big = push_body(meta_of(small), small) + push_body(huge_claim, b"x")
    response = await push_batch(http, store, too_big, sync_headers)
    assert response.status_code == 413, response.text
    assert f"at most {MAX_BATCH_BYTES} content bytes" in response.json()["error"]

    assert asset_files(store.root) == [] and leftover_temp_files(store.root) == []
    assert await watermark(http, store, sync_headers) == 0
    at_the_bound = b"".join(push_body(meta_of(c), c) for c in contents[:-1])
    exactly = results_of(await push_batch(http, store, at_the_bound, sync_headers))
    assert len(exactly) == MAX_BATCH_ASSETS and {r.outcome for r in exactly} == {CREATED}
    assert check_index_matches_files(store.root) == MAX_BATCH_ASSETS


async def test_a_client_gone_mid_batch_leaves_nothing(store, http, sync_headers) -> None:
    contents = [bytes([i]) * 300_000 for i in range(10)]
    body = b"".join(push_body(meta_of(c), c) for c in contents)
    request = (
        f"POST /sync/push_batch HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Sync-Key: {sync_headers['X-Sync-Key']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    def send_most_then_drop() -> None:
        with socket.create_connection(("127.0.0.1", store.port)) as sock:
            sock.sendall(request + body[: len(body) * 2 // 3])  # several whole assets, then a cut

    await asyncio.to_thread(send_most_then_drop)
    assert await asyncio.to_thread(wait_until, lambda: leftover_temp_files(store.root) == [], 10)
    assert asset_files(store.root) == []
    assert await watermark(http, store, sync_headers) == 0
    results = results_of(await push_batch(http, store, body, sync_headers))  # and it still serves
    assert [r.outcome for r in results] == [CREATED] * 10


async def test_every_created_asset_is_one_event(store, http, sync_headers) -> None:
    contents = [f"evented {i}".encode() for i in range(5)]
    body = b"".join(push_body(meta_of(c), c) for c in contents)
    results = results_of(await push_batch(http, store, body, sync_headers))
    assert [r.outcome for r in results] == [CREATED] * 5
    events = []
    async with http.stream("GET", f"{store.url}/sync/events", params={"since": 0}, headers=sync_headers) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            if len(events) == 5:
                break
    assert events == ["new_asset"] * 5
