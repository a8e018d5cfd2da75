"""Verified assets from staging into our store, then the received-from-peer mark.

A transfer that arrived whole and hashed right is journaled as completed; the machine then asks for the
push (StoreAsset), here, apart from any session: a link that drops after the last byte no longer
matters, and a push our store could not take is tried again from the same staged file. Only after the
store has the asset is it marked received and its staged file removed.

Pushes are taken from the queue in groups (many small assets arrive together): each group's marks are
journaled in one record, and a store with a batch route takes the group in one request.
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
from cansync.wire.pb import can_sync_pb2
from cansync.wire.peer_messages import meta_from_record

log = logging.getLogger(__name__)

PARALLEL_PUSHES = 4
PUSHES_PER_GROUP = 64


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
                group_of = [await self.queue.get()]
                while len(group_of) < PUSHES_PER_GROUP and not self.queue.empty():
                    group_of.append(self.queue.get_nowait())
                fresh = {c.hash: c for c in group_of if c.hash not in self._busy}
                if not fresh:
                    continue
                await self._slots.acquire()
                self._busy.update(fresh)
                group.create_task(self._push_group(list(fresh.values())), name=f"push-{len(fresh)}")

    async def _push_group(self, commands: list[StoreAsset]) -> None:
        try:
            events = await self._store_all(commands)
            try:
                await self.ledger.record(*events)
            except Exception as exc:  # noqa: BLE001 - the assets stay pending in the state: retried later
                log.error("could not journal %d push(es): %s", len(events), exc)
                return
            landed = [e.hash for e in events if e.kind is EventKind.ASSET_RECEIVED and e.hash is not None]
            await asyncio.to_thread(self._discard_all, landed)
        finally:
            self._busy.difference_update(c.hash for c in commands)
            self._slots.release()

    def _discard_all(self, assets: list[str]) -> None:
        for asset in assets:
            self.staging.discard(asset)

    async def _store_all(self, commands: list[StoreAsset]) -> list[Event]:
        """Push the group (in one request where the store has a batch route); an event per asset: its
        received mark, or the failure that says whose fault it was."""
        events: dict[str, Event] = {}
        present: list[StoreAsset] = []

        def fail(command: StoreAsset, failure: Failure, reason: str) -> None:
            events[command.hash] = failed_transfer(command.peer, command.hash, Direction.IN, failure, reason)

        for command in commands:
            path = self.staging.path(command.hash)
            if await asyncio.to_thread(path.exists):
                present.append(command)
            else:
                reason = f"staged file {path} is gone"
                events[command.hash] = failed_transfer(
                    command.peer, command.hash, Direction.IN, Failure.STAGING_LOST, reason
                )
        if present:
            items = [(meta_from_record(c.meta), self.staging.path(c.hash)) for c in present]
            try:
                results = await self.can.push_batch(items)
            except CanServiceError as exc:  # the whole request failed: our store is down or broken
                ours = isinstance(exc, CanServiceUnavailable) or (exc.status or 0) >= 500 or exc.status in (401, 403)
                failure = Failure.STORE_UNAVAILABLE if ours else Failure.STORE_REFUSED
                log.error("could not store %d asset(s) locally: %s", len(present), exc)
                for command in present:
                    fail(command, failure, f"local store: {exc}")
            except OSError as exc:
                for c in present:
                    events[c.hash] = failed_transfer(
                        c.peer, c.hash, Direction.IN, Failure.STAGING_LOST, f"staged file: {exc}"
                    )
            else:
                for command, result in zip(present, results, strict=True):
                    if result.outcome == can_sync_pb2.PUSH_REFUSED:  # this asset alone: the sender's record
                        log.error("could not store %s locally: %s", command.hash[:12], result.reason)
                        fail(command, Failure.STORE_REFUSED, f"local store refused it: {result.reason}")
                    else:
                        mark = AssetReceived(int(command.meta.get("timestamp", 0)))
                        events[command.hash] = Event.of(mark, peer=command.peer, hash=command.hash)
        return [events[c.hash] for c in commands]
