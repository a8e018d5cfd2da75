"""Reading a /sync/pull response: delimited PullItem messages, each followed by its content bytes."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable

from google.protobuf.message import DecodeError

from cansync.can.byte_stream import ByteStream, StreamEnded
from cansync.wire.pb import can_sync_pb2

LENGTH_PREFIX = struct.Struct(">I")
MAX_ITEM_BYTES = 16 * 1024 * 1024
DEFAULT_CHUNK_BYTES = 256 * 1024


ErrorFactory = Callable[[str], Exception]


class PulledAsset:
    """One asset of a pull answer. Consume content() before moving on to the next asset (whatever is
    left unread is skipped when the iteration moves on)."""

    def __init__(self, item: can_sync_pb2.PullItem, stream: ByteStream, error: ErrorFactory) -> None:
        self.item = item
        self._stream = stream
        self._error = error
        self.remaining = item.meta.size - item.offset if item.found else 0

    @property
    def meta(self) -> can_sync_pb2.AssetMeta:
        return self.item.meta

    @property
    def found(self) -> bool:
        return self.item.found

    @property
    def hash(self) -> str:
        return self.item.hash

    async def content(self, chunk_size: int = DEFAULT_CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The content from item.offset on, in chunks of chunk_size bytes (the last one may be shorter).
        Whole chunks matter to the agent: each one it relays becomes a frame and a journal checkpoint."""
        while self.remaining > 0:
            try:
                chunk = await self._stream.read_exactly(min(chunk_size, self.remaining))
            except StreamEnded as exc:
                raise self._error(f"asset {self.hash}: content cut off, {self.remaining} bytes missing") from exc
            self.remaining -= len(chunk)
            yield chunk

    async def skip_rest(self) -> None:
        async for _ in self.content():
            pass


async def read_pulled_assets(stream: ByteStream, error: ErrorFactory) -> AsyncIterator[PulledAsset]:
    """The assets of a pull answer in order; error(message) makes the exception for a bad body."""
    previous: PulledAsset | None = None
    while True:
        if previous is not None:
            await previous.skip_rest()
        if await stream.at_end():
            return
        try:
            (length,) = LENGTH_PREFIX.unpack(await stream.read_exactly(LENGTH_PREFIX.size))
            if length > MAX_ITEM_BYTES:
                raise error(f"pull item of {length} bytes exceeds the {MAX_ITEM_BYTES}-byte limit")
            item = can_sync_pb2.PullItem()
            item.ParseFromString(await stream.read_exactly(length))
        except StreamEnded as exc:
            raise error(f"pull answer cut off inside an item header: {exc}") from exc
        except DecodeError as exc:
            raise error(f"malformed PullItem in the pull answer: {exc}") from exc
        previous = PulledAsset(item, stream, error)
        yield previous


def decode_pull_records(payload: bytes, error: ErrorFactory) -> list[can_sync_pb2.PullItem]:
    """The found items of a meta_only pull answer (records without content)."""
    items = []
    position = 0
    while position < len(payload):
        if position + LENGTH_PREFIX.size > len(payload):
            raise error("pull answer cut off inside a length prefix")
        (length,) = LENGTH_PREFIX.unpack_from(payload, position)
        position += LENGTH_PREFIX.size
        if length > MAX_ITEM_BYTES or position + length > len(payload):
            raise error(f"pull item of {length} bytes does not fit the answer")
        item = can_sync_pb2.PullItem()
        try:
            item.ParseFromString(payload[position : position + length])
        except DecodeError as exc:
            raise error(f"malformed PullItem in the pull answer: {exc}") from exc
        position += length
        if item.found:
            items.append(item)
    return items
