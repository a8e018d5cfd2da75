"""Winning metadata changes into our store, in the order the machine decided them.

A change that cannot be written now stays journaled: the next catch-up or reconnect brings it again,
and the machine re-applies a change it sees twice, so nothing is lost by letting this one go.
"""

from __future__ import annotations

import asyncio
import logging

from cansync.can.errors import CanServiceError
from cansync.can.store_client import StoreClient
from cansync.core.commands import ApplyMetadata
from cansync.wire.peer_messages import meta_update

log = logging.getLogger(__name__)


class MetadataWriter:
    def __init__(self, can: StoreClient, queue: asyncio.Queue[ApplyMetadata]) -> None:
        self.can = can
        self.queue = queue
        self._failing = False

    async def run(self) -> None:
        while True:
            command = await self.queue.get()
            try:
                await self.can.update_meta(meta_update(command.hash, command.value))
            except CanServiceError as exc:
                if not self._failing:  # once per outage
                    log.error("could not apply a metadata change to %s: %s", command.hash[:12], exc)
                self._failing = True
            else:
                self._failing = False
