"""MemoryStore: a CAN store held in memory, answering the agent as `CanClient` does over HTTP.

The simulation runs real agents on it, so it must be indistinguishable from our store (`cansync store
serve`) seen through `CanClient`: the same messages, change clock, event stream, error classes and
statuses, and the same rules. The rules are the store's own where they are pure (field validation, the
record of a new asset, the hash, the `since` check), so the two cannot drift; what is written here is
only what the store does with files and SQLite. tests/can/test_store_contract.py holds both to one set
of behaviour tests.

Deterministic and loop-agnostic: no threads, no wall clock, no sockets, no randomness; waiting is done
with asyncio events and sleeps only, so a virtual-time loop drives it. The fault switches (`down`,
`disk_full`, `corrupt_pulls`) make it fail the way the real store and client fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cansync.can.byte_stream import ByteStream
from cansync.can.client import (
    FIRST_RETRY_DELAY,
    HASHES_PAGE,
    MAX_RETRY_DELAY,
    BatchItem,
    batch_groups,
    gather_hash_pages,
    refused_item,
    with_size,
)
from cansync.can.errors import CanServiceError, CanServiceUnavailable
from cansync.can.events import StoreEvent
from cansync.can.pull import PulledAsset, read_pulled_assets
from cansync.can.store_client import StoreClient
from cansync.simulation.loop import EPOCH_MS, SimulatedLoop
from cansync.store.assets import READ_CHUNK_BYTES, AssetStore
from cansync.store.changes import Change, ChangeKind, parse_change_seq
from cansync.store.errors import AssetNotFound, BadRequest, HashMismatch, SizeMismatch, StoreError
from cansync.store.hashing import content_hash
from cansync.store.naming import (
    InvalidName,
    parse_tags,
    validate_text,
)
from cansync.store.public_api import TEXT_FIELDS, new_asset_fields
from cansync.store.records import AssetRecord, MetaChange, NewAssetFields
from cansync.store.sync_api import MAX_HASHES_PAGE, fields_from_meta, meta_change_from_update, require_hash
from cansync.wire.pb import can_sync_pb2

# what the store answers when its disk is full (cansync/store/envelope.py), and with which status
DISK_FULL_STATUS = 507
DISK_FULL_MESSAGE = "no space left in the store's storage_root: free some space and send it again"
CLIENT_CLOSED_MESSAGE = "Cannot send a request, as the client has been closed."  # httpx's words
_LENGTH_PREFIX = struct.Struct(">I")
_LOCAL_EDIT_FIELDS = frozenset({"tags", "description", "trashed"})
_INGEST_FIELDS = frozenset({*TEXT_FIELDS, "extension"})
_PushItem = tuple[can_sync_pb2.AssetMeta, bytes]


def _loop_clock_ms() -> int:
    """The default clock: the agents' wall clock under the simulated loop, else EPOCH_MS plus loop time."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return EPOCH_MS
    if isinstance(loop, SimulatedLoop):
        return loop.wall_ms()
    return EPOCH_MS + int(loop.time() * 1000)


