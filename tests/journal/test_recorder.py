"""Append and read back: round trip, filters, paging, group commit, gapless seqs, snapshots."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import pytest

from cansync.core.events import Event, EventKind
from cansync.journal.chain import GENESIS_DIGEST, canonical_json, event_digest
from cansync.journal.recorder import Journal, JournalError

from .conftest import asset_hash, peer_id, session_events


async def test_round_trip_keeps_every_field(journal: Journal) -> None:
    written = await journal.append(session_events(peer_id(1), asset_hash(1)))
    assert [e.seq for e in written] == list(range(1, 9))
    assert all(e.time_ms > 1_600_000_000_000 for e in written)
    read = [e async for e in journal.read()]
    assert read == written  # dataclass equality: kind, peer, hash, data, seq, time_ms
    assert await journal.last_seq() == 8
    one = await journal.append_one(Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(2), data={"size": 5}))
    assert one.seq == 9 and [e async for e in journal.read(after_seq=8)] == [one]


async def test_filters_select_by_peer_hash_kind_and_time(journal: Journal) -> None:
    first = await journal.append(session_events(peer_id(1), asset_hash(1)))
    await asyncio.sleep(0.01)
    second = await journal.append(session_events(peer_id(2), asset_hash(2)))
    local = await journal.append_one(Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(1), data={"size": 1}))

    by_peer = [e async for e in journal.read(peer=peer_id(2))]
    assert by_peer == second
    by_hash = [e.seq async for e in journal.read(hash=asset_hash(1))]
    assert by_hash == [e.seq for e in first if e.hash] + [local.seq]
    kinds = {EventKind.TRANSFER_COMPLETED, EventKind.ASSET_RECEIVED}
    by_kind = [e async for e in journal.read(kinds=kinds)]
    assert [e.seq for e in by_kind] == [e.seq for e in first + second if e.kind in kinds]
    both = [e async for e in journal.read(peer=peer_id(1), kinds=[EventKind.PEER_AUTHENTICATED])]
    assert [e.seq for e in both] == [3]
    since = [e.seq async for e in journal.read(since_time_ms=second[0].time_ms)]
    assert since == [e.seq for e in second] + [local.seq]
    assert [e async for e in journal.read(since_time_ms=local.time_ms + 60_000)] == []
    assert [e async for e in journal.read(peer="0" * 64)] == []


async def test_reads_page_through_the_journal_in_batches(journal: Journal) -> None:
    events = [Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(i), data={"size": i}) for i in range(1, 1001)]
    await journal.append(events)
    assert [e.seq async for e in journal.read(batch=7)] == list(range(1, 1001))
    assert [e.seq async for e in journal.read(after_seq=990, batch=3)] == list(range(991, 1001))
    # a batch boundary that falls exactly at the end
    assert [e.seq async for e in journal.read(batch=500)] == list(range(1, 1001))


async def test_concurrent_appenders_get_gapless_seqs_in_few_transactions(journal: Journal) -> None:
    async def appender(n: int) -> list[Event]:
        await asyncio.sleep(random.random() / 100)
        batch = [Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(n)) for _ in range(1 + n % 3)]
        return await journal.append(batch)

    results = await asyncio.gather(*(appender(n) for n in range(200)))
    seqs = sorted(e.seq for batch in results for e in batch)
    assert seqs == list(range(1, len(seqs) + 1))
    for batch in results:  # each append's events are contiguous and in the order given
        assert [e.seq for e in batch] == list(range(batch[0].seq, batch[0].seq + len(batch)))
        assert all(e.peer == batch[0].peer for e in batch)
    assert journal.commits < 200  # grouped: far fewer transactions than appends
    report = await journal.verify()
    assert report.ok and report.checked == len(seqs)


async def test_the_stored_chain_follows_the_documented_digest(journal: Journal) -> None:
    await journal.append(session_events(peer_id(3), asset_hash(3)))
    with sqlite3.connect(journal.path) as conn:
        rows = conn.execute("SELECT seq, time_ms, kind, peer, hash, data, prev_digest, digest FROM events").fetchall()
    prev = GENESIS_DIGEST
    for seq, time_ms, kind, peer, hash_, data, prev_digest, digest in rows:
        assert prev_digest == prev
        assert data == canonical_json(json.loads(data))
        assert digest == event_digest(bytes.fromhex(prev), seq, time_ms, kind, peer, hash_, data).hex()
        prev = digest


async def test_appending_is_all_or_nothing_when_data_is_not_json(journal: Journal) -> None:
    good = Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(1))
    bad = Event(EventKind.PEER_REJECTED, peer=peer_id(1), data={"reason": b"bytes are not JSON"})
    with pytest.raises(JournalError, match="not JSON"):
        await journal.append([good, bad])
    assert await journal.last_seq() == 0
    assert (await journal.append_one(good)).seq == 1


async def test_an_event_already_journaled_is_refused(journal: Journal) -> None:
    event = await journal.append_one(Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(1)))
    with pytest.raises(JournalError, match="already journaled as seq 1"):
        await journal.append([event])


async def test_appends_after_close_are_refused_and_pending_ones_are_written(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "journal.db")
    pending = [
        asyncio.ensure_future(journal.append_one(Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(n))))
        for n in range(20)
    ]
    await asyncio.sleep(0)
    await journal.close()
    done = await asyncio.gather(*pending)
    assert sorted(e.seq for e in done) == list(range(1, 21))
    with pytest.raises(JournalError, match="closed"):
        await journal.append_one(Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(1)))
    await journal.close()  # twice is fine
    reopened = await Journal.open(tmp_path / "journal.db")
    try:
        assert await reopened.last_seq() == 20
        assert (await reopened.append_one(Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(1)))).seq == 21
        assert (await reopened.verify()).ok
    finally:
        await reopened.close()


async def test_snapshots_store_the_newest_and_keep_a_few(journal: Journal) -> None:
    assert await journal.load_snapshot() is None
    await journal.append([Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(n)) for n in range(10)])
    for seq in (2, 4, 6, 8):
        await journal.save_snapshot(seq, {"at": seq, "peers": {"x": [1, 2]}})
    assert await journal.load_snapshot() == (8, {"at": 8, "peers": {"x": [1, 2]}})
    await journal.save_snapshot(8, {"at": "again"})
    assert await journal.load_snapshot() == (8, {"at": "again"})
    with sqlite3.connect(journal.path) as conn:
        assert [s for (s,) in conn.execute("SELECT seq FROM snapshots ORDER BY seq")] == [4, 6, 8]
    with pytest.raises(JournalError, match="no such event"):
        await journal.save_snapshot(99, {})
    with pytest.raises(JournalError, match="not JSON-able"):
        await journal.save_snapshot(9, {"bad": object()})


async def test_match_prefix_finds_peers_and_hashes(journal: Journal) -> None:
    await journal.append(session_events(peer_id(1), asset_hash(1)) + session_events(peer_id(2), asset_hash(2)))
    assert await journal.match_prefix("peer", peer_id(1)[:6]) == [peer_id(1)]
    assert await journal.match_prefix("hash", asset_hash(2)[:6]) == [asset_hash(2)]
    assert sorted(await journal.match_prefix("peer", "", limit=5)) == sorted([peer_id(1), peer_id(2)])
    assert await journal.match_prefix("peer", "zz") == []


async def test_a_failed_write_fails_its_callers_whole_and_the_writer_keeps_serving(journal: Journal) -> None:
    await journal.append([Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(n)) for n in range(3)])
    # another process (a second agent on the same data_dir) takes seq 4 behind our back
    with sqlite3.connect(journal.path) as conn:
        conn.execute(
            "INSERT INTO events VALUES (4, 0, 'peer_authenticated', ?, NULL, '{}', ?, ?)",
            (peer_id(9), "00" * 32, "00" * 32),
        )
    conn.close()
    two = [Event(EventKind.PEER_DISCONNECTED, peer=peer_id(n), data={"reason": "x"}) for n in range(2)]
    with pytest.raises(JournalError, match="cannot write 2 event") as caught:
        await journal.append(two)
    assert str(journal.path) in str(caught.value)
    with sqlite3.connect(journal.path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (4,)  # nothing of the failed group
        conn.execute("DELETE FROM events WHERE seq = 4")
    conn.close()
    assert [e.seq for e in await journal.append(two)] == [4, 5]
    assert (await journal.verify()).ok
