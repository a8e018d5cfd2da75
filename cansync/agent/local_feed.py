"""Our own store's changes, journaled: SSE from the store for speed, a `since=` poll as the safety net.

Both paths end in the same catch-up: ask the store for everything changed since the journal's store
watermark and journal it. SSE only says "something changed, look now", so a dropped or reordered SSE
event can delay a change by at most one poll interval and can never lose it.
"""

from __future__ import annotations

import asyncio
import logging

from cansync.agent.ledger import Ledger, LedgerError
from cansync.agent.store_records import meta_value
from cansync.can.errors import CanServiceAuthError, CanServiceError
from cansync.can.store_client import StoreClient
from cansync.core.events import Event, LocalAssetSeen, MetadataChanged
from cansync.journal.errors import JournalError
from cansync.outages import OutageLog
from cansync.portable.timeouts import wait_for

log = logging.getLogger(__name__)

EVENTS_PER_RECORD = 2000
PAGE_DIGESTS = 10_000


class LocalFeed:
    def __init__(
        self,
        can: StoreClient,
        ledger: Ledger,
        *,
        our_id: str,
        poll_interval: float,
    ) -> None:
        self.can = can
        self.ledger = ledger
        self.our_id = our_id
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.caught_up = asyncio.Event()
        self.reachable = False  # did the store answer the last catch-up?
        self._outages = OutageLog(log)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._listen(), name="store-events")
            while True:
                try:
                    await self.catch_up()
                    self.caught_up.set()
                    self.reachable = True
                    self._outages.resolved("store", "the local store %s answers again", self.can.base_url)
                except CanServiceAuthError as exc:
                    self.reachable = False
                    self._outages.problem("sync_api_key", "%s", exc, level=logging.ERROR)
                except CanServiceError as exc:
                    self.reachable = False
                    self._outages.problem("store", "cannot read the local store's changes: %s (will retry)", exc)
                except (JournalError, LedgerError) as exc:
                    # nothing was folded, so the watermark did not move: the next round journals it all again
                    self._outages.problem("journal", "cannot journal the local store's changes: %s (will retry)", exc)
                try:
                    await wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in self.can.events(since=self.ledger.state.store_watermark):
                    self._wake.set()
            except CanServiceError as exc:
                self._outages.problem("events", "store event stream failed: %s; the poll keeps things moving", exc)
            await asyncio.sleep(self.poll_interval)

    async def catch_up(self) -> int:
        """Journal every change the store made since the journal's watermark, a page at a time (a new
        agent beside a million-asset store never holds the whole list); return how many."""
        count = 0
        async with self._lock:
            since = self.ledger.state.store_watermark
            async for page in self.can.hashes_pages(since, page_size=PAGE_DIGESTS):
                digests = sorted((d for d in page.assets if d.changed_seq > since), key=lambda d: d.changed_seq)
                if not digests:
                    continue
                state = self.ledger.state
                changed_meta = [
                    d.hash
                    for d in digests
                    if d.meta_updated_ms
                    and (state.meta.get(d.hash) is None or state.meta[d.hash].updated_ms < d.meta_updated_ms)
                ]
                for start in range(0, len(digests), EVENTS_PER_RECORD):
                    seen = [
                        Event.of(LocalAssetSeen(d.timestamp, d.size, d.changed_seq), hash=d.hash)
                        for d in digests[start : start + EVENTS_PER_RECORD]
                    ]
                    await self.ledger.record(*seen)
                if changed_meta:
                    await self._journal_metadata(changed_meta)
                count += len(digests)
        return count

    async def _journal_metadata(self, hashes: list[str]) -> None:
        metas = await self.can.metadata(hashes)
        events = []
        for meta in metas:
            value = meta_value(meta, self.our_id)
            change = MetadataChanged(
                value.updated_ms, value.origin, value.tags, value.description, value.trashed, meta.changed_seq
            )
            events.append(Event.of(change, hash=meta.hash))
        if events:
            await self.ledger.record(*events)