class MemoryStore:
    """One store and its client in one object: the StoreClient calls are what the agent does, ingest and
    edit_meta what a user does through the store's public API, the rest what the simulation inspects."""

    def __init__(self, name: str, *, clock: Callable[[], int] | None = None, retry_for: float = 0.0) -> None:
        """clock: ms since the epoch for new assets' timestamps and local edits (default: the simulated
        loop's wall_ms). retry_for: while `down`, a call waits this many seconds of loop time (polling
        with CanClient's backoff) for the store to come back before it raises, as CanClient does."""
        self.base_url = f"memory://{name}"
        self.retry_for = retry_for
        # pushes of content not held yet get the store's 507; a user's own ingest is not refused
        self.disk_full = False
        # pulls of these hashes serve the content with its last byte flipped (hashes and records untouched)
        self.corrupt_pulls: set[str] = set()
        self._clock = clock or _loop_clock_ms
        self._down = False
        self._closed = False
        self._records: dict[str, AssetRecord] = {}  # kept in changed_seq order: a changed record moves last
        self._contents: dict[str, bytes] = {}
        self._changes: list[Change] = []  # the change log; seq n sits at index n - 1
        self._changed = asyncio.Event()  # set (and replaced) on every change, outage and close

    # --- fault switches -----------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        self._wake()

    # --- what a user does, and what the simulation inspects ----------------------------------

    def ingest(self, content: bytes, **meta_fields: Any) -> str:
        """Add an asset as the public ingest route does (fields as its form fields: tags, description,
        human_file_name, mime_type, ...); content already held keeps its record. Returns the hash."""
        unknown = sorted(set(meta_fields) - _INGEST_FIELDS)
        if unknown:
            raise TypeError(f"ingest takes {', '.join(sorted(_INGEST_FIELDS))}; not {', '.join(unknown)}")
        fields = new_asset_fields(meta_fields)
        asset_hash = content_hash(content)
        if asset_hash not in self._records:
            self._insert(asset_hash, content, fields)
        return asset_hash

    def edit_meta(self, hash: str, **fields: Any) -> None:
        """Change tags, description or trashed as the public API's PATCH/trash/restore do: stamped with
        the clock, yet after whatever change the store holds; a change to the same values is no change."""
        unknown = sorted(set(fields) - _LOCAL_EDIT_FIELDS)
        if unknown:
            raise BadRequest(f"cannot update {', '.join(unknown)}: only tags, description and trashed change")
        current = self._records.get(hash)
        if current is None:
            raise AssetNotFound(hash)
        tags = tuple(parse_tags(fields["tags"])) if "tags" in fields else current.tags
        description = fields.get("description", current.description)
        trashed = fields.get("trashed", current.trashed)
        if not isinstance(description, str):
            raise BadRequest("description must be a string")
        if not isinstance(trashed, bool):
            raise BadRequest("trashed must be true or false")
        validate_text(description, "description")
        if (tags, description, trashed) == (current.tags, current.description, current.trashed):
            return
        stamp = max(self._clock(), current.meta_updated_ms + 1)
        self._update(current, MetaChange(tags, description, trashed, stamp, ""))

    def holdings(self) -> dict[str, bytes]:
        """hash -> content of every asset held, trashed ones too."""
        return dict(self._contents)

    def meta_of(self, hash: str) -> can_sync_pb2.AssetMeta:
        record = self._records.get(hash)
        if record is None:
            raise KeyError(f"{self.base_url} holds no asset {hash}")
        return record.to_proto()

    # --- the sync API, as CanClient answers it ------------------------------------------------

    async def hashes(self, since: int = 0, page_size: int = HASHES_PAGE) -> can_sync_pb2.HashesResponse:
        return await gather_hash_pages(self.hashes_pages(since, page_size), since)

    async def hashes_pages(
        self, since: int = 0, page_size: int = HASHES_PAGE
    ) -> AsyncIterator[can_sync_pb2.HashesResponse]:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        cursor = int(since)
        while True:
            route = f"/sync/hashes?since={cursor}&limit={page_size}"
            can_sync_pb2.HashesRequest(since=cursor, limit=page_size)  # refuses what the client's would
            await self._reach(route)
            page = self._digest_page(route, cursor, min(page_size, MAX_HASHES_PAGE))
            yield page
            if not page.more:
                return
            cursor = page.watermark

    def _digest_page(self, route: str, since: int, limit: int) -> can_sync_pb2.HashesResponse:
        try:
            parse_change_seq(str(since))
        except ValueError as exc:
            raise self._refusal(route, BadRequest(str(exc))) from None
        digests = [record.to_digest() for record in self._records.values() if record.changed_seq > since]
        if len(digests) > limit:
            del digests[limit:]
            return can_sync_pb2.HashesResponse(assets=digests, watermark=digests[-1].changed_seq, more=True)
        return can_sync_pb2.HashesResponse(assets=digests, watermark=self._clock_reading())

    @asynccontextmanager
    async def pull(self, hashes: Sequence[str], offset: int = 0) -> AsyncIterator[AsyncIterator[PulledAsset]]:
        route = "/sync/pull"
        request = can_sync_pb2.PullRequest(hashes=list(hashes), offset=offset)
        await self._reach(route)
        self._check_hashes(route, request.hashes)
        stream = ByteStream(self._pull_body(route, list(request.hashes), request.offset))
        yield read_pulled_assets(stream, lambda message: CanServiceError(self.base_url, route, message))

    async def _pull_body(self, route: str, hashes: list[str], offset: int) -> AsyncIterator[bytes]:
        """The bytes of a /sync/pull answer, made as the store makes them: each asset looked up when its
        turn comes. A store going down meanwhile cuts the answer off, as a dropped connection does."""
        for asset_hash in hashes:
            record = self._records.get(asset_hash)
            if record is None:
                chunks: Iterator[bytes] = iter([_delimited(can_sync_pb2.PullItem(hash=asset_hash, found=False))])
            else:
                chunks = self._pull_item(record, offset)
            for chunk in chunks:
                await asyncio.sleep(0)
                if self._down or self._closed:
                    raise CanServiceError(self.base_url, route, "answer cut off: the store went away mid-answer")
                yield chunk

    def _pull_item(self, record: AssetRecord, offset: int) -> Iterator[bytes]:
        start = min(offset, record.size)
        yield _delimited(can_sync_pb2.PullItem(hash=record.hash, found=True, meta=record.to_proto(), offset=start))
        content = self._contents[record.hash]
        if record.hash in self.corrupt_pulls and content:
            flipped = bytearray(content)
            flipped[-1] ^= 0xFF  # the last byte is in every range served, resumed ones too
            content = bytes(flipped)
        for position in range(start, record.size, READ_CHUNK_BYTES):
            yield content[position : position + READ_CHUNK_BYTES]

    async def metadata(self, hashes: Sequence[str]) -> list[can_sync_pb2.AssetMeta]:
        route = "/sync/pull"
        request = can_sync_pb2.PullRequest(hashes=list(hashes), meta_only=True)
        await self._reach(route)
        self._check_hashes(route, request.hashes)
        return [self._records[h].to_proto() for h in request.hashes if h in self._records]

    async def push(self, meta: can_sync_pb2.AssetMeta, content: AsyncIterable[bytes] | Path) -> can_sync_pb2.PushResult:
        route = "/sync/push"
        await self._reach(route)
        data = await _read_all(content)
        try:
            record, created = self._push_one(meta, data)
        except (StoreError, InvalidName) as exc:
            raise self._refusal(route, exc) from None
        return can_sync_pb2.PushResult(hash=record.hash, created=created, meta=record.to_proto())

    def _push_one(self, meta: can_sync_pb2.AssetMeta, content: bytes) -> tuple[AssetRecord, bool]:
        """/sync/push's order of checks: the hash's form, the fields, held already (the content is then
        not looked at), a full disk (the content is written before it is hashed), the hash, the size."""
        require_hash(meta.hash, "/sync/push meta.hash")
        fields = fields_from_meta(meta)
        held = self._records.get(meta.hash)
        if held is not None:
            return held, False
        if self.disk_full:
            raise _DiskFull()
        actual = content_hash(content)
        if actual != meta.hash:
            raise HashMismatch(meta.hash, actual)
        if meta.size and len(content) != meta.size:
            raise SizeMismatch(meta.size, len(content))
        return self._insert(actual, content, fields), True

    async def push_batch(
        self, items: Sequence[tuple[can_sync_pb2.AssetMeta, bytes | Path]]
    ) -> list[can_sync_pb2.PushBatchItemResult]:
        """As CanClient.push_batch against our store: sizes checked first (no request), then groups within
        the batch bounds, a group of one by /sync/push, a larger one by /sync/push_batch."""
        results: list[can_sync_pb2.PushBatchItemResult | None] = [None] * len(items)
        sendable: list[BatchItem] = []
        for index, (meta, content) in enumerate(items):
            data = await _read_all(content)
            if meta.size and meta.size != len(data):
                results[index] = refused_item(meta.hash, f"content is {len(data)} bytes, meta.size says {meta.size}")
                continue
            sendable.append((index, with_size(meta, len(data)), data))
        for group in batch_groups(sendable):
            # every content was read into bytes above; BatchItem also allows the Path a client may be given
            answers = await self._push_group([(meta, data) for _, meta, data in group])  # type: ignore[misc]
            for (index, _, _), answer in zip(group, answers, strict=True):
                results[index] = answer
        return [result for result in results if result is not None]

    async def _push_group(self, group: list[_PushItem]) -> list[can_sync_pb2.PushBatchItemResult]:
        if len(group) == 1:
            route = "/sync/push"
            await self._reach(route)
            meta, content = group[0]
            try:
                record, created = self._push_one(meta, content)
            except (StoreError, InvalidName) as exc:
                if isinstance(exc, StoreError) and exc.status != 400:
                    raise self._refusal(route, exc) from None
                return [refused_item(meta.hash, str(exc))]
            outcome = can_sync_pb2.PUSH_CREATED if created else can_sync_pb2.PUSH_ALREADY_HELD
            return [can_sync_pb2.PushBatchItemResult(hash=meta.hash, outcome=outcome, meta=record.to_proto())]
        route = "/sync/push_batch"
        await self._reach(route)
        try:
            return self._store_batch(group)
        except StoreError as exc:
            raise self._refusal(route, exc) from None

    def _store_batch(self, group: list[_PushItem]) -> list[can_sync_pb2.PushBatchItemResult]:
        """/sync/push_batch: every asset judged alone against the store as it was when the batch came in
        (one staged behind another of the same hash is hashed, not taken as held), then all stored at once,
        in order; a full disk refuses the whole batch."""
        verdicts: list[can_sync_pb2.PushBatchItemResult | NewAssetFields] = []
        for meta, content in group:
            try:
                fields = fields_from_meta(meta)
                require_hash(meta.hash, "meta.hash")
            except (BadRequest, InvalidName) as exc:
                verdicts.append(refused_item(meta.hash, str(exc)))
                continue
            held = self._records.get(meta.hash)
            if held is not None:
                verdicts.append(_outcome(meta.hash, can_sync_pb2.PUSH_ALREADY_HELD, held))
                continue
            if self.disk_full:
                raise _DiskFull()
            actual = content_hash(content)
            if actual != meta.hash:
                verdicts.append(refused_item(meta.hash, str(HashMismatch(meta.hash, actual))))
                continue
            verdicts.append(fields)
        results = []
        for (meta, content), verdict in zip(group, verdicts, strict=True):
            if isinstance(verdict, NewAssetFields):
                held = self._records.get(meta.hash)  # an earlier asset of this batch was it
                if held is not None:
                    verdict = _outcome(meta.hash, can_sync_pb2.PUSH_ALREADY_HELD, held)
                else:
                    verdict = _outcome(meta.hash, can_sync_pb2.PUSH_CREATED, self._insert(meta.hash, content, verdict))
            results.append(verdict)
        return results

    async def update_meta(self, update: can_sync_pb2.MetaUpdate) -> can_sync_pb2.MetaResult:
        """Last writer wins by (updated_ms, origin): applied only when greater than the change held; an
        applied change moves the clock even when it changes no value."""
        route = "/sync/meta"
        await self._reach(route)
        try:
            change = meta_change_from_update(update)
            current = self._records.get(update.hash)
            if current is None:
                raise AssetNotFound(update.hash)
        except (StoreError, InvalidName) as exc:
            raise self._refusal(route, exc) from None
        if change.clock() <= (current.meta_updated_ms, current.meta_origin):
            return can_sync_pb2.MetaResult(applied=False, meta=current.to_proto())
        return can_sync_pb2.MetaResult(applied=True, meta=self._update(current, change).to_proto())

    async def events(self, since: int = 0) -> AsyncIterator[StoreEvent]:
        """Every change after `since`, then live ones, forever. While the store is down the stream waits,
        retrying with CanClient's backoff, and resumes after the last change it gave: none lost or repeated."""
        route = "/sync/events"
        last = since
        delay = FIRST_RETRY_DELAY
        while True:
            self._check_open()
            if not self._down:
                try:
                    parse_change_seq(str(last))
                except ValueError as exc:
                    raise self._refusal(route, BadRequest(str(exc))) from None
                delay = FIRST_RETRY_DELAY
                while not self._down:
                    self._check_open()
                    if last < len(self._changes):
                        change = self._changes[max(last, 0)]
                        last = change.seq
                        yield _store_event(change)
                    else:
                        await self._changed.wait()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def aclose(self) -> None:
        """As closing CanClient's HTTP client: later calls and open event streams raise RuntimeError. The
        store itself (holdings, ingest, edit_meta) stays as it is."""
        self._closed = True
        self._wake()

    # --- the store's state ----------------------------------------------------------------------

    def _clock_reading(self) -> int:
        return len(self._changes)

    def _next_change(self, record: AssetRecord, kind: ChangeKind) -> AssetRecord:
        change = Change(seq=self._clock_reading() + 1, hash=record.hash, kind=kind, timestamp=record.timestamp)
        self._changes.append(change)
        record = record.with_changes(changed_seq=change.seq)
        self._records.pop(record.hash, None)
        self._records[record.hash] = record
        self._wake()
        return record

    def _insert(self, asset_hash: str, content: bytes, fields: NewAssetFields) -> AssetRecord:
        if not fields.timestamp:  # the store's own clock for a new asset; the real store reads the wall clock
            fields = dataclasses.replace(fields, timestamp=self._clock())
        record = AssetStore.new_record(asset_hash, len(content), fields)
        self._contents[asset_hash] = content
        return self._next_change(record, ChangeKind.NEW_ASSET)

    def _update(self, current: AssetRecord, change: MetaChange) -> AssetRecord:
        updated = current.with_changes(
            tags=change.tags,
            description=change.description,
            trashed=change.trashed,
            meta_updated_ms=change.updated_ms,
            meta_origin=change.origin,
        )
        return self._next_change(updated, ChangeKind.META_CHANGED)

    def _wake(self) -> None:
        """Wake every waiting event stream; later waits use a fresh event (bound to whichever loop waits)."""
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()

    # --- how the client fails -------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(CLIENT_CLOSED_MESSAGE)

    async def _reach(self, route: str) -> None:
        """Every call is I/O: it yields. While down, retry as CanClient does, then CanServiceUnavailable."""
        self._check_open()
        await asyncio.sleep(0)
        if not self._down:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = FIRST_RETRY_DELAY
        while self._down:
            if loop.time() + delay > deadline:
                raise CanServiceUnavailable(
                    self.base_url,
                    route,
                    f"store unreachable for {self.retry_for:g} s (the simulation has it down); "
                    "is CAN Service running at this URL?",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)
            self._check_open()

    def _refusal(self, route: str, error: StoreError | InvalidName) -> CanServiceError:
        """The error CanClient raises for the store's answer to this error (its status, its message)."""
        status = error.status if isinstance(error, StoreError) else 400
        return CanServiceError(self.base_url, route, str(error), status)

    def _check_hashes(self, route: str, hashes: Sequence[str]) -> None:
        try:
            for asset_hash in hashes:
                require_hash(asset_hash, route)
        except BadRequest as exc:
            raise self._refusal(route, exc) from None


