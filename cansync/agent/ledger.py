"""The one way in: every fact is appended to the journal, then folded into the state, in journal order,
and every command the fold implies is handed to the agent. No call site sees commands or drops them.

A single writer task takes what callers queued and works through it in order:
- facts (`record`) are appended in one transaction and folded;
- a decision (`decide`) is a pure function of the state: it runs only once everything queued before it
  is folded, and its events are appended and folded before anything after it is decided, so checking
  the state and journaling what follows are one step;
- after each fold, the machine's own decisions (which assets to request from whom, which metadata
  change lost) are journaled and folded at once, before the writer looks at the queue again.

The writer cannot die silently: a failing append fails only the callers whose events it held, a
failing fold or snapshot is logged and reported, and if the loop itself ever stops it is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cansync.core.commands import Command
from cansync.core.events import Event
from cansync.core.machine import SyncState
from cansync.journal.recorder import Journal, wall_ms
from cansync.journal.replay import rebuild_state, write_snapshot

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 10_000
"""The fewest events between snapshots: with a small state, a restart (or `cansync status` after a crash)
folds at most this many events after the newest snapshot."""
SNAPSHOT_CHARS_PER_EVENT = 512
"""A bigger state waits longer: one event more per this many characters of its latest snapshot. So the
time spent writing snapshots stays a small share of journaling however large the state grows (a
million assets make a snapshot of about 50 MB), and the tail a restart folds stays in proportion to the
snapshot it loads."""
SNAPSHOT_RETRY_EVENTS = 2_000
"""After a failed snapshot, try again once this many more events are folded."""

T = TypeVar("T")


def events_between_snapshots(snapshot_chars: int) -> int:
    """How many events to fold after a snapshot of this size before writing the next one."""
    return max(SNAPSHOT_EVERY, snapshot_chars // SNAPSHOT_CHARS_PER_EVENT)


Decision = Callable[[SyncState], tuple[Sequence[Event], Any]]
Dispatch = Callable[[Sequence[Command]], None]


class LedgerError(RuntimeError):
    """The ledger could not journal or fold what a caller gave it (the message says which)."""


class LedgerClosed(LedgerError):
    pass


@dataclass(slots=True)
class _Item:
    events: Sequence[Event] = ()
    decide: Decision | None = None
    tick: bool = False  # a periodic look at what waits on time (deferred requests, store pushes to retry)
    result: Any = None
    journaled: list[Event] = field(default_factory=list)
    done: asyncio.Future[Any] | None = None


class Ledger:
    def __init__(
        self,
        journal: Journal,
        state: SyncState,
        last_seq: int,
        *,
        dispatch: Dispatch,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.journal = journal
        self.state = state
        self.dispatch = dispatch
        self.clock = clock
        self._snapshot_seq = last_seq
        self._next_snapshot = last_seq + SNAPSHOT_EVERY
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        self.fold_failures = 0
        self.last_error: str | None = None  # the latest failure, for status and the dashboard

    @classmethod
    async def open(cls, journal: Journal, *, dispatch: Dispatch, clock: Callable[[], int] = wall_ms) -> Ledger:
        state, last_seq = await rebuild_state(journal)
        ledger = cls(journal, state, last_seq, dispatch=dispatch, clock=clock)
        ledger._start_writer()
        return ledger

    # ------------------------------------------------------------------ callers

    async def record(self, *events: Event) -> list[Event]:
        """Journal these events (together) and fold them; returns them as journaled. What they imply is
        dispatched before this returns."""
        if not events:
            return []
        item = await self._submit(_Item(events=events))
        return item.journaled

    async def decide(self, decision: Callable[[SyncState], tuple[Sequence[Event], T]]) -> T:
        """Run `decision` against the state as it stands after everything queued before it, journal and
        fold the events it returns before anything else is decided, and return its result."""
        item = await self._submit(_Item(decide=decision))
        result: T = item.result
        return result

    async def tick(self) -> None:
        """Act on what waits on the clock: requests deferred after a failure of ours, pushes to retry."""
        await self._submit(_Item(tick=True))

    async def _submit(self, item: _Item) -> _Item:
        if self._closed:
            raise LedgerClosed("the journal is closed")
        item.done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(item)
        await item.done
        return item

    # ------------------------------------------------------------------ the writer

    def _start_writer(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="ledger-writer")
        self._writer.add_done_callback(self._writer_stopped)

    def _writer_stopped(self, task: asyncio.Task[None]) -> None:
        if self._closed or task.cancelled():
            return
        # _write_loop catches everything; reaching here is a bug. Never leave callers waiting on a dead
        # writer: start a new one (their items are still queued).
        log.error("the ledger's writer stopped (%r); starting it again", task.exception())
        self._start_writer()

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            items = [first]
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:  # close(): finish what came before, then stop
                    stopping = True
                    break
                items.append(item)
            try:
                await self._work_through(items)
            except Exception as exc:  # noqa: BLE001 - whatever broke, every caller hears of it
                log.exception("ledger: unexpected failure")
                self.last_error = f"ledger: {exc!r}"
                self._fail(items, LedgerError(f"the ledger failed: {exc!r}"))

    async def _work_through(self, items: list[_Item]) -> None:
        group: list[_Item] = []
        for item in items:
            if item.decide is not None:
                await self._commit(group)
                group = []
                try:
                    events, item.result = item.decide(self.state)
                except Exception as exc:  # noqa: BLE001 - a decision that raises fails its caller only
                    self._fail([item], exc)
                    continue
                item.events = events
            group.append(item)
        await self._commit(group)

    async def _commit(self, group: list[_Item]) -> None:
        events = [event for item in group for event in item.events]
        failed: list[str] = []
        commands: list[Command] = []
        if events:
            try:
                journaled = await self.journal.append(events)
            except Exception as exc:  # noqa: BLE001 - the disk is full, the file is gone: the callers decide
                self.last_error = f"journal append failed: {exc}"
                log.error("%s", self.last_error)
                self._fail(group, exc)
                return
            position = 0
            for item in group:
                item.journaled = journaled[position : position + len(item.events)]
                position += len(item.events)
                for event in item.journaled:
                    commands.extend(self._fold(event, failed))
        if any(item.tick for item in group):
            commands.extend(self.state.store_retries(self.clock()))
        commands = await self._follow_up(commands, failed)
        self._dispatch(commands)
        error = LedgerError(f"journaled, but could not be folded: {'; '.join(failed)}") if failed else None
        for item in group:
            if item.done is not None and not item.done.done():
                if error is not None:
                    item.done.set_exception(error)
                else:
                    item.done.set_result(None)
        await self._maybe_snapshot()

    async def _follow_up(self, commands: list[Command], failed: list[str]) -> list[Command]:
        """Journal and fold the machine's own decisions (lost metadata changes, requests) until the state
        implies no more; returns every command to carry out."""
        to_dispatch: list[Command] = []
        while True:
            follow_ups, carry_out = self.state.decide(commands, self.clock())
            to_dispatch.extend(carry_out)
            if not follow_ups:
                return to_dispatch
            try:
                journaled = await self.journal.append(follow_ups)
            except Exception as exc:  # noqa: BLE001 - decided again once the journal takes writes
                self.last_error = f"journal append failed: {exc}"
                log.error("could not journal %d decision(s): %s", len(follow_ups), exc)
                self.state.plan_again(follow_ups)
                return to_dispatch
            commands = []
            for event in journaled:
                commands.extend(self._fold(event, failed))

    def _fold(self, event: Event, failed: list[str]) -> list[Command]:
        try:
            return self.state.apply(event)
        except Exception as exc:  # noqa: BLE001 - a bug in the machine must not stop the agent
            self.fold_failures += 1
            text = f"event {event.seq} ({event.kind}): {exc!r}"
            self.last_error = f"fold failed: {text}"
            log.error("could not fold %s", text)
            failed.append(text)
            return []

    def _dispatch(self, commands: list[Command]) -> None:
        if not commands:
            return
        try:
            self.dispatch(commands)
        except Exception:  # noqa: BLE001 - the writer must outlive a bug in the agent's dispatch
            log.exception("dispatching %d command(s) failed", len(commands))

    @staticmethod
    def _fail(items: list[_Item], exc: BaseException) -> None:
        for item in items:
            if item.done is not None and not item.done.done():
                item.done.set_exception(exc)

    # ------------------------------------------------------------------ snapshots

    async def _maybe_snapshot(self) -> None:
        if self.state.last_seq < self._next_snapshot:
            return
        try:
            await self.snapshot()
        except Exception as exc:  # noqa: BLE001 - a snapshot is a shortcut; the journal has every event
            self.last_error = f"snapshot failed: {exc}"
            log.error("could not write a snapshot (will try again): %s", exc)
            self._next_snapshot = self.state.last_seq + SNAPSHOT_RETRY_EVENTS

    async def snapshot(self) -> None:
        seq = self.state.last_seq
        chars = await write_snapshot(self.journal, self.state, seq)
        self._snapshot_seq = seq
        self._next_snapshot = seq + events_between_snapshots(chars)

    async def close(self) -> None:
        """Work through everything queued so far, stop the writer, and leave a snapshot for the next start."""
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        if writer is not None and not writer.done():
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        if self.state.last_seq > self._snapshot_seq:
            try:
                await self.snapshot()
            except Exception as exc:  # noqa: BLE001 - the next start folds the tail instead
                log.warning("no snapshot at close: %s", exc)
