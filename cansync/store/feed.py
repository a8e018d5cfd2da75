"""The live change feed: index commits are broadcast to every subscriber (the SSE streams).

Commits happen in worker threads; they hand their changes to the event loop with
call_soon_threadsafe while the index lock is held, so subscribers see changes in changed_seq order.
A subscriber that falls too far behind is closed: its client reconnects and replays from the index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cansync.portable.timeouts import wait_for
from cansync.store.changes import Change

MAX_PENDING_PER_SUBSCRIBER = 10_000


class Subscription:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self.closed = False

    def offer(self, change: Change) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_PENDING_PER_SUBSCRIBER:
            self.close()
            return
        self._queue.put_nowait(change)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(None)

    async def next(self, timeout: float | None = None) -> Change | None:
        """The next change; None once closed; raises TimeoutError when nothing came in time."""
        return await wait_for(self._queue.get(), timeout)


class ChangeFeed:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[Subscription] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish_threadsafe(self, changes: Sequence[Change]) -> None:
        """Called by the index right after a commit, from any thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._publish, list(changes))

    def _publish(self, changes: list[Change]) -> None:
        for subscriber in list(self._subscribers):
            for change in changes:
                subscriber.offer(change)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def close_all(self) -> None:
        """At shutdown: end every stream so the server can stop without waiting on them."""
        for subscriber in list(self._subscribers):
            subscriber.close()
