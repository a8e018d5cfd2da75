"""The sync state of a journal nobody is writing to, read with the standard library's sqlite3 alone.

`cansync status` with no agent running wants the folded state once and then exits: opening the
journal through SQLAlchemy and aiosqlite (with an event loop) costs more in imports alone, about
0.15 s, than reading a snapshot and folding the events after it. This path reads the same tables, with
the same check that the snapshot belongs to the chain, and never writes: a journal that would need a
migration is left to `Journal.open` (the caller falls back to it).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cansync.core.machine import SnapshotError, SyncState
from cansync.journal.chain import GENESIS_DIGEST
from cansync.journal.errors import JournalError, SnapshotMismatch
from cansync.journal.scan import fold_events
from cansync.journal.sqlite_file import head_revision, open_read_only, preflight

log = logging.getLogger(__name__)

NEWEST_SNAPSHOT = (
    "SELECT snapshots.seq, snapshots.digest, snapshots.state, events.digest FROM snapshots "
    "LEFT OUTER JOIN events ON events.seq = snapshots.seq ORDER BY snapshots.seq DESC LIMIT 1"
)


def snapshot_from_row(path: Path, row: tuple[Any, ...] | None) -> tuple[int, dict[str, Any]] | None:
    """(seq, state) of a NEWEST_SNAPSHOT row, or None for no row. Refuses (SnapshotMismatch) a snapshot
    that no longer matches the chain, and (JournalError) one that is not a JSON object."""
    if row is None:
        return None
    seq, snap_digest, state_json, event_digest = row
    expected = GENESIS_DIGEST if seq == 0 else event_digest
    if snap_digest != expected:
        raise SnapshotMismatch(
            f"{path}: the snapshot at seq {seq} does not match event {seq} in the chain (the "
            "journal changed after it was taken); rebuild with `cansync journal replay --no-snapshot`"
        )
    try:
        # the stdlib, not codec.load_json: on a text this size (75 MB at 1M events) the copies its
        # orjson check makes cost more time and memory than orjson saves
        state = json.loads(state_json)
    except ValueError as exc:
        raise JournalError(f"{path}: the snapshot at seq {seq} is not valid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise JournalError(f"{path}: the snapshot at seq {seq} is not a JSON object")
    return int(seq), state


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a rebuild makes millions of long-lived objects.

    Each full collection walks every object made so far, and a rebuild triggers many of them: on a
    1M-event journal they cost about half the snapshot load (0.7 s of 1.3 s) and a tenth of a full
    replay. What a rebuild makes is kept (the state) or freed by reference counting (the events),
    so nothing piles up meanwhile. The collector is switched back on only if it was on before.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rebuild_without_writing(path: Path) -> tuple[SyncState, int] | None:
    """The journal's state and the last seq folded, from its newest snapshot plus the events after it;
    None when the file's schema is not this cansync's head (only Journal.open may upgrade it).

    A snapshot this code cannot read, or one that no longer matches the chain, is passed over and every
    event folded instead, as `rebuild_state` does.
    """
    if preflight(path) != head_revision():
        return None
    connection = open_read_only(path)
    if connection is None:
        return None
    with cyclic_gc_paused():
        try:
            try:
                row = connection.execute(NEWEST_SNAPSHOT).fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"{path}: cannot read its snapshot: {exc}") from exc
        finally:
            connection.close()
        state, last_seq = SyncState(), 0
        try:
            snapshot = snapshot_from_row(path, row)
            if snapshot is not None:
                last_seq, data = snapshot
                state = SyncState.from_snapshot(data)
        except (SnapshotError, SnapshotMismatch) as exc:
            log.warning("%s: not using the snapshot (%s); folding every event instead", path, exc)
            state, last_seq = SyncState(), 0
        with state.replaying() as fold_one:
            last_seq = fold_events(path, last_seq, fold_one, threading.Event())
    return state, last_seq
