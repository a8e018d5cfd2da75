"""The journal's SQLite on the simulated loop: aiosqlite without its thread.

aiosqlite runs each connection's calls on a thread of its own and hands results back with
`call_soon_threadsafe`; when they arrive depends on the operating system's scheduler, which a seeded
run cannot replay. `InlineConnection` runs each call at once, on the loop, and hands its result back
through the same future one scheduling step later, so the caller still yields where it would have
waited for the thread. The file is real SQLite in WAL mode, opened and migrated exactly as the agent's
own (`install_sqlite_behaviour`, alembic), so a simulated restart reads the journal a crash left.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import weakref
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import create_engine
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from cansync.journal.database import head_revision, install_sqlite_behaviour, upgrade_connection
from cansync.journal.recorder import Journal
from cansync.simulation.loop import actor

ITER_CHUNK_SIZE = 64

_connections: dict[str | None, list[InlineConnection]] = {}
"""Every inline connection, by the simulated process that opened it (see `sever`)."""


def _resolve(future: asyncio.Future[Any] | None, outcome: Callable[[asyncio.Future[Any]], None]) -> None:
    if future is not None:
        future.get_loop().call_soon(lambda: None if future.done() else outcome(future))


class _InlineCalls:
    """Stands where aiosqlite keeps the queue its thread reads: each call runs as it is put."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, as the thread does
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            error = exc
            _resolve(future, lambda f: f.set_exception(error))
        else:
            _resolve(future, lambda f: f.set_result(result))


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, ITER_CHUNK_SIZE)
        self._tx = _InlineCalls()  # type: ignore[assignment]
        _connections.setdefault(actor.get(), []).append(self)

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no thread to start

    def stop(self) -> asyncio.Future[Any] | None:
        """Close now, scheduling nothing: this also runs from finalizers (a connection collected unclosed),
        and a callback scheduled then would make the run depend on when the collector got to it."""
        self._running = False
        raw, self._connection = self._connection, None
        if raw is not None:
            raw.close()
        return None


def inline_engine(path: Path) -> AsyncEngine:
    """An engine on `path` whose connections run their calls on the loop (see the module's note)."""

    async def connect() -> InlineConnection:
        return await InlineConnection(lambda: sqlite3.connect(str(path)))  # type: ignore[return-value]

    engine = create_async_engine(URL.create("sqlite+aiosqlite", database=str(path)), async_creator=connect)
    install_sqlite_behaviour(engine.sync_engine)
    return engine


_migrating: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
"""alembic keeps the migration it runs in module globals: one process runs one agent's migration at a
time, and so must the simulation, whose agents share a process (and would interleave at each await).
One lock per loop: an asyncio lock belongs to the loop it was first used on."""


_templates: dict[str, bytes] = {}
"""An empty journal at the head revision, made once per process by the migrations themselves."""


def _empty_journal() -> bytes:
    """The bytes of a new journal as the migrations make it, made outside any loop (synchronously), so the
    first agent of a process takes the same steps as every later one: a run must not depend on what ran
    before it in the process."""
    revision = head_revision()
    template = _templates.get(revision)
    if template is None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "journal.db"
            engine = create_engine(URL.create("sqlite", database=str(path)))
            install_sqlite_behaviour(engine)
            try:
                with engine.connect() as connection, connection.begin():
                    upgrade_connection(connection)
            finally:
                engine.dispose()
            template = _templates[revision] = path.read_bytes()
    return template


async def open_inline_journal(path: Path, clock: Callable[[], int]) -> Journal:
    """`AgentEnvironment.open_journal` for a simulated agent. A new journal starts as a copy of an empty
    one the migrations made (byte for byte what they would make again): it saves each new agent most of
    the cost of running them, and the open still checks the revision as always."""
    lock = _migrating.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        if not path.exists():
            path.write_bytes(_empty_journal())
        return await Journal.open(path, clock=clock, make_engine=inline_engine)


def sever(process: str) -> None:
    """The process died: its SQLite connections go as the kernel closes a dead process's files, and an
    open transaction is rolled back (WAL keeps only what was committed)."""
    for connection in _connections.pop(process, []):
        raw = connection._connection
        connection._connection = None
        connection._running = False
        if raw is not None:
            raw.close()


def forget_all() -> None:
    """Between runs: close whatever a run left open."""
    for process in list(_connections):
        sever(process)  # type: ignore[arg-type]
