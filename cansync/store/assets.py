"""AssetStore: the store's operations (ingest, push, metadata, trash, reads) over index + files + feed.

Content is always streamed: it arrives as an async iterator of chunks, goes to a temp file through the
hasher in a worker thread, and only a finished, verified file is renamed into place inside the index's
write transaction, so the index and the files never disagree.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cansync.store.blobs import BlobStore, IncomingBlob
from cansync.store.changes import Change
from cansync.store.errors import AssetNotFound, HashMismatch, SizeMismatch
from cansync.store.feed import ChangeFeed
from cansync.store.hashing import is_asset_hash
from cansync.store.index import INDEX_FILE_NAME, AssetIndex, DigestPage
from cansync.store.naming import asset_file_name, extension_from_name
from cansync.store.push_batch import PushBatch
from cansync.store.records import AssetRecord, MetaChange, NewAssetFields

WRITE_BATCH_BYTES = 1024 * 1024  # small network chunks are gathered to this before a disk write
READ_CHUNK_BYTES = 256 * 1024
DEFAULT_MIME_TYPE = "application/octet-stream"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class AssetStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = BlobStore(root)
        self.blobs.remove_leftover_incoming()
        self.index = AssetIndex(root / INDEX_FILE_NAME)
        self.feed = ChangeFeed()

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.feed.bind(loop)

    def close(self) -> None:
        self.feed.close_all()
        self.index.close()

    def _publish(self, changes: list[Change]) -> None:
        self.feed.publish_threadsafe(changes)

    # --- content in ---------------------------------------------------------------------------

    async def receive(self, chunks: AsyncIterable[bytes]) -> IncomingBlob:
        """Stream content into a temp file, hashing it; the caller adopts or discards the result."""
        incoming = await asyncio.to_thread(self.blobs.new_incoming)
        try:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= WRITE_BATCH_BYTES:
                    await asyncio.to_thread(incoming.write, bytes(batch))
                    batch.clear()
            if batch:
                await asyncio.to_thread(incoming.write, bytes(batch))
        except BaseException:
            await asyncio.to_thread(incoming.discard)
            raise
        return incoming

    async def discard(self, incoming: IncomingBlob) -> None:
        await asyncio.to_thread(incoming.discard)

    async def ingest(self, incoming: IncomingBlob, fields: NewAssetFields) -> tuple[AssetRecord, bool]:
        """Make a received content an asset; if the store holds it already, keep the existing record."""
        try:
            content_hash = await asyncio.to_thread(incoming.finish)
        except BaseException:
            await asyncio.to_thread(incoming.discard)
            raise
        return await asyncio.to_thread(self._adopt, incoming, content_hash, fields)

    async def push(
        self, fields: NewAssetFields, claimed_hash: str, claimed_size: int, chunks: AsyncIterable[bytes]
    ) -> tuple[AssetRecord, bool]:
        """A peer's asset: re-hash the content and refuse a mismatch (nothing kept)."""
        existing = await self.get(claimed_hash)
        if existing is not None:
            async for _ in chunks:  # drain, so the client can finish sending and read our answer
                pass
            return existing, False
        incoming = await self.receive(chunks)
        try:
            actual_hash = await asyncio.to_thread(incoming.finish)
            if actual_hash != claimed_hash:
                raise HashMismatch(claimed_hash, actual_hash)
            if claimed_size and incoming.size != claimed_size:
                raise SizeMismatch(claimed_size, incoming.size)
        except BaseException:
            await asyncio.to_thread(incoming.discard)
            raise
        return await asyncio.to_thread(self._adopt, incoming, actual_hash, fields)

    def push_batch(self) -> PushBatch:
        """Many peers' assets at once (`async with store.push_batch() as batch`): see push_batch.py."""
        return PushBatch(self.blobs, self.index, self.new_record, self._publish)

    def _adopt(self, incoming: IncomingBlob, content_hash: str, fields: NewAssetFields) -> tuple[AssetRecord, bool]:
        record = self.new_record(content_hash, incoming.size, fields)
        with self.index.write(self._publish) as tx:
            existing = tx.get(content_hash)
            if existing is not None:
                incoming.discard()
                return existing, False
            final_path = self.blobs.adopt(incoming, record)
            tx.on_rollback(lambda: final_path.unlink(missing_ok=True))
            record = tx.insert(record)
        return record, True

    @staticmethod
    def new_record(content_hash: str, size: int, fields: NewAssetFields) -> AssetRecord:
        """The record of a new asset: the store's one rule for its time, type, extension and file name."""
        timestamp = fields.timestamp if fields.timestamp else now_ms()
        mime_type = fields.mime_type
        if not mime_type and fields.human_file_name:
            mime_type = mimetypes.guess_type(fields.human_file_name, strict=False)[0] or ""
        mime_type = mime_type or DEFAULT_MIME_TYPE
        extension = fields.extension or extension_from_name(fields.human_file_name)
        if not extension and mime_type != DEFAULT_MIME_TYPE:
            extension = (mimetypes.guess_extension(mime_type, strict=False) or "").lstrip(".")
        return AssetRecord(
            hash=content_hash,
            timestamp=timestamp,
            size=size,
            file_name=asset_file_name(timestamp, content_hash, fields.tags, extension),
            mime_type=mime_type,
            tags=tuple(fields.tags),
            description=fields.description,
            human_file_name=fields.human_file_name,
            human_readable_path=fields.human_readable_path,
            application=fields.application,
            user=fields.user,
            trashed=fields.trashed,
            meta_updated_ms=fields.meta_updated_ms,
            meta_origin=fields.meta_origin,
            extension=extension,
        )

    # --- metadata -----------------------------------------------------------------------------

    async def apply_meta(self, asset_hash: str, change: MetaChange) -> tuple[bool, AssetRecord]:
        """Last writer wins by (updated_ms, origin): apply only a change newer than the one held."""
        return await asyncio.to_thread(self._apply_meta, asset_hash, change, False)

    async def edit_locally(
        self,
        asset_hash: str,
        *,
        tags: Sequence[str] | None = None,
        description: str | None = None,
        trashed: bool | None = None,
    ) -> AssetRecord:
        """A change made through the public API: stamped now (and after whatever is held)."""
        current = await self.require(asset_hash)
        change = MetaChange(
            tags=tuple(current.tags if tags is None else tags),
            description=current.description if description is None else description,
            trashed=current.trashed if trashed is None else trashed,
            updated_ms=now_ms(),
            origin="",
        )
        _, record = await asyncio.to_thread(self._apply_meta, asset_hash, change, True)
        return record

    def _apply_meta(self, asset_hash: str, change: MetaChange, local: bool) -> tuple[bool, AssetRecord]:
        with self.index.write(self._publish) as tx:
            current = tx.get(asset_hash)
            if current is None:
                raise AssetNotFound(asset_hash)
            held = (current.meta_updated_ms, current.meta_origin)
            if local:
                if (current.tags, current.description, current.trashed) == (
                    change.tags,
                    change.description,
                    change.trashed,
                ):
                    return False, current  # nothing to change: keep the clock still
                change = MetaChange(
                    change.tags, change.description, change.trashed, max(change.updated_ms, held[0] + 1), ""
                )
            elif change.clock() <= held:
                return False, current
            updated = current.with_changes(
                tags=tuple(change.tags),
                description=change.description,
                trashed=change.trashed,
                meta_updated_ms=change.updated_ms,
                meta_origin=change.origin,
                file_name=asset_file_name(current.timestamp, current.hash, change.tags, current.extension),
            )
            self.blobs.relocate(current, updated)
            tx.on_rollback(lambda: self.blobs.relocate(updated, current))
            return True, tx.update(updated)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, asset_hash: str) -> AssetRecord | None:
        if not is_asset_hash(asset_hash):
            return None
        return await asyncio.to_thread(self.index.get, asset_hash)

    async def require(self, asset_hash: str) -> AssetRecord:
        record = await self.get(asset_hash)
        if record is None:
            raise AssetNotFound(asset_hash)
        return record

    async def records(self, include_trashed: bool = False) -> list[AssetRecord]:
        return await asyncio.to_thread(self.index.records, include_trashed)

    async def search(self, tags: Sequence[str], include_trashed: bool = False) -> list[AssetRecord]:
        return await asyncio.to_thread(self.index.search, list(tags), include_trashed)

    async def digests_since(self, since: int, limit: int | None = None) -> DigestPage:
        return await asyncio.to_thread(self.index.digests_since, since, limit)

    async def changes_since(self, since: int) -> list[Change]:
        return await asyncio.to_thread(self.index.changes_since, since)

    async def changes_watermark(self) -> int:
        return await asyncio.to_thread(self.index.watermark)

    async def read_content(
        self, asset_hash: str, offset: int = 0, chunk_size: int = READ_CHUNK_BYTES
    ) -> tuple[AssetRecord, AsyncIterator[bytes]]:
        """Open an asset's file (following a concurrent move to or from .trash) and stream it."""
        for _attempt in range(3):
            record = await self.require(asset_hash)
            try:
                handle = await asyncio.to_thread(self.blobs.open_content, record)
            except FileNotFoundError:
                continue  # trashed, restored or retagged between the lookup and the open
            return record, self._chunks(handle, min(offset, record.size), chunk_size)
        raise AssetNotFound(asset_hash)

    @staticmethod
    async def _chunks(file: BinaryIO, offset: int, chunk_size: int) -> AsyncIterator[bytes]:
        try:
            if offset:
                await asyncio.to_thread(file.seek, offset)
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            file.close()
