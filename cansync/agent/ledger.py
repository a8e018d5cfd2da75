"""The one way in: every fact is appended to the journal, then folded into the state, in journal order.

A single writer task drains the queue of facts, appends them in one transaction, folds them in seq
order and hands each caller the commands its own events implied. Folding in seq order matters: the
machine drops an event whose seq is not newer than its peer's last one, so two callers must never
fold out of order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from cansync.core.commands import Command
from cansync.core.events import Event
from cansync.core.machine import SyncState
from cansync.journal.recorder import Journal
from cansync.journal.replay import rebuild_state, write_snapshot

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 20_000
"""Events between snapshots: a restart folds at most this many events after the newest snapshot."""


class LedgerClosed(RuntimeError):
    pass


class Ledger:
    def __init__(self, journal: Journal, state: SyncState, last_seq: int) -> None:
        self.journal = journal
        self.state = state
        self._snapshot_seq = last_seq
        self._queue: asyncio.Queue[tuple[Sequence[Event], asyncio.Future[list[Command]]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, journal: Journal) -> Ledger:
        state, last_seq = await rebuild_state(journal)
        ledger = cls(journal, state, last_seq)
        ledger._writer = asyncio.create_task(ledger._write_loop(), name="ledger-writer")
        return ledger

    async def record(self, *events: Event) -> list[Command]:
        """Journal these events (together), fold them, return the commands they imply."""
        if self._closed:
            raise LedgerClosed("the journal is closed")
        if not events:
            return []
        done: asyncio.Future[list[Command]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((events, done))
        return await done

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            flat = [event for events, _ in batch for event in events]
            try:
                journaled = await self.journal.append(flat)
            except Exception as exc:  # the journal failing (disk full...) must reach every caller
                log.error("journal append failed: %s", exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            position = 0
            for events, done in batch:
                commands: list[Command] = []
                for event in journaled[position : position + len(events)]:
                    commands.extend(self.state.apply(event))
                position += len(events)
                if not done.done():
                    done.set_result(commands)
            if self.state.last_seq - self._snapshot_seq >= SNAPSHOT_EVERY:
                await self.snapshot()

    async def snapshot(self) -> None:
        await write_snapshot(self.journal, self.state, self.state.last_seq)
        self._snapshot_seq = self.state.last_seq

    async def close(self) -> None:
        if self._closed:
            return
        # let queued facts land before stopping the writer
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self.state.last_seq > self._snapshot_seq:
            await self.snapshot()
