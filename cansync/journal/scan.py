"""The replay fast path: read, decode and fold every event after a seq inside one worker thread.

Streaming a million events through the event loop costs a loop hop and a SQLAlchemy Row per event;
here a plain sqlite3 cursor hands over rows in large batches (`fetchmany`) and each row is decoded and
folded right where it was read. The connection is the thread's own and cannot write; the single
SELECT keeps one consistent view of the journal from its first row to its last (WAL lets appends go on
meanwhile; they are simply not in that view).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from cansync.core.events import Event
from cansync.journal.codec import RowDecodeError, decode_row
from cansync.journal.errors import JournalError
from cansync.journal.sqlite_file import BUSY_TIMEOUT_MS

SCAN_BATCH = 5000
"""Rows per fetchmany: big enough that the per-batch cost vanishes, small enough to stay in memory."""

_SELECT_AFTER = "SELECT seq, time_ms, kind, peer, hash, data FROM events WHERE seq > ? ORDER BY seq"


class ScanCancelled(Exception):
    """The caller stopped waiting for the scan (it was cancelled); the thread stops at the next batch."""


def fold_events(
    path: Path, after_seq: int, apply: Callable[[Event], object], stop: threading.Event, batch: int = SCAN_BATCH
) -> int:
    """Call `apply` on each event after `after_seq`, in seq order; returns the last seq applied.

    Blocking: run it in a worker thread. Raises JournalError naming the file and the seq of a row that
    does not decode, or when the file cannot be read; ScanCancelled once `stop` is set.
    """
    try:
        # the file must exist (mode=rw never creates one); query_only: this connection cannot write
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot open the journal to replay it: {exc}") from exc
    last = after_seq
    try:
        conn.execute("PRAGMA query_only = ON")
        cursor = conn.execute(_SELECT_AFTER, (after_seq,))
        while rows := cursor.fetchmany(batch):
            if stop.is_set():
                raise ScanCancelled(f"{path}: replay cancelled after seq {last}")
            for row in rows:
                try:
                    event = decode_row(row)
                except RowDecodeError as exc:
                    raise JournalError(f"{path}: event seq {row[0]} cannot be decoded: {exc}") from exc
                apply(event)
            last = rows[-1][0]
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot read events after seq {last}: {exc}") from exc
    finally:
        conn.close()
    return last
