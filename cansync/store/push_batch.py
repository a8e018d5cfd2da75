"""PushBatch: many pushed assets stored with one index transaction and one durability barrier.

A /sync/push_batch request hands its assets in one after the other. Each one's content is hashed into its
own temp file as it arrives (small network chunks are gathered so that one worker-thread hop writes many
small assets), and judged alone: a content that does not hash to its claimed hash is dropped at once and
refused, the rest stay staged. `commit()` then syncs every staged file (several at once), renames them
into place inside one index transaction, syncs the directory once and commits once. Until the commit
nothing of the batch is visible; a batch abandoned on the way (a body cut off, a full disk) leaves
nothing but temp files it removes itself (and the store removes at start, after a crash).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path

from cansync.store.blobs import BlobStore, IncomingBlob
from cansync.store.changes import Change
from cansync.store.errors import HashMismatch
from cansync.store.index import AssetIndex
from cansync.store.records import AssetRecord, NewAssetFields

MAX_BATCH_ASSETS = 1024  # proto/can_sync.proto states both bounds; a batch over one is refused whole
MAX_BATCH_BYTES = 64 * 1024 * 1024  # the sum of the assets' content sizes
STAGE_BYTES = 1024 * 1024  # content gathered in memory before one worker-thread hop writes it
STAGE_STEPS = 4096  # ... or this many steps (a chunk, or an asset's end): few hops, bounded memory


class PushOutcome(Enum):
    CREATED = "created"
    ALREADY_HELD = "already_held"
    REFUSED = "refused"


@dataclass(frozen=True)
class PushVerdict:
    """What became of one asset of a batch."""

    hash: str  # the hash the sender claimed
    outcome: PushOutcome
    reason: str = ""  # why it was refused
    record: AssetRecord | None = None  # the record as stored (created or already held)


@dataclass(eq=False)
class _Item:
    claimed_hash: str
    fields: NewAssetFields | None  # None: refused before its content was read
    reason: str = ""
    started: bool = False  # the worker has looked it up and opened its temp file (or found it held)
    blob: IncomingBlob | None = None  # staged content (until adopted or discarded)
    size: int = 0
    held: AssetRecord | None = None
    record: AssetRecord | None = None

    def verdict(self) -> PushVerdict:
        if self.record is not None:
            return PushVerdict(self.claimed_hash, PushOutcome.CREATED, record=self.record)
        if self.held is not None:
            return PushVerdict(self.claimed_hash, PushOutcome.ALREADY_HELD, record=self.held)
        return PushVerdict(self.claimed_hash, PushOutcome.REFUSED, reason=self.reason or "not stored")


class PushBatch:
    """One batch of pushed assets; use as `async with store.push_batch() as batch:` so an abandoned
    batch discards what it staged."""

    def __init__(
        self,
        blobs: BlobStore,
        index: AssetIndex,
        new_record: Callable[[str, int, NewAssetFields], AssetRecord],
        publish: Callable[[list[Change]], None],
    ) -> None:
        self._blobs = blobs
        self._index = index
        self._new_record = new_record
        self._publish = publish
        self._items: list[_Item] = []
        self._steps: list[tuple[_Item, bytes | None]] = []  # a chunk of an item, or None: its end
        self._step_bytes = 0
        # Held by the worker thread while it stages or commits, and by discard(): a worker still running
        # when the request is cancelled finishes its step before the batch is cleared, and none after.
        self._lock = threading.Lock()
        self._discarded = False

    async def __aenter__(self) -> PushBatch:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        try:
            await asyncio.to_thread(self.discard)
        except asyncio.CancelledError:
            self.discard()  # cancelled while clearing: finish it here (quick: closes and unlinks)
            raise

    def __len__(self) -> int:
        return len(self._items)

    def refuse(self, claimed_hash: str, reason: str) -> None:
        """An asset refused on its metadata alone (the caller skips its content)."""
        self._items.append(_Item(claimed_hash, None, reason=reason))

    async def add(self, claimed_hash: str, fields: NewAssetFields, chunks: AsyncIterable[bytes]) -> None:
        """Stage one asset's content (the caller delimits it: these chunks are all of it)."""
        item = _Item(claimed_hash, fields)
        self._items.append(item)
        async for chunk in chunks:
            if chunk:
                await self._step(item, chunk)
        await self._step(item, None)

    async def _step(self, item: _Item, chunk: bytes | None) -> None:
        self._steps.append((item, chunk))
        self._step_bytes += len(chunk or b"")
        if self._step_bytes >= STAGE_BYTES or len(self._steps) >= STAGE_STEPS:
            await self._flush()

    async def _flush(self) -> None:
        steps, self._steps, self._step_bytes = self._steps, [], 0
        if steps:
            await asyncio.to_thread(self._stage, steps)

    def _stage(self, steps: list[tuple[_Item, bytes | None]]) -> None:
        """Worker thread: write and hash the gathered chunks, each into its asset's temp file."""
        with self._lock:
            if self._discarded:
                return
            for item, chunk in steps:
                self._stage_step(item, chunk)

    def _stage_step(self, item: _Item, chunk: bytes | None) -> None:
        if not item.started:
            item.started = True
            # a held asset's content is not read again (as /sync/push does); the commit checks again
            item.held = self._index.get(item.claimed_hash)
            if item.held is None:
                item.blob = self._blobs.new_incoming()
        blob = item.blob
        if blob is None:
            return
        if chunk is not None:
            blob.write(chunk)
            return
        actual = blob.finish(durable=False)  # synced with the others at the commit
        item.size = blob.size
        if actual != item.claimed_hash:
            blob.discard()
            item.blob = None
            item.reason = str(HashMismatch(item.claimed_hash, actual))

    async def commit(self) -> list[PushVerdict]:
        """Store every staged asset at once; one verdict per asset, in the order they came."""
        steps, self._steps, self._step_bytes = self._steps, [], 0
        return await asyncio.to_thread(self._commit, steps)  # the last steps and the commit: one hop

    def _commit(self, steps: list[tuple[_Item, bytes | None]]) -> list[PushVerdict]:
        with self._lock:
            if self._discarded:
                raise RuntimeError("commit of a discarded batch")
            for item, chunk in steps:
                self._stage_step(item, chunk)
            self._store_staged()
        self.discard()  # temp files of assets found held at the commit
        return [item.verdict() for item in self._items]

    def _store_staged(self) -> None:
        staged = [item for item in self._items if item.blob is not None]
        # the contents are durable before any name points at them
        self._blobs.sync_files([item.blob.path for item in staged if item.blob is not None])
        if staged:
            with self._index.write(self._publish) as tx:
                directories: set[Path] = set()
                for item in staged:
                    blob, fields = item.blob, item.fields
                    assert blob is not None and fields is not None
                    held = tx.get(item.claimed_hash)  # stored meanwhile, or earlier in this batch
                    if held is not None:
                        item.held = held
                        continue
                    record = self._new_record(item.claimed_hash, item.size, fields)
                    final = self._blobs.adopt(blob, record, sync_dir=False)
                    item.blob = None
                    tx.on_rollback(partial(final.unlink, missing_ok=True))
                    item.record = tx.insert(record)
                    directories.add(final.parent)
                # the renames are durable before the index says the assets exist
                for directory in sorted(directories):
                    self._blobs.sync_dir(directory)

    def discard(self) -> None:
        """Remove every staged temp file: of an abandoned batch, or of duplicates after the commit
        (after which the batch takes nothing more). Blocks while a worker step is still running."""
        with self._lock:
            self._discarded = True
            for item in self._items:
                if item.blob is not None:
                    item.blob.discard()
                    item.blob = None
