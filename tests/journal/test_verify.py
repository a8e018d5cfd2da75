"""verify proves nothing was edited or dropped: raw sqlite3 edits are caught and named by seq."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cansync.journal.chain import canonical_json, event_digest
from cansync.journal.recorder import Journal

from .conftest import asset_hash, peer_id, session_events


async def _journal_with(path: Path, peers: int = 3) -> None:
    journal = await Journal.open(path)
    try:
        for n in range(peers):
            await journal.append(session_events(peer_id(n), asset_hash(n)))  # 8 events each
    finally:
        await journal.close()


async def _verify(path: Path):  # type: ignore[no-untyped-def]
    journal = await Journal.open(path)
    try:
        return await journal.verify()
    finally:
        await journal.close()


def _sql(path: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement, params)


async def test_an_untouched_journal_verifies(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    report = await _verify(path)
    assert (report.ok, report.checked, report.first_bad_seq, report.reason) == (True, 24, None, "ok")


async def test_an_edited_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    _sql(path, "UPDATE events SET data = ? WHERE seq = 11", canonical_json({"direction": "out", "addrs": []}))
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 11 and report.checked == 10
    assert "digest" in report.reason


async def test_an_edit_that_is_the_same_json_spelled_differently_is_still_caught(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    with sqlite3.connect(path) as conn:
        (data,) = conn.execute("SELECT data FROM events WHERE seq = 4").fetchone()
        conn.execute("UPDATE events SET data = ? WHERE seq = 4", (data.replace(",", ", "),))
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 4


async def test_an_edit_with_a_recomputed_digest_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    with sqlite3.connect(path) as conn:
        seq, time_ms, kind, peer, hash_, prev = conn.execute(
            "SELECT seq, time_ms, kind, peer, hash, prev_digest FROM events WHERE seq = 7"
        ).fetchone()
        forged = canonical_json({"direction": "in", "size": 1, "verified": False, "sent": 1})
        digest = event_digest(bytes.fromhex(prev), seq, time_ms, kind, peer, hash_, forged).hex()
        conn.execute("UPDATE events SET data = ?, digest = ? WHERE seq = 7", (forged, digest))
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 8 and "prev_digest" in report.reason


async def test_a_deleted_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    _sql(path, "DELETE FROM events WHERE seq = 13")
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 13 and report.checked == 12
    assert "missing" in report.reason


async def test_a_deleted_first_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    _sql(path, "DELETE FROM events WHERE seq = 1")
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 1 and report.checked == 0


async def test_rows_cut_off_the_end_are_caught_and_stay_caught_after_more_appends(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await _journal_with(path)
    _sql(path, "DELETE FROM events WHERE seq > 20")
    report = await _verify(path)
    assert not report.ok and report.first_bad_seq == 21 and "dropped from the end" in report.reason
    # the agent keeps appending: the chain continues from the recorded head, so the gap stays visible
    journal = await Journal.open(path)
    try:
        (new,) = await journal.append(session_events(peer_id(9), asset_hash(9))[:1])
        assert new.seq == 25
        report = await journal.verify()
        assert not report.ok and report.first_bad_seq == 21 and "21-24" in report.reason
    finally:
        await journal.close()


async def test_verify_while_another_process_keeps_appending_never_reports_a_false_break(tmp_path: Path) -> None:
    """`cansync journal verify` runs beside a live agent: events committed during the walk are not
    "dropped from the end"."""
    import asyncio

    path = tmp_path / "journal.db"
    await _journal_with(path, peers=50)
    writer = await Journal.open(path)
    reader = await Journal.open(path)
    stop = asyncio.Event()
    appended_one = asyncio.Event()

    async def keep_appending() -> int:
        n = 0
        while not stop.is_set():
            await writer.append(session_events(peer_id(1000 + n), asset_hash(1000 + n)))
            appended_one.set()
            n += 1
        return n

    appender = asyncio.create_task(keep_appending())
    try:
        reports = [await reader.verify(batch=37)]
        appended_one.clear()
        await appended_one.wait()  # however loaded the machine, later walks have something new to see
        reports += [await reader.verify(batch=37) for _ in range(14)]
    finally:
        stop.set()
        appended = await appender
        await reader.close()
        await writer.close()
    assert appended > 0
    assert all(r.ok for r in reports), [r for r in reports if not r.ok][:1]
    assert reports[-1].checked > reports[0].checked >= 400  # later walks saw the appends
