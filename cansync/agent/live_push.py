"""The push of a large incoming asset into our store while it is still arriving.

Without it, a 1 GiB asset crosses the network, then is read back from staging and pushed: the second
leg adds seconds after the last byte. Here the store receives each chunk as it is staged; it checks the
digest at the end and keeps nothing that does not match, so nothing unverified lands. The staged copy
stays the resume point: if the push fails (the store is down or slow to answer) the transfer goes on,
and the intake pushes from staging afterwards, as for any asset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from cansync.can.errors import CanServiceError
from cansync.can.store_client import StoreClient
from cansync.core import messages as msg
from cansync.wire.peer_messages import meta_from_record

log = logging.getLogger(__name__)

CHUNKS_AHEAD = 4  # chunks the push may lag behind the transfer before the transfer waits for it
PREFIX_BLOCK = 4 * 1024 * 1024


class LivePush:
    def __init__(self, can: StoreClient, header: msg.AssetHeader, staged: Path) -> None:
        self._can = can
        self._header = header
        self._staged = staged
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=CHUNKS_AHEAD)
        self.error: str | None = None
        # owned here: finish() awaits it, abandon() cancels and awaits it
        self._task = asyncio.ensure_future(self._push())

    async def _body(self) -> AsyncIterator[bytes]:
        if self._header.offset:  # a resume: the bytes staged before it come from the staged file
            handle = await asyncio.to_thread(open, self._staged, "rb")
            try:
                left = self._header.offset
                while left:
                    block = await asyncio.to_thread(handle.read, min(PREFIX_BLOCK, left))
                    if not block:
                        raise OSError(f"staged file {self._staged} is shorter than {self._header.offset}")
                    left -= len(block)
                    yield block
            finally:
                handle.close()
        while (chunk := await self._chunks.get()) is not None:
            yield chunk

    async def _push(self) -> None:
        try:
            await self._can.push(meta_from_record(self._header.record), self._body())
        except (CanServiceError, OSError) as exc:
            self.error = str(exc)
            log.info("the live push of %s stopped (%s); it is pushed from staging instead", self._header.hash[:12], exc)

    async def feed(self, chunk: bytes) -> None:
        """Hand the push the next chunk; waits while the store is slower than the network, never on a push
        that has failed."""
        if self._task.done():
            return
        put = asyncio.ensure_future(self._chunks.put(chunk))
        await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()

    async def finish(self) -> bool:
        """Every chunk was fed and verified: end the body; did the store take the asset?"""
        if not self._task.done():
            put = asyncio.ensure_future(self._chunks.put(None))
            await asyncio.wait({put, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.error is None and not self._task.cancelled()

    async def abandon(self) -> None:
        """The transfer failed: stop the push (the store keeps nothing of it)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
