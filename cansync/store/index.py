"""The SQLite index `.can.db`: asset records and the change log that drives the change clock.

The stdlib sqlite3 module, one connection guarded by a lock, WAL mode; callers run these methods in a
worker thread. Every write goes through `write()`, whose transaction assigns the next changed_seq, so
the clock is strictly increasing and the log, the rows and the live feed see changes in one order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any

from cansync.store.changes import Change, ChangeKind
from cansync.store.records import AssetRecord

INDEX_FILE_NAME = ".can.db"
DEFAULT_CACHE_KIB = -2000  # SQLite's default page cache (2 MB)
BULK_CACHE_KIB = -262144  # 256 MiB while bulk-loading: a million random hash keys stay in memory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    hash TEXT PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    size INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    tags TEXT NOT NULL,
    description TEXT NOT NULL,
    human_file_name TEXT NOT NULL,
    human_readable_path TEXT NOT NULL,
    application TEXT NOT NULL,
    user TEXT NOT NULL,
    trashed INTEGER NOT NULL,
    meta_updated_ms INTEGER NOT NULL,
    meta_origin TEXT NOT NULL,
    extension TEXT NOT NULL,
    changed_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS assets_by_changed_seq ON assets (changed_seq);
CREATE INDEX IF NOT EXISTS assets_by_timestamp ON assets (timestamp);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    timestamp INTEGER NOT NULL
);
"""

