"""A read-only view of a journal file through the stdlib sqlite3: what `cansync journal inspect` reads.

No SQLAlchemy, no alembic, no event loop and no migration: the file passes sqlite_file's check and is
opened with mode=ro, so an audit never changes a byte (not even of a journal at an older revision, which
the recorder would upgrade) and answers in milliseconds. The filters run on the indexes revision 0002
makes, (peer, seq), (hash, seq), (kind, seq) and (time_ms); a prefix is a range on one of them. A
journal still at revision 0001 has the same events table without those indexes: it reads the same,
only slower.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from cansync.core.events import Event
from cansync.journal.codec import RowDecodeError, decode_row
from cansync.journal.errors import JournalError
from cansync.journal.sqlite_file import open_read_only, recorded_revision

FETCH_BATCH = 5000
"""Rows per fetchmany: the reader holds at most this many undecoded rows."""

_ROW_COLUMNS = "seq, time_ms, kind, peer, hash, data"
"""The columns of an event row as read back (codec.decode_row's order)."""
_ID_COLUMNS = ("peer", "hash")
_MAX_CHAR = "\U0010ffff"


class JournalReader:
    """A journal file opened read-only. Open with `JournalReader.open(path)`; close when done."""

    path: Path

    def __init__(self, path: Path, connection: sqlite3.Connection | None):
        self.path = path
        self._connection = connection  # None: the file has no tables yet, so no events

    @classmethod
    def open(cls, path: Path | str) -> JournalReader:
        """Open the journal at `path` read-only; JournalError (the recorder's words) if it is not a
        cansync journal of a revision this code knows. An empty file reads as a journal with no events."""
        path = Path(path)
        connection = open_read_only(path)
        if connection is None:
            return cls(path, None)
        try:
            revision = recorded_revision(path, connection)
            connection.execute("PRAGMA query_only = ON")  # belt and braces beside mode=ro
        except BaseException:
            connection.close()
            raise
        if revision is None:
            connection.close()
            return cls(path, None)
        return cls(path, connection)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def match_prefix(self, column: Literal["peer", "hash"], prefix: str, limit: int = 2) -> list[str]:
        """Distinct peer ids or asset hashes that start with `prefix` (at most `limit` of them), in order.

        A range on the (column, seq) index, `column >= prefix AND column < the next prefix`: the scan
        stops after `limit` distinct values, however many events name them.
        """
        if column not in _ID_COLUMNS:
            raise ValueError(f"column must be one of {_ID_COLUMNS}, got {column!r}")
        if self._connection is None:
            return []
        upper = _next_prefix(prefix)
        sql = f"SELECT DISTINCT {column} FROM events WHERE {column} >= ? AND "
        params: tuple[Any, ...]
        if upper is None:
            sql += f"{column} IS NOT NULL ORDER BY {column} LIMIT ?"
            params = (prefix, limit)
        else:
            sql += f"{column} < ? ORDER BY {column} LIMIT ?"
            params = (prefix, upper, limit)
        try:
            return [value for (value,) in self._connection.execute(sql, params)]
        except UnicodeEncodeError:
            return []  # a lone surrogate (from undecodable argv bytes): no stored id holds one
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot search the {column} values: {exc}") from exc

    def read(
        self,
        *,
        after_seq: int = 0,
        peer: str | None = None,
        hash: str | None = None,
        kinds: Collection[str] | None = None,
        since_time_ms: int | None = None,
    ) -> Iterator[Event]:
        """The events after `after_seq` that match every filter given, in seq order (one consistent view)."""
        if self._connection is None:
            return
        # Without statistics SQLite may pick any of the indexes that match: for (peer, hash, kind) it
        # took the kind index, walking every transfer_completed event to find one asset's. So name the
        # one to use: a hash names a handful of events, a peer many, a kind most. A unary + on a column
        # keeps the planner off its index (and changes no result); times are a seq range (below).
        indexed = "hash" if hash is not None else "peer" if peer is not None else "kind"
        where: list[str] = ["seq > ?"]
        params: list[Any] = []
        if peer is not None:
            where.append(f"{_unindexed('peer', indexed)} = ?")
            params.append(peer)
        if hash is not None:
            where.append("hash = ?")
            params.append(hash)
        if kinds is not None:
            kind_texts = [str(k) for k in kinds]
            kind = _unindexed("kind", indexed)
            where.append(f"{kind} IN ({', '.join('?' for _ in kind_texts)})" if kind_texts else "0")
            params += kind_texts
        if since_time_ms is not None:
            where.append("+time_ms >= ?")
            params.append(since_time_ms)
            # times never go back along seq: start the seq range at the first event of that time
            after_seq = max(after_seq, self._seq_before_time(since_time_ms))
        sql = f"SELECT {_ROW_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        last = after_seq
        try:
            cursor = self._connection.execute(sql, (after_seq, *params))
            while rows := cursor.fetchmany(FETCH_BATCH):
                for row in rows:
                    yield self._decode(row)
                last = rows[-1][0]
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot read events after seq {last}: {exc}") from exc

    def _seq_before_time(self, since_time_ms: int) -> int:
        """The seq just before the first event at or after `since_time_ms` (the last seq if none is)."""
        assert self._connection is not None
        try:
            (first,) = self._connection.execute(
                "SELECT min(seq) FROM events WHERE time_ms >= ?", (since_time_ms,)
            ).fetchone()
            if first is not None:
                return max(0, int(first) - 1)
            (last,) = self._connection.execute("SELECT max(seq) FROM events").fetchone()
        except sqlite3.Error as exc:
            raise JournalError(f"{self.path}: cannot find the events since {since_time_ms} ms: {exc}") from exc
        return int(last or 0)

    def _decode(self, row: Sequence[Any]) -> Event:
        try:
            return decode_row(row)
        except RowDecodeError as exc:  # bad JSON, unknown kind, an event missing its peer or hash
            raise JournalError(f"{self.path}: event seq {row[0]} cannot be decoded: {exc}") from exc


def _unindexed(column: str, indexed: str) -> str:
    return column if column == indexed else f"+{column}"


def _next_prefix(prefix: str) -> str | None:
    """The least text above every text that starts with `prefix`; None when there is none (no bound)."""
    stem = prefix.rstrip(_MAX_CHAR)
    if not stem:
        return None
    return stem[:-1] + chr(ord(stem[-1]) + 1)
