"""Files the journal must refuse, clearly and without changing a byte of them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from cansync.journal.database import head_revision
from cansync.journal.recorder import Journal, JournalError

from .conftest import asset_hash, file_digest, peer_id, session_events


async def _refused(path: Path, match: str) -> None:
    before = file_digest(path)
    with pytest.raises(JournalError, match=match) as caught:
        await Journal.open(path)
    assert str(path) in str(caught.value)
    assert file_digest(path) == before


async def test_random_bytes_are_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(os.urandom(8192))
    await _refused(path, "not a SQLite database")


async def test_a_short_text_file_is_not_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.write_text("hello\n")
    await _refused(path, "not a SQLite database")


async def test_a_sqlite_database_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    conn.close()
    await _refused(path, "something else .*photos")


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    await journal.append(session_events(peer_id(1), asset_hash(1)))
    await journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.close()
    await _refused(path, f"0099_from_the_future.*knows up to {head_revision()}.*newer cansync")


async def test_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.mkdir()
    with pytest.raises(JournalError, match="is a directory"):
        await Journal.open(path)


async def test_an_empty_file_becomes_a_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    path.touch()
    journal = await Journal.open(path)
    try:
        assert (await journal.append_one(session_events(peer_id(1), asset_hash(1))[0])).seq == 1
    finally:
        await journal.close()


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("data", "{not json", "Expecting property name"),
        ("data", "[1, 2]", "not an object"),
        ("kind", "peer_teleported", "peer_teleported"),
        ("peer", None, "needs a peer"),
    ],
)
async def test_a_corrupt_row_is_named_by_file_and_seq(tmp_path: Path, column: str, value: str, problem: str) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    await journal.append(session_events(peer_id(1), asset_hash(1)))
    await journal.close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = 5", (value,))
    conn.close()
    before = file_digest(path)
    journal = await Journal.open(path)
    try:
        seen = []
        with pytest.raises(JournalError, match=problem) as caught:
            async for event in journal.read():
                seen.append(event.seq)
        assert seen == [1, 2, 3, 4]
        assert str(path) in str(caught.value) and "seq 5" in str(caught.value)
        report = await journal.verify()
        assert not report.ok and report.first_bad_seq == 5
    finally:
        await journal.close()
    assert file_digest(path) == before  # reading and verifying wrote nothing
