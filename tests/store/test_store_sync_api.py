"""The sync API of a real store process, spoken with plain httpx and the generated messages (so the
server is checked independently of cansync's own client)."""

from __future__ import annotations

import hashlib
import struct

import httpx
from store_files import asset_files, check_index_matches_files, leftover_temp_files

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import start_store_process


def push_body(meta: can_sync_pb2.AssetMeta, content: bytes) -> bytes:
    header = meta.SerializeToString()
    return struct.pack(">I", len(header)) + header + content


def read_pull(body: bytes) -> list[tuple[can_sync_pb2.PullItem, bytes]]:
    items, pos = [], 0
    while pos < len(body):
        (length,) = struct.unpack(">I", body[pos : pos + 4])
        item = can_sync_pb2.PullItem.FromString(body[pos + 4 : pos + 4 + length])
        pos += 4 + length
        size = item.meta.size - item.offset if item.found else 0
        items.append((item, body[pos : pos + size]))
        pos += size
    return items


async def push(http, store, meta, content, headers) -> httpx.Response:
    return await http.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=headers)


async def test_push_keeps_the_senders_timestamp_and_is_idempotent(store, http, sync_headers) -> None:
    content = b"pushed by a peer" * 1000
    digest = hashlib.sha256(content).hexdigest()
    meta = can_sync_pb2.AssetMeta(
        hash=digest,
        timestamp=1700000000123,
        size=len(content),
        tags=["p"],
        human_file_name="n.txt",
        meta_updated_ms=1700000000999,
        meta_origin="peer-a",
    )
    response = await push(http, store, meta, content, sync_headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    result = can_sync_pb2.PushResult.FromString(response.content)
    assert result.created and result.hash == digest
    assert result.meta.timestamp == 1700000000123
    assert (result.meta.meta_updated_ms, result.meta.meta_origin) == (1700000000999, "peer-a")
    assert [p.name for p in asset_files(store.root)] == [f"1700000000123_{digest}_p.txt"]

    again = can_sync_pb2.AssetMeta(hash=digest, timestamp=1800000000000, size=len(content), tags=["other"])
    second = can_sync_pb2.PushResult.FromString((await push(http, store, again, content, sync_headers)).content)
    assert not second.created
    assert second.meta.timestamp == 1700000000123 and list(second.meta.tags) == ["p"]  # existing record stays
    assert check_index_matches_files(store.root) == 1
    public = (await http.get(f"{store.api}/asset/{digest}")).content
    assert public == content


async def test_push_with_a_wrong_hash_is_refused_and_nothing_is_kept(store, http, sync_headers) -> None:
    content = b"the real bytes"
    meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(b"other bytes").hexdigest(), timestamp=1, size=len(content))
    response = await push(http, store, meta, content, sync_headers)
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert "hashes to" in response.json()["error"]
    wrong_size = can_sync_pb2.AssetMeta(hash=hashlib.sha256(content).hexdigest(), timestamp=1, size=999)
    assert (await push(http, store, wrong_size, content, sync_headers)).status_code == 400
    assert asset_files(store.root) == [] and leftover_temp_files(store.root) == []
    hashes = can_sync_pb2.HashesResponse.FromString(
        (await http.post(f"{store.url}/sync/hashes", headers=sync_headers)).content
    )
    assert list(hashes.assets) == [] and hashes.watermark == 0


async def test_hashes_since_and_watermark_include_trashed(store, http, sync_headers) -> None:
    records = []
    for i in range(3):
        response = await http.post(f"{store.api}/ingest", files={"file": (f"{i}.bin", f"asset {i}".encode())})
        records.append(response.json()["data"])
    await http.post(f"{store.api}/asset/{records[0]['hash']}/trash")

    full = can_sync_pb2.HashesResponse.FromString(
        (await http.post(f"{store.url}/sync/hashes", headers=sync_headers)).content
    )
    assert full.watermark == 4  # three inserts and one trash
    by_hash = {d.hash: d for d in full.assets}
    assert set(by_hash) == {r["hash"] for r in records}
    assert by_hash[records[0]["hash"]].trashed and by_hash[records[0]["hash"]].changed_seq == 4
    assert by_hash[records[1]["hash"]].timestamp == records[1]["timestamp"]

    since = can_sync_pb2.HashesResponse.FromString(
        (await http.post(f"{store.url}/sync/hashes", params={"since": 2}, headers=sync_headers)).content
    )
    assert [d.hash for d in since.assets] == [records[2]["hash"], records[0]["hash"]]  # changed_seq 3, 4
    body_since = can_sync_pb2.HashesRequest(since=3).SerializeToString()
    via_body = can_sync_pb2.HashesResponse.FromString(
        (await http.post(f"{store.url}/sync/hashes", content=body_since, headers=sync_headers)).content
    )
    assert [d.hash for d in via_body.assets] == [records[0]["hash"]]
    assert via_body.watermark == 4