class _DiskFull(StoreError):
    status = DISK_FULL_STATUS

    def __init__(self) -> None:
        super().__init__(DISK_FULL_MESSAGE)


async def _read_all(content: AsyncIterable[bytes] | bytes | Path) -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, Path):
        return content.read_bytes()  # a staged file: small enough, and no thread may read it
    return b"".join([chunk async for chunk in content])


def _outcome(
    asset_hash: str, outcome: can_sync_pb2.PushOutcome, record: AssetRecord
) -> can_sync_pb2.PushBatchItemResult:
    return can_sync_pb2.PushBatchItemResult(hash=asset_hash, outcome=outcome, meta=record.to_proto())


def _delimited(item: can_sync_pb2.PullItem) -> bytes:
    body = item.SerializeToString()
    return _LENGTH_PREFIX.pack(len(body)) + body


def _store_event(change: Change) -> StoreEvent:
    """What CanClient makes of the SSE event the store sends for this change (a timestamp on new assets)."""
    timestamp = change.timestamp if change.kind is ChangeKind.NEW_ASSET else None
    return StoreEvent(kind=str(change.kind), hash=change.hash, changed_seq=change.seq, timestamp=timestamp)


def _as_store_client(store: MemoryStore) -> StoreClient:
    return store  # mypy checks here that MemoryStore has every call of the StoreClient protocol
