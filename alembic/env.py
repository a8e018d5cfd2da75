"""alembic environment of the cansync journal.

Two ways in: cansync itself passes an open SQLAlchemy connection in `config.attributes["connection"]`
(its transaction holds the whole upgrade); the alembic command line names the database with
`-x url=...` or CANSYNC_JOURNAL_URL (a SQLite URL or a plain file path).
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Connection, make_url

from alembic import context
from cansync.journal.database import BEGIN_MODE_OPTION, install_sqlite_behaviour
from cansync.journal.schema import metadata

config = context.config
target_metadata = metadata


def _url_from_command_line() -> URL:
    raw = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CANSYNC_JOURNAL_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not raw:
        raise SystemExit(
            "no journal named: pass -x url=/path/to/journal.db or set CANSYNC_JOURNAL_URL "
            "(a SQLite URL such as sqlite:////abs/path/journal.db, or a file path)"
        )
    url = make_url(raw) if "://" in raw else URL.create("sqlite", database=raw)
    if url.get_backend_name() != "sqlite":
        raise SystemExit(f"the cansync journal is SQLite; got a {url.get_backend_name()} URL")
    return url.set(drivername="sqlite")  # the synchronous driver for the command line


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url_from_command_line(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # only on the command line: never reconfigure the agent's logging
    engine = create_engine(_url_from_command_line())
    install_sqlite_behaviour(engine)
    try:
        with engine.connect() as connection:
            connection = connection.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
