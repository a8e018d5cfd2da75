"""Winning metadata changes into our store, in the order the machine decided them.

A change our store cannot take now (it is down, or failing on its side) is kept, the newest per asset,
and written again every RETRY_SECS until the store takes it: on a quiet mesh nothing else would bring
it back, and the store would show a losing value for good. A change the store refuses (a 4xx) is not
retried: the next catch-up or reconnect brings it again, and the machine re-applies a change it sees
twice.
"""

from __future__ import annotations

import asyncio
import logging

from cansync.can.errors import CanServiceError, CanServiceUnavailable
from cansync.can.store_client import StoreClient
from cansync.core.commands import ApplyMetadata
from cansync.portable.timeouts import wait_for
from cansync.wire.peer_messages import meta_update

log = logging.getLogger(__name__)

RETRY_SECS = 2.0


class MetadataWriter:
    def __init__(self, can: StoreClient, queue: asyncio.Queue[ApplyMetadata]) -> None:
        self.can = can
        self.queue = queue
        self._failing = False
        self.waiting: dict[str, ApplyMetadata] = {}  # changes the store could not take yet, by asset

    async def run(self) -> None:
        while True:
            try:
                command = await wait_for(self.queue.get(), RETRY_SECS if self.waiting else None)
            except TimeoutError:
                pass
            else:
                self.waiting[command.hash] = command  # a newer winner for an asset replaces an older one
            for asset, command in list(self.waiting.items()):
                if not await self._write(command):
                    break  # the store still fails: the rest wait for the next try
                if self.waiting.get(asset) is command:
                    del self.waiting[asset]

    async def _write(self, command: ApplyMetadata) -> bool:
        """False when the store could not take it now (worth another try); True once it is settled."""
        try:
            await self.can.update_meta(meta_update(command.hash, command.value))
        except CanServiceError as exc:
            if not self._failing:  # once per outage
                log.error("could not apply a metadata change to %s: %s", command.hash[:12], exc)
            self._failing = True
            temporary = isinstance(exc, CanServiceUnavailable) or (exc.status or 0) >= 500
            return not temporary
        self._failing = False
        return True
