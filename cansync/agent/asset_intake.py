"""Verified assets from staging into our store, then the received-from-peer mark.

A transfer that arrived whole and hashed right is journaled as completed; the machine then asks for the
push (StoreAsset), here, apart from any session: a link that drops after the last byte no longer
matters, and a push our store could not take is tried again from the same staged file. Only after the
store has the asset is it marked received and its staged file removed.
"""

from __future__ import annotations

import asyncio
import logging

from cansync.agent.ledger import Ledger
from cansync.agent.staging import StagingArea
from cansync.can.errors import CanServiceError, CanServiceUnavailable
from cansync.can.store_client import StoreClient
from cansync.core.commands import StoreAsset
from cansync.core.events import AssetReceived, Direction, Event, EventKind
from cansync.core.faults import Failure, failed_transfer
from cansync.wire.peer_messages import meta_from_record

log = logging.getLogger(__name__)

PARALLEL_PUSHES = 4


class AssetIntake:
    def __init__(
        self, can: StoreClient, staging: StagingArea, ledger: Ledger, queue: asyncio.Queue[StoreAsset]
    ) -> None:
        self.can = can
        self.staging = staging
        self.ledger = ledger
        self.queue = queue
        self._busy: set[str] = set()  # one push per asset at a time: it owns the staged file meanwhile
        self._slots = asyncio.Semaphore(PARALLEL_PUSHES)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while True:
                command = await self.queue.get()
                if command.hash in self._busy:
                    continue
                await self._slots.acquire()
                self._busy.add(command.hash)
                group.create_task(self._push(command), name=f"push-{command.hash[:8]}")

    async def _push(self, command: StoreAsset) -> None:
        asset = command.hash
        try:
            event = await self._store(command)
            try:
                await self.ledger.record(event)
            except Exception as exc:  # noqa: BLE001 - the asset stays pending in the state: retried later
                log.error("could not journal the push of %s: %s", asset[:12], exc)
                return
            if event.kind is EventKind.ASSET_RECEIVED:
                await asyncio.to_thread(self.staging.discard, asset)
        finally:
            self._busy.discard(asset)
            self._slots.release()

    async def _store(self, command: StoreAsset) -> Event:
        asset, peer = command.hash, command.peer
        path = self.staging.path(asset)
        if not await asyncio.to_thread(path.exists):
            return failed_transfer(peer, asset, Direction.IN, Failure.STAGING_LOST, f"staged file {path} is gone")
        try:
            await self.can.push(meta_from_record(command.meta), path)
        except CanServiceError as exc:
            ours = isinstance(exc, CanServiceUnavailable) or (exc.status or 0) >= 500 or exc.status in (401, 403)
            failure = Failure.STORE_UNAVAILABLE if ours else Failure.STORE_REFUSED
            log.error("could not store %s locally: %s", asset[:12], exc)
            return failed_transfer(peer, asset, Direction.IN, failure, f"local store: {exc}")
        except OSError as exc:
            return failed_transfer(peer, asset, Direction.IN, Failure.STAGING_LOST, f"staged file: {exc}")
        return Event.of(AssetReceived(int(command.meta.get("timestamp", 0))), peer=peer, hash=asset)
