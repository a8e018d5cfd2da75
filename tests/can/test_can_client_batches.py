"""CanClient against a real store process: paged hashes, batch pushes, a pull of many assets in one
request, and the same calls against stores that lack the newer routes (a front that takes them away)."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

import httpx
from store_stand_in import StoreStandIn

from cansync.can import CanClient
from cansync.can.client import PUSH_BATCH_MAX_ASSETS, PUSH_BATCH_MAX_BYTES
from cansync.store.push_batch import MAX_BATCH_ASSETS, MAX_BATCH_BYTES
from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess

CREATED, HELD, REFUSED = can_sync_pb2.PUSH_CREATED, can_sync_pb2.PUSH_ALREADY_HELD, can_sync_pb2.PUSH_REFUSED
TIMESTAMP = 1_650_000_000_000


def item(content: bytes, **fields: object) -> tuple[can_sync_pb2.AssetMeta, bytes]:
    fields.setdefault("hash", hashlib.sha256(content).hexdigest())
    fields.setdefault("size", len(content))
    fields.setdefault("timestamp", TIMESTAMP)
    return can_sync_pb2.AssetMeta(**fields), content  # type: ignore[arg-type]


def contents(prefix: str, count: int, size: int = 0) -> list[bytes]:
    return [f"{prefix} {i} ".encode().ljust(size, b".") for i in range(count)]


async def held_hashes(client: CanClient) -> list[str]:
    return [d.hash for d in (await client.hashes()).assets]


# --- paged hashes ------------------------------------------------------------------------------------


async def test_hashes_come_in_pages_and_gather_into_one_answer(client: CanClient) -> None:
    pushed = await client.push_batch([item(c) for c in contents("paged", 7)])
    assert [r.outcome for r in pushed] == [CREATED] * 7
    pages = [page async for page in client.hashes_pages(page_size=3)]
    assert [len(p.assets) for p in pages] == [3, 3, 1] and [p.more for p in pages] == [True, True, False]
    assert [p.watermark for p in pages] == [3, 6, 7]
    whole = await client.hashes(page_size=2)
    assert [d.hash for d in whole.assets] == [r.hash for r in pushed] and whole.watermark == 7
    since = await client.hashes(since=5, page_size=1)
    assert [d.changed_seq for d in since.assets] == [6, 7] and since.watermark == 7


async def test_hashes_gathered_while_the_store_changes_are_one_answer_at_the_end(store: StoreProcess) -> None:
    async with CanClient(store.url, SYNC_KEY, retry_for=5) as direct:
        pushed = await direct.push_batch([item(c) for c in contents("changing", 5)])
        first = pushed[0].hash
        async with StoreStandIn(store.url) as front:

            async def change_the_store(answers: int) -> None:
                if answers == 1:  # after the first page: retag an asset it listed, and add one
                    update = can_sync_pb2.MetaUpdate(hash=first, tags=["later"], updated_ms=10, origin="x")
                    assert (await direct.update_meta(update)).applied
                    await direct.push_batch([item(b"added while paging")])

            front.between_pages = change_the_store
            async with CanClient(front.url, SYNC_KEY, retry_for=5) as paging:
                gathered = await paging.hashes(page_size=2)
        one_answer = await direct.hashes(page_size=1000)
    assert list(gathered.assets) == list(one_answer.assets)  # each asset once, at its latest change
    assert gathered.watermark == one_answer.watermark == 7
    assert [d.hash for d in gathered.assets][-2:] == [first, hashlib.sha256(b"added while paging").hexdigest()]


async def test_a_store_without_paging_answers_in_one_page(store: StoreProcess) -> None:
    async with StoreStandIn(store.url, paging=False) as old, CanClient(old.url, SYNC_KEY, retry_for=5) as client:
        await client.push_batch([item(c) for c in contents("old store", 5)])
        pages = [page async for page in client.hashes_pages(page_size=2)]
        assert len(pages) == 1 and len(pages[0].assets) == 5 and not pages[0].more and pages[0].watermark == 5
        assert len((await client.hashes(page_size=2)).assets) == 5
        assert old.requests["/sync/hashes"] == 2  # one request per call: nothing asked twice


# --- batch pushes ------------------------------------------------------------------------------------


async def test_push_batch_answers_each_asset_in_order(client: CanClient, tmp_path: Path) -> None:
    on_disk = tmp_path / "from-a-file.bin"
    on_disk.write_bytes(b"content read from a file" * 1000)
    earlier = b"pushed before the batch"
    assert [r.outcome for r in await client.push_batch([item(earlier)])] == [CREATED]
    unsized = b"meta.size left at 0"
    items: list[tuple[can_sync_pb2.AssetMeta, bytes | Path]] = [
        item(b"first"),
        item(b"not what the hash says", hash=hashlib.sha256(b"other").hexdigest()),
        (item(on_disk.read_bytes(), human_file_name="f.bin")[0], on_disk),
        item(earlier),
        item(unsized, size=0),
        item(b"size claimed wrong", size=3),  # refused here: the batch's framing depends on the size
        item(b"tagged", tags=["../up"]),
    ]
    results = await client.push_batch(items)
    assert [r.outcome for r in results] == [CREATED, REFUSED, CREATED, HELD, CREATED, REFUSED, REFUSED]
    assert [r.hash for r in results] == [meta.hash for meta, _ in items]
    assert "hashes to" in results[1].reason
    assert "meta.size says 3" in results[5].reason
    assert "../up" in results[6].reason
    assert results[2].meta.size == on_disk.stat().st_size and results[4].meta.size == len(unsized)
    stored = set(await held_hashes(client))
    assert stored == {results[i].hash for i in (0, 2, 3, 4)}


async def test_push_batch_splits_at_the_stores_bounds(store: StoreProcess) -> None:
    assert (PUSH_BATCH_MAX_ASSETS, PUSH_BATCH_MAX_BYTES) == (MAX_BATCH_ASSETS, MAX_BATCH_BYTES)
    many = [item(c) for c in contents("bounded", PUSH_BATCH_MAX_ASSETS + 10)]
    async with StoreStandIn(store.url) as front, CanClient(front.url, SYNC_KEY, retry_for=5) as client:
        results = await client.push_batch(many)
        assert front.answers == {("/sync/push_batch", 200): 2}
    assert [r.outcome for r in results] == [CREATED] * len(many)


async def test_push_batch_falls_back_to_one_push_per_asset_and_remembers(store: StoreProcess) -> None:
    batch = [item(c) for c in contents("fallback", 5)] + [item(b"wrong", hash="a" * 64)]
    async with StoreStandIn(store.url, batch_route=False) as old, CanClient(old.url, SYNC_KEY, retry_for=5) as client:
        results = await client.push_batch(batch)
        assert [r.outcome for r in results] == [CREATED] * 5 + [REFUSED]
        assert "hashes to" in results[-1].reason
        assert all(r.meta.hash == r.hash for r in results[:5])
        again = await client.push_batch(batch[:3] + [item(b"one more")])
        assert [r.outcome for r in again] == [HELD, HELD, HELD, CREATED]
        # the missing route was asked for once; after that, one /sync/push per asset
        assert old.requests["/sync/push_batch"] == 1 and old.requests["/sync/push"] == 6 + 4
        assert len(await held_hashes(client)) == 6


async def test_push_batch_halves_a_batch_a_smaller_store_refuses(store: StoreProcess) -> None:
    batch = [item(c) for c in contents("halved", 24, size=1024)]
    async with (
        StoreStandIn(store.url, max_batch_bytes=7000) as small,
        CanClient(small.url, SYNC_KEY, retry_for=5) as client,
    ):
        results = await client.push_batch(batch)
        assert [r.outcome for r in results] == [CREATED] * 24
        assert small.answers[("/sync/push_batch", 413)] > 0 and small.answers[("/sync/push_batch", 200)] >= 4
        assert len(await held_hashes(client)) == 24


# --- many assets in one pull -------------------------------------------------------------------------


async def test_five_hundred_small_assets_in_one_pull(store: StoreProcess) -> None:
    small = [item(c) for c in contents("pulled", 500, size=200)]
    async with StoreStandIn(store.url) as front, CanClient(front.url, SYNC_KEY, retry_for=5) as client:
        assert {r.outcome for r in await client.push_batch(small)} == {CREATED}
        hashes = [meta.hash for meta, _ in small]
        received: list[tuple[str, str]] = []
        async with client.pull(hashes) as assets:
            async for asset in assets:
                content = b"".join([chunk async for chunk in asset.content()])
                received.append((asset.hash, hashlib.sha256(content).hexdigest()))
        assert received == [(h, h) for h in hashes]
        assert front.requests["/sync/pull"] == 1


async def test_a_pull_of_many_assets_holds_a_chunk_at_a_time_not_the_answer(client: CanClient) -> None:
    big = [item(bytes([i]) * (1024 * 1024)) for i in range(48)]  # 48 MiB in one answer
    assert {r.outcome for r in await client.push_batch(big)} == {CREATED}
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        hashed = []
        async with client.pull([meta.hash for meta, _ in big]) as assets:
            async for asset in assets:
                digest = hashlib.sha256()
                async for chunk in asset.content():
                    digest.update(chunk)
                hashed.append(digest.hexdigest())
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert hashed == [meta.hash for meta, _ in big]
    assert peak < 8 * 1024 * 1024, f"the pull held {peak} bytes at once"


async def test_push_batch_of_nothing_sends_nothing(store: StoreProcess) -> None:
    async with StoreStandIn(store.url) as front, CanClient(front.url, SYNC_KEY, retry_for=5) as client:
        assert await client.push_batch([]) == []
        assert sum(front.requests.values()) == 0
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(f"{store.url}/sync/hashes", headers={"X-Sync-Key": SYNC_KEY})
    assert can_sync_pb2.HashesResponse.FromString(answer.content).watermark == 0


async def test_push_batch_sends_large_and_small_contents_alike(client: CanClient, tmp_path: Path) -> None:
    large = bytes(range(256)) * 4096  # 1 MiB: sent as it is, between small ones gathered into writes
    on_disk = tmp_path / "large.bin"
    on_disk.write_bytes(large[::-1])
    items: list[tuple[can_sync_pb2.AssetMeta, bytes | Path]] = [item(b"small before"), item(large)]
    items += [(item(large[::-1])[0], on_disk), item(b"small after")]
    results = await client.push_batch(items)
    assert [r.outcome for r in results] == [CREATED] * 4
    async with client.pull([r.hash for r in results]) as assets:
        pulled = [b"".join([c async for c in asset.content()]) async for asset in assets]
    assert pulled == [b"small before", large, large[::-1], b"small after"]