async def test_pull_streams_metadata_and_content_with_offset(store, http, sync_headers) -> None:
    contents = [b"first asset " * 5000, b"second"]
    hashes = []
    for i, content in enumerate(contents):
        response = await http.post(f"{store.api}/ingest", files={"file": (f"f{i}.txt", content)}, data={"tags": "t"})
        hashes.append(response.json()["data"]["hash"])
    unknown = "f" * 64
    request = can_sync_pb2.PullRequest(hashes=[hashes[0], unknown, hashes[1]])
    response = await http.post(f"{store.url}/sync/pull", content=request.SerializeToString(), headers=sync_headers)
    assert response.status_code == 200
    items = read_pull(response.content)
    assert [(i.hash, i.found) for i, _ in items] == [(hashes[0], True), (unknown, False), (hashes[1], True)]
    assert items[0][1] == contents[0] and items[2][1] == contents[1]
    assert items[0][0].meta.size == len(contents[0]) and list(items[0][0].meta.tags) == ["t"]

    resumed = can_sync_pb2.PullRequest(hashes=[hashes[0]], offset=1000)
    response = await http.post(f"{store.url}/sync/pull", content=resumed.SerializeToString(), headers=sync_headers)
    [(item, tail)] = read_pull(response.content)
    assert item.offset == 1000 and tail == contents[0][1000:]


async def test_meta_is_last_writer_wins(store, http, sync_headers) -> None:
    record = (await http.post(f"{store.api}/ingest", files={"file": ("m.txt", b"meta asset")})).json()["data"]

    async def send(**fields) -> can_sync_pb2.MetaResult:
        update = can_sync_pb2.MetaUpdate(hash=record["hash"], **fields)
        response = await http.post(f"{store.url}/sync/meta", content=update.SerializeToString(), headers=sync_headers)
        assert response.status_code == 200, response.text
        return can_sync_pb2.MetaResult.FromString(response.content)

    first = await send(tags=["a"], description="one", updated_ms=2000, origin="bb")
    assert first.applied and list(first.meta.tags) == ["a"]
    older = await send(tags=["old"], updated_ms=1000, origin="zz")
    assert not older.applied and list(older.meta.tags) == ["a"]
    tie_smaller_origin = await send(tags=["tie-small"], updated_ms=2000, origin="aa")
    assert not tie_smaller_origin.applied
    same = await send(tags=["same"], updated_ms=2000, origin="bb")
    assert not same.applied
    tie_larger_origin = await send(tags=["tie-large"], updated_ms=2000, origin="cc", trashed=True)
    assert tie_larger_origin.applied and tie_larger_origin.meta.trashed
    assert (tie_larger_origin.meta.meta_updated_ms, tie_larger_origin.meta.meta_origin) == (2000, "cc")
    assert [p.parent.name for p in asset_files(store.root)] == [".trash"]
    assert check_index_matches_files(store.root) == 1
    unknown = can_sync_pb2.MetaUpdate(hash="e" * 64, updated_ms=1)
    missing = await http.post(f"{store.url}/sync/meta", content=unknown.SerializeToString(), headers=sync_headers)
    assert missing.status_code == 404 and missing.json()["status"] == "error"


async def test_missing_or_wrong_sync_key_is_refused(store, http) -> None:
    for route in ("/sync/hashes", "/sync/pull", "/sync/push", "/sync/meta"):
        missing = await http.post(f"{store.url}{route}", content=b"")
        assert missing.status_code == 401 and missing.json()["status"] == "error", route
        wrong = await http.post(f"{store.url}{route}", content=b"", headers={"X-Sync-Key": SYNC_KEY + "x"})
        assert wrong.status_code == 403 and wrong.json()["error"] == "wrong sync key", route
        empty = await http.post(f"{store.url}{route}", content=b"", headers={"X-Sync-Key": ""})
        assert empty.status_code == 401, route


async def test_events_take_the_key_as_header_or_query(store, http) -> None:
    assert (await http.get(f"{store.url}/sync/events")).status_code == 401
    assert (await http.get(f"{store.url}/sync/events", params={"key": "nope"})).status_code == 403
    for kwargs in ({"params": {"key": SYNC_KEY}}, {"headers": {"X-Sync-Key": SYNC_KEY}}):
        async with http.stream("GET", f"{store.url}/sync/events", **kwargs) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")


async def test_sync_api_disabled_without_a_key(tmp_path, http) -> None:
    store = start_store_process(tmp_path / "nokey", sync_key=None)
    try:
        for method, route in (("POST", "/sync/hashes"), ("POST", "/sync/push"), ("GET", "/sync/events")):
            response = await http.request(method, f"{store.url}{route}", headers={"X-Sync-Key": "anything"})
            assert response.status_code == 404
            assert response.json() == {"status": "error", "error": "sync API disabled: set sync_api_key"}
        public = await http.post(f"{store.api}/ingest", files={"file": ("a.txt", b"still works")})
        assert public.status_code == 200
    finally:
        assert store.stop() == 0