_COLUMNS = (
    "hash",
    "timestamp",
    "size",
    "file_name",
    "mime_type",
    "tags",
    "description",
    "human_file_name",
    "human_readable_path",
    "application",
    "user",
    "trashed",
    "meta_updated_ms",
    "meta_origin",
    "extension",
    "changed_seq",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM assets"
# what /sync/hashes lists of each asset (AssetDigest's fields), changed_seq last
DIGEST_COLUMNS = ("hash", "timestamp", "trashed", "meta_updated_ms", "size", "changed_seq")


@dataclass(frozen=True)
class DigestPage:
    """One answer of /sync/hashes: rows of DIGEST_COLUMNS in changed_seq order."""

    rows: list[tuple[Any, ...]]
    watermark: int
    more: bool


class StoreIndexError(RuntimeError):
    """The index could not be opened or written; the message names the database file."""


def _row_to_record(row: Sequence[Any]) -> AssetRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["tags"] = tuple(json.loads(values["tags"]))
    values["trashed"] = bool(values["trashed"])
    return AssetRecord(**values)


_RECORD_VALUES = attrgetter(*_COLUMNS)
_TAGS_AT = _COLUMNS.index("tags")
_TRASHED_AT = _COLUMNS.index("trashed")
_SEQ_AT = _COLUMNS.index("changed_seq")


def _record_to_row(record: AssetRecord) -> list[Any]:
    values = list(_RECORD_VALUES(record))
    values[_TAGS_AT] = json.dumps(list(record.tags)) if record.tags else "[]"
    values[_TRASHED_AT] = int(record.trashed)
    return values


class IndexTransaction:
    """One write transaction: reads see its own writes; hooks run after commit or rollback."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.changes: list[Change] = []
        self._on_rollback: list[Callable[[], None]] = []

    def get(self, asset_hash: str) -> AssetRecord | None:
        row = self._conn.execute(f"{_SELECT} WHERE hash = ?", (asset_hash,)).fetchone()
        return _row_to_record(row) if row else None

    def _next_change(self, record: AssetRecord, kind: ChangeKind) -> AssetRecord:
        cursor = self._conn.execute(
            "INSERT INTO changes (hash, kind, timestamp) VALUES (?, ?, ?)",
            (record.hash, str(kind), record.timestamp),
        )
        seq = int(cursor.lastrowid or 0)
        self.changes.append(Change(seq=seq, hash=record.hash, kind=kind, timestamp=record.timestamp))
        return record.with_changes(changed_seq=seq)

    def insert(self, record: AssetRecord) -> AssetRecord:
        record = self._next_change(record, ChangeKind.NEW_ASSET)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        self._conn.execute(
            f"INSERT INTO assets ({', '.join(_COLUMNS)}) VALUES ({placeholders})", _record_to_row(record)
        )
        return record

    def update(self, record: AssetRecord) -> AssetRecord:
        """Store a metadata/trash change of an existing asset and bump the clock."""
        record = self._next_change(record, ChangeKind.META_CHANGED)
        assignments = ", ".join(f"{name} = ?" for name in _COLUMNS[1:])
        row = _record_to_row(record)
        self._conn.execute(f"UPDATE assets SET {assignments} WHERE hash = ?", (*row[1:], row[0]))
        return record

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Undo a file-system step if the transaction does not commit."""
        self._on_rollback.append(undo)

    def _rollback_hooks(self) -> None:
        for undo in reversed(self._on_rollback):
            undo()


class AssetIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreIndexError(f"cannot open the store index {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def write(self, after_commit: Callable[[list[Change]], None]) -> Iterator[IndexTransaction]:
        """A write transaction; after_commit gets its changes while the lock is still held, so
        whoever it notifies sees changes in changed_seq order."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            tx = IndexTransaction(self._conn)
            try:
                yield tx
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                tx._rollback_hooks()
                raise
            if tx.changes:
                after_commit(tx.changes)

    def bulk_insert(self, records: Iterable[AssetRecord], rows_per_call: int = 20_000) -> int:
        """Insert many new assets in one transaction, changed_seq in the order given; returns how many.
        For loading a store offline (cansync.store.bulk_load): the live feed is not told, so no store
        may serve this index meanwhile. A hash the index holds already fails it all (IntegrityError)."""
        columns = ", ".join(_COLUMNS)
        insert_asset = f"INSERT INTO assets ({columns}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
        insert_change = "INSERT INTO changes (seq, hash, kind, timestamp) VALUES (?, ?, ?, ?)"
        count = 0
        with self._lock:
            self._conn.execute(f"PRAGMA cache_size = {BULK_CACHE_KIB}")  # the hash key's b-tree stays in memory
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                seq = self._next_seq()
                rows = iter(records)
                while chunk := list(islice(rows, rows_per_call)):
                    asset_rows, change_rows = [], []
                    for record in chunk:
                        row = _record_to_row(record)
                        row[_SEQ_AT] = seq
                        asset_rows.append(row)
                        change_rows.append((seq, record.hash, str(ChangeKind.NEW_ASSET), record.timestamp))
                        seq += 1
                    self._conn.executemany(insert_change, change_rows)
                    self._conn.executemany(insert_asset, asset_rows)
                    count += len(asset_rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._conn.execute(f"PRAGMA cache_size = {DEFAULT_CACHE_KIB}")
        return count

    def _next_seq(self) -> int:
        """The changed_seq the next change gets: past every seq ever used (AUTOINCREMENT's rule)."""
        used = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return max(int(used[0]) if used else 0, self._watermark()) + 1

    def held_hashes(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._conn.execute("SELECT hash FROM assets")}

    def get(self, asset_hash: str) -> AssetRecord | None:
        with self._lock:
            row = self._conn.execute(f"{_SELECT} WHERE hash = ?", (asset_hash,)).fetchone()
        return _row_to_record(row) if row else None

    def records(self, include_trashed: bool = False) -> list[AssetRecord]:
        where = "" if include_trashed else " WHERE trashed = 0"
        with self._lock:
            rows = self._conn.execute(f"{_SELECT}{where} ORDER BY timestamp, hash").fetchall()
        return [_row_to_record(r) for r in rows]

    def search(self, tags: Sequence[str], include_trashed: bool = False) -> list[AssetRecord]:
        """Assets that carry every one of tags."""
        trashed = "" if include_trashed else " AND trashed = 0"
        query = (
            f"{_SELECT} WHERE NOT EXISTS (SELECT 1 FROM json_each(?) AS wanted WHERE wanted.value NOT IN "
            f"(SELECT value FROM json_each(assets.tags))){trashed} ORDER BY timestamp, hash"
        )
        with self._lock:
            rows = self._conn.execute(query, (json.dumps(list(tags)),)).fetchall()
        return [_row_to_record(r) for r in rows]

    def digests_since(self, since: int, limit: int | None = None) -> DigestPage:
        """The digests of assets whose changed_seq > since (trashed included), lowest changed_seq first,
        at most `limit` of them. Read in one transaction, so the watermark matches the rows: the clock
        when the page is the last one, else the last row's changed_seq (the next page's since)."""
        query = f"SELECT {', '.join(DIGEST_COLUMNS)} FROM assets WHERE changed_seq > ? ORDER BY changed_seq"
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                if limit is None:
                    rows = self._conn.execute(query, (since,)).fetchall()
                else:
                    # one row more than asked tells whether another page follows
                    rows = self._conn.execute(f"{query} LIMIT ?", (since, limit + 1)).fetchall()
                more = limit is not None and len(rows) > limit
                if more:
                    del rows[limit:]
                    watermark = int(rows[-1][-1])
                else:
                    watermark = self._watermark()
            finally:
                self._conn.execute("COMMIT")
        return DigestPage(rows=rows, watermark=watermark, more=more)

    def changes_since(self, since: int, limit: int = 1000) -> list[Change]:
        """The change log after since, oldest first (the SSE backlog)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, hash, kind, timestamp FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (since, limit),
            ).fetchall()
        return [Change(seq=r[0], hash=r[1], kind=ChangeKind(r[2]), timestamp=r[3]) for r in rows]

    def watermark(self) -> int:
        with self._lock:
            return self._watermark()

    def _watermark(self) -> int:
        row = self._conn.execute("SELECT MAX(seq) FROM changes").fetchone()
        return int(row[0] or 0)
