"""Rebuilding the derived sync state from the journal: the newest snapshot plus the events after it."""

from __future__ import annotations

import logging

from cansync.core.machine import SnapshotError, SyncState
from cansync.journal.errors import SnapshotMismatch
from cansync.journal.read_only import cyclic_gc_paused
from cansync.journal.recorder import Journal

log = logging.getLogger(__name__)


async def rebuild_state(journal: Journal, *, use_snapshot: bool = True) -> tuple[SyncState, int]:
    """Fold the journal into a SyncState; returns it and the last seq folded (0 for an empty journal).

    A snapshot is only a shortcut: one this code cannot read, or one that no longer matches the chain,
    is passed over and the whole journal is folded instead.
    """
    with cyclic_gc_paused():
        state, last_seq = SyncState(), 0
        if use_snapshot:
            try:
                snapshot = await journal.load_snapshot()
                if snapshot is not None:
                    last_seq, data = snapshot
                    state = SyncState.from_snapshot(data)
            except (SnapshotError, SnapshotMismatch) as exc:
                log.warning("%s: not using the snapshot (%s); folding every event instead", journal.path, exc)
                state, last_seq = SyncState(), 0
        # read, decode and fold in one worker thread: no event-loop hop per event (Journal.replay_into)
        with state.replaying() as fold_one:
            last_seq = await journal.replay_into(fold_one, after_seq=last_seq)
    return state, last_seq


async def write_snapshot(journal: Journal, state: SyncState, seq: int) -> int:
    """Store `state`, which must be the fold of every event up to and including `seq`; returns the
    snapshot's size in characters."""
    return await journal.save_snapshot(seq, state.to_snapshot())
