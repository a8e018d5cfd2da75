"""The recorder: appends events to the SQLite journal and reads them back, in seq order.

Writes go through one writer task (group commit): concurrent `append` calls queue their events, the
writer drains the queue and writes everything waiting in a single transaction, then wakes each caller.
Sequence numbers are therefore gapless and each event's digest chains to the one written before it.
Reads stream in batches by seq range, so a million-event journal is read in bounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from cansync.core.events import Event
from cansync.journal import schema
from cansync.journal.chain import GENESIS_DIGEST, ChainReport, canonical_json, event_digest
from cansync.journal.codec import RowDecodeError, build_event, decode_row
from cansync.journal.database import BEGIN_MODE_OPTION, create_journal_engine, head_revision, upgrade_to_head
from cansync.journal.errors import JournalError, SnapshotMismatch
from cansync.journal.read_only import NEWEST_SNAPSHOT, snapshot_from_row
from cansync.journal.scan import SCAN_BATCH, fold_events
from cansync.journal.sqlite_file import preflight

__all__ = ["ChainReport", "Journal", "JournalError", "SnapshotMismatch"]

MAX_GROUP_EVENTS = 20_000
"""Most events one group-commit transaction writes (bounds the latency of the callers waiting on it)."""

_ROW_COLUMNS = "seq, time_ms, kind, peer, hash, data"
"""The columns of an event row as read back (codec.decode_row's order)."""
# Plain tuples through Core's exec_driver_sql: one executemany with no per-row parameter processing.
_INSERT_EVENTS_SQL = (
    f"INSERT INTO {schema.events.name} ({', '.join(c.name for c in schema.events.columns)}) "
    f"VALUES ({', '.join('?' for _ in schema.events.columns)})"
)
_UPDATE_HEAD = (
    update(schema.chain_head)
    .where(schema.chain_head.c.id == schema.HEAD_ROW_ID)
    .values(seq=bindparam("head_seq"), digest=bindparam("head_digest"))
)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _PendingAppend:
    """One `append` call waiting for the writer: its events, their encoded data, and the caller's future."""

    events: Sequence[Event]
    data_json: list[str]
    done: asyncio.Future[list[Event]]


class Journal:
    """The event journal in one SQLite file. Open with `await Journal.open(path)`; close when done."""

    path: Path

    def __init__(
        self,
        path: Path,
        engine: AsyncEngine,
        last_seq: int,
        last_digest: bytes,
        last_time_ms: int,
        clock: Callable[[], int] | None = None,
    ):
        self.path = path
        self._clock = clock or wall_ms  # ms since the epoch; a simulation passes its own
        self._engine = engine
        self._last_seq = last_seq
        self._last_digest = last_digest
        self._last_time_ms = last_time_ms
        self._queue: asyncio.Queue[_PendingAppend | None] = asyncio.Queue()
        self._write_lock = asyncio.Lock()  # one write transaction at a time: the writer's or a snapshot's
        self._closed = False
        self.commits = 0  # group-commit transactions written so far (tests and the bench read it)
        self._writer = asyncio.create_task(self._write_loop(), name=f"journal writer {path}")

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        clock: Callable[[], int] | None = None,
        make_engine: Callable[[Path], AsyncEngine] = create_journal_engine,
    ) -> Journal:
        """Open the journal at `path`, creating it or upgrading its schema to what this code knows.

        Refuses, with a JournalError and without changing a byte, a file that is not a cansync journal
        or one written by a newer cansync. `make_engine` is for the simulation, whose SQLite runs on its
        loop instead of aiosqlite's thread.
        """
        path = Path(path)
        recorded = await asyncio.to_thread(preflight, path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"{path}: cannot create its directory: {exc.strerror or exc}") from exc
        engine = make_engine(path)
        try:
            if recorded != head_revision():  # a journal at head needs no migration (nor alembic in memory)
                await upgrade_to_head(engine)
            async with engine.connect() as conn:
                head = (await conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.digest))).first()
                last = (
                    await conn.execute(
                        select(schema.events.c.seq, schema.events.c.digest, schema.events.c.time_ms)
                        .order_by(schema.events.c.seq.desc())
                        .limit(1)
                    )
                ).first()
        except SQLAlchemyError as exc:
            await engine.dispose()
            raise JournalError(f"{path}: cannot open the journal: {exc}") from exc
        except BaseException:
            await engine.dispose()
            raise
        last_seq, last_digest, last_time = 0, GENESIS_DIGEST, 0
        if last is not None:
            last_seq, last_digest, last_time = last
        if head is not None and head[0] > last_seq:
            # Events were cut off the end. Continue the chain from the recorded head, so the gap stays
            # visible to verify instead of being papered over by new events.
            last_seq, last_digest = head
        try:
            digest_bytes = bytes.fromhex(last_digest)
        except ValueError as exc:
            await engine.dispose()
            raise JournalError(f"{path}: the digest of event {last_seq} is not hex: {last_digest!r}") from exc
        return cls(path, engine, last_seq, digest_bytes, last_time, clock)

    async def close(self) -> None:
        """Write everything already appended, then release the file. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        try:
            await self._writer
        finally:
            await self._engine.dispose()

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError(f"{self.path}: the journal is closed")
        if self._writer.done():
            raise JournalError(f"{self.path}: the journal's writer has stopped; reopen the journal")

    # -- appending -----------------------------------------------------------------------------

    async def append(self, events: Sequence[Event]) -> list[Event]:
        """Write `events` in one transaction (with any others appended at the same moment).

        Returns them with the seq and time_ms the journal gave them, once they are committed.
        """
        self._check_open()
        if not events:
            return []
        data_json = []
        for index, ev in enumerate(events):
            if ev.seq:
                raise JournalError(f"{self.path}: event {index} ({ev.kind}) was already journaled as seq {ev.seq}")
            try:
                data_json.append(canonical_json(ev.data))
            except (TypeError, ValueError) as exc:
                raise JournalError(f"{self.path}: event {index} ({ev.kind}) has data that is not JSON: {exc}") from exc
        done: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_PendingAppend(events, data_json, done))
        return await done

    async def append_one(self, event: Event) -> Event:
        (journaled,) = await self.append([event])
        return journaled

    async def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            group, count = [first], len(first.events)
            # group commit: take everything that queued up while the last transaction was being written
            while count < MAX_GROUP_EVENTS and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                group.append(item)
                count += len(item.events)
            try:
                await self._write_group(group)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail the callers, not leave them waiting
                error = JournalError(f"{self.path}: the journal writer failed: {exc!r}")
                error.__cause__ = exc
                for item in group:
                    if not item.done.done():
                        item.done.set_exception(error)

    async def _write_group(self, group: list[_PendingAppend]) -> None:
        seq, prev = self._last_seq, self._last_digest
        time_ms = max(self._clock(), self._last_time_ms)  # non-decreasing along seq, so time maps to a seq range
        rows: list[tuple[Any, ...]] = []
        results: list[list[Event]] = []
        prev_hex = prev.hex()
        for item in group:
            journaled = []
            for ev, data_json in zip(item.events, item.data_json, strict=True):
                seq += 1
                kind, peer, hash_ = ev.kind, ev.peer, ev.hash
                kind_text = str(kind)
                digest = event_digest(prev, seq, time_ms, kind_text, peer, hash_, data_json)
                digest_hex = digest.hex()
                rows.append((seq, time_ms, kind_text, peer, hash_, data_json, prev_hex, digest_hex))
                # ev.journaled(seq, time_ms) without dataclasses.replace's cost: ev passed Event's checks
                journaled.append(build_event(kind, peer, hash_, ev.data, seq, time_ms))
                prev, prev_hex = digest, digest_hex
            results.append(journaled)
        try:
            async with self._write_lock, self._engine.connect() as conn:
                conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
                async with conn.begin():
                    await conn.exec_driver_sql(_INSERT_EVENTS_SQL, rows)
                    await conn.execute(_UPDATE_HEAD, {"head_seq": seq, "head_digest": prev_hex})
        except Exception as exc:  # noqa: BLE001 - any failure goes to the callers; the writer keeps serving
            error = JournalError(f"{self.path}: cannot write {len(rows)} event(s): {exc}")
            error.__cause__ = exc
            for item in group:
                if not item.done.done():
                    item.done.set_exception(error)
            return
        self._last_seq, self._last_digest, self._last_time_ms = seq, prev, time_ms
        self.commits += 1
        for item, journaled in zip(group, results, strict=True):
            if not item.done.done():  # a caller that was cancelled has gone; its events are written anyway
                item.done.set_result(journaled)

    # -- reading -------------------------------------------------------------------------------

    async def read(
        self,
        *,
        after_seq: int = 0,
        peer: str | None = None,
        hash: str | None = None,
        kinds: Collection[str] | None = None,
        since_time_ms: int | None = None,
        batch: int = 5000,
    ) -> AsyncIterator[Event]:
        """Stream the events after `after_seq` that match every filter given, in seq order."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        # Plain SQL through the driver's cursor: rows come back as tuples, with no SQLAlchemy Row per event.
        where: list[str] = ["seq > ?"]
        params: list[Any] = []
        if peer is not None:
            where.append("peer = ?")
            params.append(peer)
        if hash is not None:
            where.append("hash = ?")
            params.append(hash)
        if kinds is not None:
            kind_texts = [str(k) for k in kinds]
            # with a peer or hash to match, that index leads (the "+" keeps SQLite off the kind index,
            # which would walk every event of the kind)
            column = "+kind" if (peer is not None or hash is not None) else "kind"
            where.append(f"{column} IN ({', '.join('?' for _ in kind_texts)})" if kind_texts else "0")
            params += kind_texts
        if since_time_ms is not None:
            where.append("time_ms >= ?")
            params.append(since_time_ms)
            after_seq = max(after_seq, await self._seq_before_time(since_time_ms))
        sql = f"SELECT {_ROW_COLUMNS} FROM {schema.events.name} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"

        async def fetch(after: int) -> list[tuple[Any, ...]]:
            try:
                return await self._fetch_rows(sql, (after, *params, batch))
            except (sqlite3.Error, SQLAlchemyError) as exc:
                raise JournalError(f"{self.path}: cannot read events after seq {after}: {exc}") from exc

        # Fetch the next batch while the caller works through this one: at most two batches in memory.
        pending = asyncio.ensure_future(fetch(after_seq))
        try:
            while True:
                rows = await pending
                if len(rows) == batch:
                    pending = asyncio.ensure_future(fetch(rows[-1][0]))
                for row in rows:
                    yield self._decode(row)
                if len(rows) < batch:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, JournalError):
                    await pending

    async def _seq_before_time(self, since_time_ms: int) -> int:
        """The seq just before the first event at or after `since_time_ms` (times never go back)."""
        async with self._engine.connect() as conn:
            first = (
                await conn.execute(
                    select(func.min(schema.events.c.seq)).where(schema.events.c.time_ms >= since_time_ms)
                )
            ).scalar()
        return max(0, first - 1) if first is not None else await self.last_seq()

    async def _fetch_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """All rows of one SELECT, as plain tuples from the driver's cursor (its errors pass up)."""
        async with self._engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is None:  # only after the pool has invalidated it; SQLAlchemy reconnects next time
                raise JournalError(f"{self.path}: the database connection was lost; try again")
            cursor = await driver.execute(sql, params)
            try:
                return list(await cursor.fetchall())
            finally:
                await cursor.close()

    def _decode(self, row: Sequence[Any]) -> Event:
        try:
            return decode_row(row)
        except RowDecodeError as exc:  # bad JSON, unknown kind, an event missing its peer or hash
            raise JournalError(f"{self.path}: event seq {row[0]} cannot be decoded: {exc}") from exc

    async def replay_into(
        self, apply: Callable[[Event], object], *, after_seq: int = 0, batch: int = SCAN_BATCH
    ) -> int:
        """Call `apply` on every event after `after_seq`, in seq order; returns the last seq applied.

        The fast path for folding the whole journal: reading, decoding and `apply` all run in one worker
        thread, so `apply` must not touch the event loop (SyncState.replay does not). The events are
        those committed when the scan starts. Returns `after_seq` when there are none after it.
        """
        self._check_open()
        stop = threading.Event()
        try:
            return await asyncio.to_thread(fold_events, self.path, after_seq, apply, stop, batch)
        finally:
            stop.set()  # if we were cancelled, the thread gives up at its next batch

    async def last_seq(self) -> int:
        """The seq of the newest event in the journal (0 when it is empty)."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.max(schema.events.c.seq)))).scalar() or 0)

    async def match_prefix(self, column: Literal["peer", "hash"], prefix: str, limit: int = 2) -> list[str]:
        """Distinct peer ids or asset hashes that start with `prefix` (at most `limit` of them)."""
        col = schema.events.c[column]
        stmt = select(col).distinct().where(col >= prefix).order_by(col).limit(limit)
        if prefix:
            stmt = stmt.where(col < prefix[:-1] + chr(ord(prefix[-1]) + 1))
        else:
            stmt = stmt.where(col.is_not(None))
        async with self._engine.connect() as conn:
            return [value for (value,) in await conn.execute(stmt)]

    async def latest_matching(
        self,
        *,
        hash_prefix: str | None = None,
        peer_prefix: str | None = None,
        kinds: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """The newest `limit` events matching every filter given, newest first (the dashboard's audit).

        Prefixes are lower-case hex (ids and digests are); a full 64-character one matches exactly.
        A prefix is a range on the (hash, seq) / (peer, seq) index: `hash >= p AND hash < p + 'g'`.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where: list[str] = []
        params: list[Any] = []
        for column, prefix in (("hash", hash_prefix), ("peer", peer_prefix)):
            if prefix is None:
                continue
            if not all(c in "0123456789abcdef" for c in prefix):
                raise ValueError(f"{column} prefix must be lower-case hex, got {prefix!r}")
            if len(prefix) == 64:
                where.append(f"{column} = ?")
                params.append(prefix)
            elif prefix:
                where.append(f"{column} >= ? AND {column} < ?")
                params += [prefix, prefix + "g"]  # 'g' sorts after every hex digit
            else:
                where.append(f"{column} IS NOT NULL")
        if kinds is not None:
            kind_texts = [str(k) for k in kinds]
            column = "+kind" if where else "kind"  # a hash or peer match leads (see read())
            where.append(f"{column} IN ({', '.join('?' for _ in kind_texts)})" if kind_texts else "0")
            params += kind_texts
        sql = (
            f"SELECT {_ROW_COLUMNS} FROM {schema.events.name} "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY seq DESC LIMIT ?"
        )
        try:
            rows = await self._fetch_rows(sql, (*params, limit))
        except (sqlite3.Error, SQLAlchemyError) as exc:
            raise JournalError(f"{self.path}: cannot search the events: {exc}") from exc
        return [self._decode(row) for row in rows]

    # -- snapshots -----------------------------------------------------------------------------

    async def save_snapshot(self, seq: int, state: dict[str, Any]) -> int:
        """Store `state` (JSON-able) as the derived state after event `seq`; keeps the newest few.
        Returns the stored text's length, which the ledger spaces its snapshots by."""
        self._check_open()
        try:
            state_json = canonical_json(state)
        except (TypeError, ValueError) as exc:
            raise JournalError(f"{self.path}: snapshot state at seq {seq} is not JSON-able: {exc}") from exc
        ev, snap = schema.events.c, schema.snapshots.c
        async with self._write_lock, self._engine.connect() as conn:
            conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
            async with conn.begin():
                digest: str | None = GENESIS_DIGEST
                if seq != 0:
                    digest = (await conn.execute(select(ev.digest).where(ev.seq == seq))).scalar()
                    if digest is None:
                        raise JournalError(f"{self.path}: cannot snapshot at seq {seq}: there is no such event")
                await conn.execute(delete(schema.snapshots).where(snap.seq == seq))
                await conn.execute(
                    insert(schema.snapshots).values(seq=seq, time_ms=self._clock(), digest=digest, state=state_json)
                )
                keep = select(snap.seq).order_by(snap.seq.desc()).limit(schema.SNAPSHOTS_KEPT)
                await conn.execute(delete(schema.snapshots).where(snap.seq.not_in(keep.scalar_subquery())))
        return len(state_json)

    async def load_snapshot(self) -> tuple[int, dict[str, Any]] | None:
        """The newest snapshot as (seq, state), or None. Refuses one that no longer matches the chain."""
        async with self._engine.connect() as conn:
            row = (await conn.exec_driver_sql(NEWEST_SNAPSHOT)).first()
        return snapshot_from_row(self.path, None if row is None else tuple(row))

    # -- verifying -----------------------------------------------------------------------------

    async def verify(self, batch: int = 5000) -> ChainReport:
        """Walk the whole chain: every event decodes, follows its predecessor and matches its digest.

        The chain head is read first and the walk stops at it: a running agent may append while we
        walk, and events newer than the head we read are the next verify's business.
        """
        async with self._engine.connect() as conn:
            head = (await conn.execute(select(schema.chain_head.c.seq, schema.chain_head.c.digest))).first()
        head_seq = head[0] if head is not None else 0
        sql = (
            f"SELECT {_ROW_COLUMNS}, prev_digest, digest FROM {schema.events.name} "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
        )
        expected_seq, prev_hex, checked = 1, GENESIS_DIGEST, 0
        after = 0
        while True:
            try:
                rows = await self._fetch_rows(sql, (after, head_seq, batch))
            except (sqlite3.Error, SQLAlchemyError) as exc:
                raise JournalError(f"{self.path}: cannot read events after seq {after} to verify them: {exc}") from exc
            for row in rows:
                seq, time_ms, kind, peer, hash_, data, stored_prev, stored_digest = row
                if seq != expected_seq:
                    missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                    return ChainReport(False, checked, expected_seq, f"event(s) {missing} are missing (deleted)")
                if stored_prev != prev_hex:
                    return ChainReport(
                        False, checked, seq, f"its prev_digest does not match the digest of event {seq - 1}"
                    )
                try:
                    recomputed = event_digest(bytes.fromhex(prev_hex), seq, time_ms, kind, peer, hash_, data).hex()
                    self._decode(row[:6])
                except (ValueError, JournalError) as exc:
                    return ChainReport(False, checked, seq, f"it cannot be decoded: {exc}")
                if recomputed != stored_digest:
                    return ChainReport(False, checked, seq, "its contents do not match its digest (edited)")
                checked += 1
                expected_seq, prev_hex = seq + 1, stored_digest
            if len(rows) < batch:
                break
            after = rows[-1][0]
        if head is None:
            return ChainReport(False, checked, expected_seq, "the chain head record is missing")
        if (head[0], head[1]) != (expected_seq - 1, prev_hex):
            return ChainReport(
                False,
                checked,
                expected_seq,
                f"the events end at seq {expected_seq - 1} but the chain head records seq {head[0]}: "
                "events were dropped from the end",
            )
        return ChainReport(True, checked, None, "ok")
