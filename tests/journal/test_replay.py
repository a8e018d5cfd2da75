"""Rebuilding the sync state: from scratch, from a snapshot plus its tail, and past a bad snapshot."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
from pathlib import Path

import pytest

from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState, fold
from cansync.journal.read_only import rebuild_without_writing
from cansync.journal.recorder import Journal, JournalError
from cansync.journal.replay import rebuild_state, write_snapshot
from cansync.journal.scan import ScanCancelled, fold_events

from .conftest import asset_hash, make_0001_journal, peer_id, session_events


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
    marked.local["f" * 64] = 0
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


async def _snapshot_off_the_chain(path: Path) -> list[Event]:
    """A journal at `path` whose snapshot (at seq 10) no longer matches event 10's digest; its events."""
    journal = await Journal.open(path)
    written = await _fill(journal, range(3))
    await write_snapshot(journal, fold(written[:10]), 10)
    await journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET digest = ? WHERE seq = 10", ("ab" * 32,))
    conn.close()
    return written


async def test_a_snapshot_that_no_longer_matches_the_chain_is_passed_over(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    written = await _snapshot_off_the_chain(path)
    journal = await Journal.open(path)
    try:
        state, last = await rebuild_state(journal)
        assert (state, last) == (fold(written), written[-1].seq)
    finally:
        await journal.close()


async def test_a_corrupt_row_stops_the_rebuild_naming_file_and_seq(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    await _fill(journal, range(2))
    await journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET data = '{broken' WHERE seq = 6")
    conn.close()
    journal = await Journal.open(path)
    try:
        with pytest.raises(JournalError, match="Expecting property name") as caught:
            await rebuild_state(journal, use_snapshot=False)
        assert str(path) in str(caught.value) and "seq 6" in str(caught.value)
    finally:
        await journal.close()


async def test_replay_into_feeds_the_events_after_a_seq_in_order(journal: Journal) -> None:
    written = await _fill(journal, range(5))
    seen: list[Event] = []
    last = await journal.replay_into(seen.append, after_seq=10, batch=7)  # several batches
    assert last == written[-1].seq and seen == written[10:]
    assert await journal.replay_into(seen.append, after_seq=last) == last  # nothing after: after_seq back


async def test_replay_into_reads_large_integers_and_any_text_back(journal: Journal) -> None:
    odd = Event(EventKind.PEER_REJECTED, peer=peer_id(1), data={"n": 2**70, "reason": "caf\u00e9 \ud800 \u2028"})
    (written,) = await journal.append([odd])
    seen: list[Event] = []
    await journal.replay_into(seen.append)
    assert seen == [written] == [e async for e in journal.read()]
    assert type(seen[0].data["n"]) is int and seen[0].data["n"] == 2**70


def test_a_cancelled_scan_stops_at_its_next_batch(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def fill() -> None:
        async with await Journal.open(path) as journal:
            await _fill(journal, range(3))

    asyncio.run(fill())
    stop = threading.Event()
    stop.set()
    applied: list[Event] = []
    with pytest.raises(ScanCancelled, match=str(path)):
        fold_events(path, 0, applied.append, stop, batch=5)
    assert applied == []
    assert fold_events(path, 0, applied.append, threading.Event(), batch=5) == 27 and len(applied) == 27


async def test_rebuild_leaves_the_garbage_collector_as_it_found_it(journal: Journal) -> None:
    await _fill(journal, range(2))
    assert gc.isenabled()
    await rebuild_state(journal)
    assert gc.isenabled()
    gc.disable()
    try:
        await rebuild_state(journal)
        assert not gc.isenabled()
    finally:
        gc.enable()
    await journal.save_snapshot(0, {"version": 1})  # damaged: from_snapshot raises inside the pause
    with sqlite3.connect(journal.path) as conn:
        conn.execute("UPDATE events SET kind = 'peer_teleported' WHERE seq = 3")
    conn.close()
    with pytest.raises(JournalError):
        await rebuild_state(journal)
    assert gc.isenabled()


async def test_reading_no_kinds_reads_nothing(journal: Journal) -> None:
    await _fill(journal, range(1))
    assert [e async for e in journal.read(kinds=[])] == []


# -- the same rebuild without writing (cansync status with no agent) ---------------------------------


async def test_the_read_only_rebuild_matches_rebuild_state_with_and_without_a_snapshot(journal: Journal) -> None:
    first = await _fill(journal, range(4))
    assert rebuild_without_writing(journal.path) == await rebuild_state(journal)  # no snapshot yet
    marked = fold(first)
    marked.local["f" * 64] = 0  # only a rebuild that used the snapshot shows this
    await write_snapshot(journal, marked, first[-1].seq)
    await _fill(journal, range(4, 9))
    read_only = rebuild_without_writing(journal.path)
    assert read_only is not None and read_only == await rebuild_state(journal)
    assert "f" * 64 in read_only[0].local


async def test_the_read_only_rebuild_passes_over_a_snapshot_off_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    written = await _snapshot_off_the_chain(path)
    assert rebuild_without_writing(path) == (fold(written), written[-1].seq)


def test_the_read_only_rebuild_leaves_an_older_schema_to_journal_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_0001_journal(path, 3)
    before = path.read_bytes()
    assert rebuild_without_writing(path) is None
    assert path.read_bytes() == before
