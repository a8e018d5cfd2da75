"""Reading exact byte counts from a streamed HTTP body (an async iterator of chunks of any size)."""

from __future__ import annotations

from collections.abc import AsyncIterator


class StreamEnded(Exception):
    """The body ended before the bytes the protocol promised."""


class ByteStream:
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._ended = False

    async def _fill(self) -> bool:
        """Get one more chunk into the buffer; False at the end of the body."""
        if self._ended:
            return False
        try:
            self._buffer += await anext(self._chunks)
        except StopAsyncIteration:
            self._ended = True
            return False
        return True

    async def at_end(self) -> bool:
        while not self._buffer:
            if not await self._fill():
                return True
        return False

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill():
                raise StreamEnded(f"body ended after {len(self._buffer)} of {size} expected bytes")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_up_to(self, size: int) -> bytes:
        """At least one byte and at most size; raises StreamEnded when nothing is left."""
        if not self._buffer and not await self._fill():
            raise StreamEnded("body ended while content bytes were still expected")
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data
