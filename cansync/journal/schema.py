"""The journal's tables as SQLAlchemy Core objects, for the code that reads and writes them.

The database schema itself is made only by the alembic migrations (alembic/versions/); these
definitions must match the head revision. tests/journal/test_migrations.py checks that they do.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, Table, Text

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("time_ms", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("peer", Text, nullable=True),
    Column("hash", Text, nullable=True),
    Column("data", Text, nullable=False),  # canonical JSON text (chain.canonical_json)
    Column("prev_digest", Text, nullable=False),  # hex
    Column("digest", Text, nullable=False),  # hex
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # state as of this event
    Column("time_ms", Integer, nullable=False),
    Column("digest", Text, nullable=False),  # digest of the event at seq: ties the snapshot to the chain
    Column("state", Text, nullable=False),  # JSON
)

chain_head = Table(
    "chain_head",
    metadata,
    # one row (id 1): the last event's seq and digest, so verify also catches events cut off the end
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("digest", Text, nullable=False),
)

HEAD_ROW_ID = 1
SNAPSHOTS_KEPT = 3
