"""One contract for both stores the agent can be given: CanClient over HTTP to a real `cansync store serve`
process, and the simulation's MemoryStore. Every test runs against both and asserts the same outcomes, so
whatever the simulation shows of the agent holds against the real store too.

Each store comes as a `Subject`: its StoreClient, plus what a user does beside the agent (ingest, edit
metadata through the public API) and the faults a test inflicts (the store going away and coming back,
a full disk). The memory store's own fault switches without a real counterpart (corrupted pulls, a pull
cut off) are tested at the end, against what CanClient does in the same case.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from cansync.can import CanClient, CanServiceError, CanServiceUnavailable
from cansync.can.events import META_CHANGED, NEW_ASSET, StoreEvent
from cansync.can.store_client import StoreClient
from cansync.simulation.memory_store import DISK_FULL_MESSAGE, DISK_FULL_STATUS, MemoryStore
from cansync.store.errors import BadRequest
from cansync.wire.pb import can_sync_pb2
from tests.faults.small_disk import SmallDisk
from tests.helpers.assets import ingest as http_ingest
from tests.helpers.store_process import READY_PREFIX, StoreProcess, start_store_process

KEY = "contract-key"
SENT_TIMESTAMP = 1_650_000_000_000  # a peer's ingest time, kept verbatim by a push
QUICK_RETRY = 0.2  # seconds a call retries an unreachable store before CanServiceUnavailable
PATIENT_RETRY = 10.0  # long enough for a real store to restart meanwhile
EVENT_WAIT = 10.0
UNKNOWN = "0" * 64


class Subject(Protocol):
    client: StoreClient

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str: ...

    def edit(self, asset_hash: str, **fields: Any) -> None: ...

    async def go_down(self) -> None: ...

    async def come_up(self) -> None: ...

    async def patient_client(self) -> StoreClient: ...

    async def close(self) -> None: ...


class RealSubject:
    """A store process; a user reaches it over its public HTTP API, the agent through CanClient."""

    def __init__(self, root: Path) -> None:
        self.store: StoreProcess = start_store_process(root, sync_key=KEY)
        self.client: StoreClient = CanClient(self.store.url, KEY, timeout=10.0, retry_for=QUICK_RETRY)
        self._clients = [self.client]

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str:
        return http_ingest(self.store.api, content, name, tags)

    def edit(self, asset_hash: str, **fields: Any) -> None:
        httpx.patch(f"{self.store.api}/asset/{asset_hash}", json=fields, timeout=10).raise_for_status()

    async def go_down(self) -> None:
        self.store.stop()

    async def come_up(self) -> None:
        self.store = self.store.restart()

    async def patient_client(self) -> StoreClient:
        client = CanClient(self.store.url, KEY, timeout=10.0, retry_for=PATIENT_RETRY)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self.store.stop()


class MemorySubject:
    def __init__(self) -> None:
        self.store = MemoryStore("contract", retry_for=QUICK_RETRY)
        self.client: StoreClient = self.store

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str:
        return self.store.ingest(content, human_file_name=name, tags=tags)

    def edit(self, asset_hash: str, **fields: Any) -> None:
        self.store.edit_meta(asset_hash, **fields)

    async def go_down(self) -> None:
        self.store.down = True

    async def come_up(self) -> None:
        self.store.down = False

    async def patient_client(self) -> StoreClient:
        self.store.retry_for = PATIENT_RETRY
        return self.store

    async def close(self) -> None:
        await self.store.aclose()


@pytest.fixture(params=["real", "memory"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    made: Subject = RealSubject(tmp_path / "store") if request.param == "real" else MemorySubject()
    try:
        yield made
    finally:
        await made.close()


# --- helpers -----------------------------------------------------------------------------------


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def meta_for(content: bytes, **fields: Any) -> can_sync_pb2.AssetMeta:
    fields.setdefault("timestamp", SENT_TIMESTAMP)
    return can_sync_pb2.AssetMeta(hash=sha(content), **fields)


async def chunks_of(content: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(content), size):
        yield content[start : start + size]


async def pull_all(
    client: StoreClient, hashes: list[str], offset: int = 0
) -> list[tuple[can_sync_pb2.PullItem, bytes]]:
    async with client.pull(hashes, offset=offset) as assets:
        return [(asset.item, b"".join([chunk async for chunk in asset.content()])) async for asset in assets]


def digest_view(answer: can_sync_pb2.HashesResponse) -> list[tuple[str, int]]:
    return [(d.hash, d.changed_seq) for d in answer.assets]


async def next_event(events: AsyncIterator[StoreEvent]) -> StoreEvent:
    return await asyncio.wait_for(anext(events), EVENT_WAIT)


# --- the contract ------------------------------------------------------------------------------


async def test_an_empty_store_lists_nothing_and_finds_nothing(subject: Subject):
    client = subject.client
    answer = await client.hashes()
    assert list(answer.assets) == [] and answer.watermark == 0 and not answer.more
    pages = [page async for page in client.hashes_pages(0, page_size=3)]
    assert len(pages) == 1 and list(pages[0].assets) == [] and not pages[0].more
    assert await client.metadata([UNKNOWN]) == []
    [(item, content)] = await pull_all(client, [UNKNOWN])
    assert (item.hash, item.found, content) == (UNKNOWN, False, b"")
    events = client.events(since=0)
    with pytest.raises(TimeoutError):  # nothing to replay, nothing live
        await asyncio.wait_for(anext(events), 0.3)
    await events.aclose()


async def test_a_pushed_asset_comes_back_whole_through_hashes_pull_and_metadata(subject: Subject, tmp_path: Path):
    client = subject.client
    content = b"the quick brown fox " * 500
    sent = meta_for(content, tags=["animals", "quick"], human_file_name="fox.txt", description="a fox")
    pushed = await client.push(sent, chunks_of(content, 1000))
    assert pushed.created and pushed.hash == sent.hash
    record = pushed.meta
    assert (record.hash, record.timestamp, record.size) == (sent.hash, SENT_TIMESTAMP, len(content))
    assert (record.mime_type, record.extension, record.human_file_name) == ("text/plain", "txt", "fox.txt")
    assert (list(record.tags), record.description, record.changed_seq) == (["animals", "quick"], "a fox", 1)
    answer = await client.hashes()
    assert answer.watermark == 1
    assert [(d.hash, d.timestamp, d.size, d.trashed, d.meta_updated_ms, d.changed_seq) for d in answer.assets] == [
        (sent.hash, SENT_TIMESTAMP, len(content), False, 0, 1)
    ]
    [(item, pulled)] = await pull_all(client, [sent.hash])
    assert item.found and item.offset == 0 and item.meta == record and pulled == content
    assert await client.metadata([sent.hash]) == [record]
    # a content in a file, and what a user ingests: the same rules give type and extension
    staged = tmp_path / "staged.bin"
    staged.write_bytes(b"from a file")
    from_file = await client.push(meta_for(b"from a file"), staged)
    assert from_file.created and from_file.meta.size == len(b"from a file") and from_file.meta.changed_seq == 2
    ingested = subject.ingest(b'{"a": 1}', "data.json", tags="x,y")
    [local] = await client.metadata([ingested])
    assert (local.mime_type, local.extension, list(local.tags), local.changed_seq) == (
        "application/json",
        "json",
        ["x", "y"],
        3,
    )
    assert local.timestamp > 0 and local.human_file_name == "data.json"


async def test_a_pull_from_an_offset_starts_every_asset_there(subject: Subject):
    client = subject.client
    long_one, short_one = bytes(range(256)) * 4, b"short"
    for content in (long_one, short_one):
        await client.push(meta_for(content), chunks_of(content, 100))
    answer = await pull_all(client, [sha(long_one), UNKNOWN, sha(short_one)], offset=600)
    assert [(item.hash, item.found, item.offset, content) for item, content in answer] == [
        (sha(long_one), True, 600, long_one[600:]),
        (UNKNOWN, False, 0, b""),
        (sha(short_one), True, len(short_one), b""),  # past its end: nothing, from its end
    ]
    # an asset left unread is skipped: the next one still comes whole
    read = {}
    async with client.pull([sha(long_one), sha(short_one)]) as assets:
        async for asset in assets:
            if asset.hash == sha(short_one):
                read[asset.hash] = b"".join([chunk async for chunk in asset.content()])
    assert read == {sha(short_one): short_one}


async def test_the_change_clock_orders_pages_and_never_misses_a_change_made_while_paging(subject: Subject):
    client = subject.client
    assets = [subject.ingest(f"asset {n}".encode(), f"a{n}.bin") for n in range(1, 6)]
    subject.edit(assets[1], tags="edited")  # moves the second asset after the others
    answer = await client.hashes(since=0)
    expected = [(assets[0], 1), (assets[2], 3), (assets[3], 4), (assets[4], 5), (assets[1], 6)]
    assert digest_view(answer) == expected and answer.watermark == 6
    since_five = await client.hashes(since=5)
    assert digest_view(since_five) == [(assets[1], 6)] and since_five.watermark == 6
    for since in (6, 100):
        later = await client.hashes(since=since)
        assert list(later.assets) == [] and later.watermark == 6  # the clock, even below `since`
    pages = []
    async for page in client.hashes_pages(0, page_size=2):
        pages.append(page)
        if len(pages) == 1:
            subject.edit(assets[0], description="changed while paging")
    assert [(digest_view(p), p.watermark, p.more) for p in pages] == [
        ([(assets[0], 1), (assets[2], 3)], 3, True),
        ([(assets[3], 4), (assets[4], 5)], 5, True),
        ([(assets[1], 6), (assets[0], 7)], 7, False),  # the change made meanwhile shows up again
    ]
    gathered = await client.hashes(since=0)
    assert digest_view(gathered) == expected[1:] + [(assets[0], 7)] and gathered.watermark == 7
    with pytest.raises(CanServiceError) as refused:
        await client.hashes(since=-1)
    assert refused.value.status == 400 and "since must be between" in refused.value.message
    with pytest.raises(ValueError, match="page_size"):
        await anext(client.hashes_pages(0, page_size=0))


async def test_the_event_stream_replays_after_since_then_follows_live_changes(subject: Subject):
    client = subject.client
    content = b"an event"
    everything = client.events(since=0)
    after_two = None
    try:
        await client.push(meta_for(content), chunks_of(content))
        assert await next_event(everything) == StoreEvent(NEW_ASSET, sha(content), 1, SENT_TIMESTAMP)
        update = can_sync_pb2.MetaUpdate(hash=sha(content), tags=["t"], updated_ms=5, origin="peer")
        assert (await client.update_meta(update)).applied
        assert await next_event(everything) == StoreEvent(META_CHANGED, sha(content), 2, None)
        local = subject.ingest(b"a local asset", "local.bin")
        [record] = await client.metadata([local])
        assert await next_event(everything) == StoreEvent(NEW_ASSET, local, 3, record.timestamp)
        after_two = client.events(since=2)
        assert await next_event(after_two) == StoreEvent(NEW_ASSET, local, 3, record.timestamp)
        waiting = asyncio.create_task(next_event(after_two))
        await asyncio.sleep(0.1)
        assert not waiting.done()
        subject.edit(local, trashed=True)
        assert await waiting == StoreEvent(META_CHANGED, local, 4, None)
        assert await next_event(everything) == StoreEvent(META_CHANGED, local, 4, None)
        with pytest.raises(CanServiceError) as refused:
            await next_event(client.events(since=-1))
        assert refused.value.status == 400 and refused.value.route == "/sync/events"
    finally:
        await everything.aclose()
        if after_two is not None:
            await after_two.aclose()


async def test_a_content_that_does_not_hash_to_its_claim_is_refused_and_nothing_is_kept(subject: Subject):
    client = subject.client
    with pytest.raises(CanServiceError) as mismatch:
        await client.push(meta_for(b"what was claimed"), chunks_of(b"what was sent"))
    assert type(mismatch.value) is CanServiceError and mismatch.value.status == 400
    assert mismatch.value.route == "/sync/push"
    assert f"content hashes to {sha(b'what was sent')}, not to the claimed {sha(b'what was claimed')}" in str(
        mismatch.value
    )
    with pytest.raises(CanServiceError) as wrong_size:
        await client.push(meta_for(b"sized", size=99), chunks_of(b"sized"))
    assert wrong_size.value.status == 400 and "not the claimed 99" in wrong_size.value.message
    with pytest.raises(CanServiceError) as not_a_hash:
        await client.push(can_sync_pb2.AssetMeta(hash="ABC"), chunks_of(b"x"))
    assert not_a_hash.value.status == 400 and "is not an asset hash" in not_a_hash.value.message
    with pytest.raises(CanServiceError) as bad_tag:
        await client.push(meta_for(b"tagged", tags=["../up"]), chunks_of(b"tagged"))
    assert bad_tag.value.status == 400 and "looks like a path" in bad_tag.value.message
    answer = await client.hashes()
    assert list(answer.assets) == [] and answer.watermark == 0


async def test_pushing_an_asset_already_held_keeps_the_held_record_and_moves_no_clock(subject: Subject):
    client = subject.client
    held = subject.ingest(b"held already", "held.bin", tags="mine")
    [record] = await client.metadata([held])
    events = client.events(since=record.changed_seq)
    try:
        again = await client.push(meta_for(b"held already", tags=["theirs"]), chunks_of(b"held already"))
        assert not again.created and again.meta == record  # not the pushed timestamp or tags
        # a held hash is answered without reading the content again: even a wrong one is "held"
        wrong = await client.push(can_sync_pb2.AssetMeta(hash=held, timestamp=1), chunks_of(b"not it"))
        assert not wrong.created and wrong.meta == record
        assert (await client.hashes()).watermark == record.changed_seq
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(events), 0.3)
    finally:
        await events.aclose()


async def test_a_batch_judges_each_asset_alone(subject: Subject, tmp_path: Path):
    client = subject.client
    held = subject.ingest(b"held", "held.bin")
    [held_record] = await client.metadata([held])
    good = b"good content"
    staged = tmp_path / "staged.bin"
    staged.write_bytes(b"staged in a file")
    items: list[tuple[can_sync_pb2.AssetMeta, bytes | Path]] = [
        (meta_for(good), good),  # size 0: the content's size
        (meta_for(b"claimed"), b"something else"),
        (meta_for(b"sized", size=99), b"sized"),
        (meta_for(b"held", timestamp=7), b"held"),
        (meta_for(good), good),  # the first one of this batch holds it now
        (meta_for(good), b"not good"),  # not held when the batch came in: hashed, and refused
        (can_sync_pb2.AssetMeta(hash="xyz", size=1), b"q"),
        (meta_for(b"tagged", tags=["../up"]), b"tagged"),
        (meta_for(b"held"), b"not what is held"),  # held: its content is not read again
        (meta_for(b"staged in a file"), staged),
    ]
    results = await client.push_batch(items)
    refused, created, already = can_sync_pb2.PUSH_REFUSED, can_sync_pb2.PUSH_CREATED, can_sync_pb2.PUSH_ALREADY_HELD
    assert [(r.hash, r.outcome) for r in results] == [
        (sha(good), created),
        (sha(b"claimed"), refused),
        (sha(b"sized"), refused),
        (held, already),
        (sha(good), already),
        (sha(good), refused),
        ("xyz", refused),
        (sha(b"tagged"), refused),
        (held, already),
        (sha(b"staged in a file"), created),
    ]
    reasons = [r.reason for r in results]
    assert "content hashes to" in reasons[1] and "content is 5 bytes, meta.size says 99" == reasons[2]
    assert "content hashes to" in reasons[5] and "is not an asset hash" in reasons[6]
    assert "looks like a path" in reasons[7]
    assert all(not r.HasField("meta") for r in results if r.outcome == refused)
    assert (results[0].meta.size, results[0].meta.timestamp, results[0].meta.changed_seq) == (
        len(good),
        SENT_TIMESTAMP,
        2,
    )
    assert results[3].meta == held_record == results[8].meta and results[4].meta == results[0].meta
    assert results[9].meta.size == len(b"staged in a file") and results[9].meta.changed_seq == 3
    assert {d.hash for d in (await client.hashes()).assets} == {held, sha(good), sha(b"staged in a file")}
    # a batch of one goes as a single push: the same judgement
    [alone] = await client.push_batch([(meta_for(b"claimed"), b"something else")])
    assert alone.outcome == refused and "content hashes to" in alone.reason
    assert await client.push_batch([]) == []


async def test_metadata_changes_settle_by_the_last_writer_and_local_edits_come_after(subject: Subject):
    client = subject.client
    asset = subject.ingest(b"changing", "changing.bin")

    async def update(updated_ms: int, origin: str, **fields: Any) -> can_sync_pb2.MetaResult:
        change = can_sync_pb2.MetaUpdate(hash=asset, updated_ms=updated_ms, origin=origin, **fields)
        return await client.update_meta(change)

    first = await update(100, "b", tags=["one"])
    assert first.applied and (list(first.meta.tags), first.meta.meta_updated_ms, first.meta.meta_origin) == (
        ["one"],
        100,
        "b",
    )
    assert first.meta.changed_seq == 2
    for ms, origin, tags in [(50, "z", ["older"]), (100, "a", ["tie smaller origin"]), (100, "b", ["equal"])]:
        losing = await update(ms, origin, tags=tags)
        assert not losing.applied and losing.meta == first.meta  # the clock did not move either
    tie_won = await update(100, "c", trashed=True)  # a tie goes to the larger origin
    assert tie_won.applied and tie_won.meta.trashed and list(tie_won.meta.tags) == [] and tie_won.meta.changed_seq == 3
    same_values = await update(101, "c", trashed=True)  # a later change applies even when it changes nothing
    assert same_values.applied and same_values.meta.changed_seq == 4
    future = 4_000_000_000_000
    await update(future, "peer", description="from the future")
    subject.edit(asset, description="a local edit")  # stamped after the change held, whatever the clock says
    [edited] = await client.metadata([asset])
    assert (edited.description, edited.meta_updated_ms, edited.meta_origin) == ("a local edit", future + 1, "")
    subject.edit(asset, description="a local edit")  # no change: the clock stays still
    [unchanged] = await client.metadata([asset])
    assert unchanged == edited and (await client.hashes()).watermark == edited.changed_seq
    with pytest.raises(CanServiceError) as unknown:
        await client.update_meta(can_sync_pb2.MetaUpdate(hash=UNKNOWN, updated_ms=1))
    assert unknown.value.status == 404 and unknown.value.route == "/sync/meta"
    with pytest.raises(CanServiceError) as malformed:
        await client.update_meta(can_sync_pb2.MetaUpdate(hash="nope", updated_ms=1))
    assert malformed.value.status == 400
    with pytest.raises(CanServiceError) as bad_tag:
        await client.update_meta(can_sync_pb2.MetaUpdate(hash=asset, tags=["a/b"], updated_ms=future + 9))
    assert bad_tag.value.status == 400


async def test_unknown_hashes_are_not_found_and_malformed_ones_refused(subject: Subject):
    client = subject.client
    known = subject.ingest(b"known", "known.bin")
    answer = await pull_all(client, [UNKNOWN, known])
    assert [(item.hash, item.found, content) for item, content in answer] == [
        (UNKNOWN, False, b""),
        (known, True, b"known"),
    ]
    assert [m.hash for m in await client.metadata([UNKNOWN, known, UNKNOWN])] == [known]
    for malformed in ("not-a-hash", known.upper()):
        with pytest.raises(CanServiceError) as pulled:
            async with client.pull([known, malformed]):
                pass
        assert pulled.value.status == 400 and pulled.value.route == "/sync/pull"
        with pytest.raises(CanServiceError) as described:
            await client.metadata([malformed])
        assert described.value.status == 400


async def test_an_unreachable_store_fails_every_call_as_unavailable_and_loses_nothing(subject: Subject):
    client = subject.client
    kept = subject.ingest(b"kept", "kept.bin")
    await subject.go_down()
    calls = {
        "/sync/hashes": lambda: client.hashes(),
        "/sync/pull": lambda: client.metadata([kept]),
        "/sync/push": lambda: client.push(meta_for(b"new"), chunks_of(b"new")),
        "/sync/push_batch": lambda: client.push_batch([(meta_for(b"n1"), b"n1"), (meta_for(b"n2"), b"n2")]),
        "/sync/meta": lambda: client.update_meta(can_sync_pb2.MetaUpdate(hash=kept, updated_ms=9)),
    }
    for route, call in calls.items():
        with pytest.raises(CanServiceUnavailable) as unreachable:
            await call()
        assert unreachable.value.route.startswith(route) and unreachable.value.status is None
    with pytest.raises(CanServiceUnavailable):
        async with client.pull([kept]):
            pass
    with pytest.raises(CanServiceUnavailable):
        await anext(client.hashes_pages(0))
    await subject.come_up()
    answer = await client.hashes()
    assert digest_view(answer) == [(kept, 1)] and answer.watermark == 1
    assert [content for _, content in await pull_all(client, [kept])] == [b"kept"]


async def test_a_call_made_while_the_store_is_down_succeeds_if_it_comes_back_in_time(subject: Subject):
    subject.ingest(b"waited for", "w.bin")
    patient = await subject.patient_client()
    await subject.go_down()
    waiting = asyncio.create_task(patient.hashes())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await subject.come_up()
    answer = await asyncio.wait_for(waiting, PATIENT_RETRY)
    assert [d.hash for d in answer.assets] == [sha(b"waited for")]


async def test_the_event_stream_rides_out_an_outage_without_losing_or_repeating_a_change(subject: Subject):
    client = subject.client
    events = client.events(since=0)
    try:
        await client.push(meta_for(b"before"), chunks_of(b"before"))
        assert (await next_event(events)).hash == sha(b"before")
        pending = asyncio.create_task(next_event(events))
        await subject.go_down()
        await asyncio.sleep(0.2)
        await subject.come_up()
        assert not pending.done()
        await client.push(meta_for(b"after"), chunks_of(b"after"))
        assert await pending == StoreEvent(NEW_ASSET, sha(b"after"), 2, SENT_TIMESTAMP)
    finally:
        await events.aclose()


async def test_a_closed_client_refuses_further_calls(subject: Subject):
    await subject.client.aclose()
    with pytest.raises(RuntimeError, match="client has been closed"):
        await subject.client.hashes()


# --- a full disk: a real store on a small tmpfs, filled up ----------------------------------------


class FullDiskSubject(Protocol):
    client: StoreClient

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str: ...

    def fill(self) -> None: ...

    def free(self) -> None: ...


class RealFullDisk:
    """A store process whose storage_root is a 4 MiB tmpfs in a mount namespace of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.disk = SmallDisk(tmp_path / "disk", size_mib=4)
        launch = "import sys; from cansync.cli import main; sys.exit(main())"
        root = self.disk.mount_point / "store"
        args = [sys.executable, "-c", launch, "store", "serve", "--root", str(root), "--port", "0"]
        self.process = subprocess.Popen(
            [*self.disk.prefix, *args, "--host", "127.0.0.1", "--sync-key", KEY],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        if not lines or not lines[0].startswith(READY_PREFIX):
            self.stop()
            raise RuntimeError(f"the store on a small tmpfs did not start: {lines!r}")
        self.url = lines[0].strip()[len(READY_PREFIX) :]
        self.client: StoreClient = CanClient(self.url, KEY, timeout=10.0, retry_for=QUICK_RETRY)

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str:
        return http_ingest(f"{self.url}/api/v1/can/0", content, name, tags)

    def fill(self) -> None:
        self.disk.fill()

    def free(self) -> None:
        self.disk.free()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.disk.close()


class MemoryFullDisk:
    def __init__(self) -> None:
        self.store = MemoryStore("full", retry_for=QUICK_RETRY)
        self.client: StoreClient = self.store

    def ingest(self, content: bytes, name: str = "file.bin", tags: str = "") -> str:
        return self.store.ingest(content, human_file_name=name, tags=tags)

    def fill(self) -> None:
        self.store.disk_full = True

    def free(self) -> None:
        self.store.disk_full = False


@pytest.fixture(params=["real", "memory"])
async def full_disk(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[FullDiskSubject]:
    if request.param == "memory":
        memory = MemoryFullDisk()
        yield memory
        await memory.client.aclose()
        return
    real = RealFullDisk(tmp_path)
    try:
        yield real
    finally:
        await real.client.aclose()
        real.stop()


async def test_a_full_disk_refuses_new_content_with_507_yet_answers_for_what_it_holds(full_disk: FullDiskSubject):
    client = full_disk.client
    held = full_disk.ingest(b"held before the disk filled", "held.bin")
    full_disk.fill()
    new = b"no room for this"
    refusals = {
        "/sync/push": lambda: client.push(meta_for(new), chunks_of(new)),
        "/sync/push_batch": lambda: client.push_batch([(meta_for(new), new), (meta_for(b"nor this"), b"nor this")]),
    }
    for route, call in refusals.items():
        with pytest.raises(CanServiceError) as full:
            await call()
        assert type(full.value) is CanServiceError and full.value.route == route
        assert (full.value.status, full.value.message) == (DISK_FULL_STATUS, DISK_FULL_MESSAGE)
    with pytest.raises(CanServiceError) as full_alone:  # a batch of one is a push: the error is raised too
        await client.push_batch([(meta_for(new), new)])
    assert full_alone.value.status == DISK_FULL_STATUS
    again = await client.push(meta_for(b"held before the disk filled"), chunks_of(b"held before the disk filled"))
    assert not again.created and again.hash == held  # held: nothing to write
    assert [d.hash for d in (await client.hashes()).assets] == [held]
    full_disk.free()
    assert (await client.push(meta_for(new), chunks_of(new))).created


# --- the memory store's own fault switches ------------------------------------------------------


@pytest.fixture
async def memory() -> AsyncIterator[MemoryStore]:
    store = MemoryStore("faults", retry_for=0.0)
    yield store
    await store.aclose()


async def test_a_corrupt_pull_flips_one_byte_and_leaves_the_store_as_it_was(memory: MemoryStore):
    content = bytes(range(200))
    asset, other = memory.ingest(content), memory.ingest(b"untouched")
    memory.corrupt_pulls.add(asset)
    answer = await pull_all(memory, [asset, other])
    [(item, pulled), (_, untouched)] = answer
    assert len(pulled) == len(content) and sha(pulled) != asset
    assert sum(a != b for a, b in zip(pulled, content, strict=True)) == 1 and untouched == b"untouched"
    [(_, resumed)] = await pull_all(memory, [asset], offset=150)
    assert len(resumed) == 50 and resumed != content[150:]  # a resumed pull is corrupt too
    assert item.meta == memory.meta_of(asset) and memory.holdings()[asset] == content
    memory.corrupt_pulls.clear()
    assert [c for _, c in await pull_all(memory, [asset])] == [content]


async def test_a_store_that_goes_down_mid_pull_cuts_the_answer_off_as_a_dropped_connection(memory: MemoryStore):
    big = bytes(range(256)) * 4096  # 1 MiB: several chunks
    asset = memory.ingest(big)
    with pytest.raises(CanServiceError) as cut:
        async with memory.pull([asset]) as assets:
            async for pulled in assets:
                async for _ in pulled.content(64 * 1024):
                    memory.down = True
    assert type(cut.value) is CanServiceError and "cut off" in cut.value.message  # not "unavailable"


async def test_user_actions_on_the_memory_store_are_checked_as_the_public_api_checks_them(memory: MemoryStore):
    asset = memory.ingest(b"user content", tags="a, b", description="mine")
    assert memory.meta_of(asset).tags == ["a", "b"] and memory.meta_of(asset).description == "mine"
    assert memory.ingest(b"user content", tags="other") == asset and memory.meta_of(asset).changed_seq == 1
    with pytest.raises(TypeError, match="colour"):
        memory.ingest(b"x", colour="red")
    with pytest.raises(ValueError, match="looks like a path"):
        memory.ingest(b"y", tags="../etc")
    with pytest.raises(BadRequest, match="only tags, description and trashed"):
        memory.edit_meta(asset, size=3)
    with pytest.raises(KeyError):
        memory.meta_of(UNKNOWN)
    memory.edit_meta(asset, trashed=True)
    assert memory.meta_of(asset).trashed and set(memory.holdings()) == {asset}  # trashed, still held
