"""Opening the journal's SQLite file: the safety check before touching it, the engine, the migrations.

The schema is made and changed only by the alembic migrations in alembic/versions/ (migrations.ini at
the repository root, for running them by hand). An installed cansync carries a copy of alembic/ in
cansync/journal/migrations/, put there by the wheel build (setup.py); a checkout (an editable install)
has none there and uses alembic/ itself. Before anything may write to a file, `sqlite_file.preflight` looks at
it read-only and refuses a file that is not a cansync journal or whose schema is newer than this code
knows, so a refused file keeps every byte it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# The file check (preflight), the revisions and where the migrations live are in sqlite_file, which
# imports neither SQLAlchemy nor alembic; head_revision and script_location are named here too for the
# callers (and tests) that speak of migrating.
from cansync.journal.sqlite_file import BUSY_TIMEOUT_MS, script_location
from cansync.journal.sqlite_file import head_revision as head_revision

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

PAGE_CACHE_KIB = 8 * 1024  # per pooled connection: the agent's memory budget is 150 MB in all
BEGIN_MODE_OPTION = "cansync_sqlite_begin"
"""Execution option naming how a transaction begins: "DEFERRED" (default) or "IMMEDIATE" for writes."""


def alembic_config() -> AlembicConfig:
    """The alembic configuration the agent migrates with: only the script location.

    migrations.ini is for the alembic command line (its logging and URL options); in-process the agent
    passes the connection, and an installed cansync has no migrations.ini anyway.
    """
    from alembic.config import Config as AlembicConfig  # alembic (12 MB) is loaded only to migrate

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


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
    from alembic import command

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        async with conn.begin():
            await conn.run_sync(upgrade_connection)
