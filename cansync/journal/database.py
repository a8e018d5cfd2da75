"""Opening the journal's SQLite file: the safety check before touching it, the engine, the migrations.

The schema is made and changed only by the alembic migrations in alembic/versions/ (migrations.ini at
the repository root, for running them by hand). An installed cansync carries a copy of alembic/ in
cansync/journal/migrations/, put there by the wheel build (setup.py); a checkout (an editable install)
has none there and uses alembic/ itself. Before anything may write to a file, `preflight` looks at it read-only and
refuses a file that is not a cansync journal or whose schema is newer than this code knows, so a
refused file keeps every byte it had.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from cansync.journal.errors import JournalError

PACKAGED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "alembic"
SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 30_000
PAGE_CACHE_KIB = 8 * 1024  # per pooled connection: the agent's memory budget is 150 MB in all
BEGIN_MODE_OPTION = "cansync_sqlite_begin"
"""Execution option naming how a transaction begins: "DEFERRED" (default) or "IMMEDIATE" for writes."""


def script_location() -> Path:
    """The migrations this cansync runs: the installed package's copy, else the checkout's alembic/."""
    # The packaged copy first: in an installed cansync, parents[2]/alembic is site-packages/alembic, the library.
    for location in (PACKAGED_MIGRATIONS, CHECKOUT_MIGRATIONS):
        if (location / "env.py").is_file():
            return location
    raise JournalError(
        f"this cansync has no journal migrations: neither {PACKAGED_MIGRATIONS} nor {CHECKOUT_MIGRATIONS} holds "
        "env.py; reinstall cansync (`pip install .` from a checkout copies them into the package)"
    )


def alembic_config() -> AlembicConfig:
    """The alembic configuration the agent migrates with: only the script location.

    migrations.ini is for the alembic command line (its logging and URL options); in-process the agent
    passes the connection, and an installed cansync has no migrations.ini anyway.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no alembic revisions under {script_location()}")
    return head


def preflight(path: Path) -> str | None:
    """Check, without writing, that `path` is absent, empty or a cansync journal this code can open.

    Returns the schema revision the file records (None for a new or empty file).
    """
    if not path.exists():
        return None
    if path.is_dir():
        raise JournalError(f"{path}: is a directory, not a journal file")
    try:
        with path.open("rb") as fh:
            header = fh.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal file: {exc.strerror or exc}") from exc
    if not header:
        return None
    if header != SQLITE_MAGIC:
        raise JournalError(
            f"{path}: is not a SQLite database (its first bytes are not the SQLite header), so it is not a "
            "cansync journal; move it aside or point data_dir somewhere else"
        )
    try:
        # mode=ro: a refused file must keep every byte it had
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: cannot open the journal read-only to check it: {exc}") from exc
    try:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        versions: list[str] = []
        if "alembic_version" in tables:
            versions = [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error as exc:
        raise JournalError(f"{path}: is not a readable SQLite database ({exc}), so not a cansync journal") from exc
    finally:
        conn.close()
    if not tables or (tables == {"alembic_version"} and not versions):
        return None
    if "alembic_version" not in tables:
        shown = ", ".join(sorted(tables)[:8])
        raise JournalError(
            f"{path}: is a SQLite database of something else (tables: {shown}), not a cansync journal; "
            "move it aside or point data_dir somewhere else"
        )
    known = known_revisions()
    unknown = [v for v in versions if v not in known]
    if len(versions) != 1 or unknown:
        raise JournalError(
            f"{path}: records schema revision {', '.join(versions) or '(none)'}, which this cansync does not "
            f"know (it knows up to {head_revision()}): the journal was written by a newer cansync, or it is "
            "not a cansync journal; run a newer cansync or point data_dir somewhere else"
        )
    if "events" not in tables:
        raise JournalError(f"{path}: records revision {versions[0]} but has no events table: not a cansync journal")
    return versions[0]


def install_sqlite_behaviour(engine: Engine) -> None:
    """WAL, synchronous=NORMAL and a busy timeout on every connection; transactions begun by us.

    pysqlite (and so aiosqlite) opens transactions only before DML, leaving DDL in autocommit; taking
    BEGIN over makes a migration all-or-nothing and lets writers ask for BEGIN IMMEDIATE.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 32 MiB instead of 2: the peer and hash indexes take random-key inserts, and once they outgrow
            # the cache the append rate sags (bench/journal_bench.py, 1M events: ~32k/s at 2 MiB, ~40k/s here)
            cursor.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_journal_engine(path: Path) -> AsyncEngine:
    engine = create_async_engine(URL.create("sqlite+aiosqlite", database=str(path)))
    install_sqlite_behaviour(engine.sync_engine)
    return engine


def upgrade_connection(connection: Connection) -> None:
    """Run every migration up to head on `connection` (inside the caller's transaction)."""
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        async with conn.begin():
            await conn.run_sync(upgrade_connection)
