"""The schema comes only from the alembic migrations: from empty, from an older journal, by hand."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from cansync.core.events import Event, EventKind
from cansync.journal import schema
from cansync.journal.database import head_revision
from cansync.journal.recorder import Journal

from .conftest import make_0001_journal, peer_id

MIGRATIONS_INI = Path(__file__).resolve().parents[2] / "migrations.ini"  # the checkout's, for the command line


def _tables_and_indexes(path: Path) -> tuple[set[str], set[str], str]:
    with sqlite3.connect(path) as conn:
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return tables, indexes, version


async def test_open_creates_the_head_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new" / "journal.db"
    journal = await Journal.open(path)
    await journal.close()
    tables, indexes, version = _tables_and_indexes(path)
    assert {"events", "snapshots", "chain_head", "alembic_version"} <= tables
    assert {"ix_events_peer_seq", "ix_events_hash_seq", "ix_events_kind_seq", "ix_events_time_ms"} <= indexes
    assert version == head_revision() == "0002_snapshots_indexes"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_code_tables_match_what_the_migrations_make(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    await (await Journal.open(path)).close()
    engine = create_engine(f"sqlite:///{path}")
    try:
        found = inspect(engine)
        for table in schema.metadata.sorted_tables:
            columns = {c["name"]: c for c in found.get_columns(table.name)}
            assert set(columns) == {c.name for c in table.columns}, table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
    finally:
        engine.dispose()


async def test_an_older_journal_holding_events_is_upgraded_and_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    digests = make_0001_journal(path, events=25)
    tables, _, version = _tables_and_indexes(path)
    assert version == "0001_events" and "snapshots" not in tables

    journal = await Journal.open(path)
    try:
        old = [e async for e in journal.read()]
        assert [e.seq for e in old] == list(range(1, 26))
        assert all(e.kind is EventKind.PEER_DISCOVERED and e.data["via"] == "ticket" for e in old)
        assert (await journal.verify()).ok
        # the chain continues from the migrated events
        new = await journal.append_one(Event(EventKind.PEER_AUTHENTICATED, peer=peer_id(1)))
        assert new.seq == 26
        report = await journal.verify()
        assert report.ok and report.checked == 26
    finally:
        await journal.close()
    _, indexes, version = _tables_and_indexes(path)
    assert version == head_revision() and "ix_events_peer_seq" in indexes
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT prev_digest FROM events WHERE seq = 26").fetchone() == (digests[-1],)


def test_alembic_command_line_upgrades_with_x_url_or_the_environment(tmp_path: Path) -> None:
    alembic_bin = Path(sys.executable).parent / "alembic"
    by_x = tmp_path / "by_x.db"
    by_env = tmp_path / "by_env.db"
    ini = str(MIGRATIONS_INI)
    subprocess.run(
        [alembic_bin, "-c", ini, "-x", f"url={by_x}", "upgrade", "head"], cwd=tmp_path, check=True, timeout=60
    )
    env = {**os.environ, "CANSYNC_JOURNAL_URL": f"sqlite:///{by_env}"}
    subprocess.run([alembic_bin, "-c", ini, "upgrade", "head"], cwd=tmp_path, env=env, check=True, timeout=60)
    for path in (by_x, by_env):
        tables, indexes, version = _tables_and_indexes(path)
        assert version == head_revision()
        assert {"events", "snapshots", "chain_head"} <= tables and "ix_events_hash_seq" in indexes
    current = subprocess.run(
        [alembic_bin, "-c", ini, "-x", f"url={by_x}", "current"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert head_revision() in current.stdout


async def test_a_journal_upgraded_by_hand_opens_and_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    alembic_bin = Path(sys.executable).parent / "alembic"
    subprocess.run(
        [alembic_bin, "-c", str(MIGRATIONS_INI), "-x", f"url={path}", "upgrade", "head"],
        check=True,
        timeout=60,
        capture_output=True,
    )
    journal = await Journal.open(path)
    try:
        assert await journal.last_seq() == 0
        assert (await journal.verify()).ok
    finally:
        await journal.close()
