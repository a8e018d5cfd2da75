"""Rebuilding the sync state: from scratch, from a snapshot plus its tail, and past a bad snapshot."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState, fold
from cansync.journal.recorder import Journal
from cansync.journal.replay import rebuild_state, write_snapshot

from .conftest import asset_hash, peer_id, session_events


async def _fill(journal: Journal, peers: range) -> list[Event]:
    written: list[Event] = []
    for n in peers:
        written += await journal.append(session_events(peer_id(n % 3), asset_hash(n), size=100 + n))
        written += await journal.append([Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(1000 + n), data={})])
    return written


async def test_rebuild_from_scratch_is_the_fold_of_every_event(journal: Journal) -> None:
    written = await _fill(journal, range(6))
    state, last = await rebuild_state(journal, use_snapshot=False)
    assert last == written[-1].seq == 54
    assert state == fold(written)
    assert state.describe()["local_assets"] == 12
    assert sorted(state.describe()["peers"]) == sorted({peer_id(0), peer_id(1), peer_id(2)})


async def test_rebuild_of_an_empty_journal(journal: Journal) -> None:
    state, last = await rebuild_state(journal)
    assert last == 0 and state == SyncState()


async def test_a_snapshot_plus_its_tail_gives_the_same_state(journal: Journal) -> None:
    first = await _fill(journal, range(4))
    await write_snapshot(journal, fold(first), first[-1].seq)
    rest = await _fill(journal, range(4, 9))
    with_snapshot, last = await rebuild_state(journal)
    without, last_again = await rebuild_state(journal, use_snapshot=False)
    assert last == last_again == rest[-1].seq
    assert with_snapshot == without == fold(first + rest)


async def test_the_snapshot_is_used(journal: Journal) -> None:
    # a snapshot that says something the events do not: only a rebuild that used it can show it
    first = await _fill(journal, range(2))
    marked = fold(first)
    marked.local.add("f" * 64)
    await write_snapshot(journal, marked, first[-1].seq)
    state, _ = await rebuild_state(journal)
    assert "f" * 64 in state.local
    state, _ = await rebuild_state(journal, use_snapshot=False)
    assert "f" * 64 not in state.local


async def test_an_unreadable_snapshot_is_passed_over(journal: Journal) -> None:
    written = await _fill(journal, range(3))
    await journal.save_snapshot(written[-1].seq, {"version": 999})
    state, last = await rebuild_state(journal)
    assert (state, last) == (fold(written), written[-1].seq)


async def test_a_snapshot_that_no_longer_matches_the_chain_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    written = await _fill(journal, range(3))
    await write_snapshot(journal, fold(written[:10]), 10)
    await journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET digest = ? WHERE seq = 10", ("ab" * 32,))
    conn.close()
    journal = await Journal.open(path)
    try:
        state, last = await rebuild_state(journal)
        assert (state, last) == (fold(written), written[-1].seq)
    finally:
        await journal.close()
