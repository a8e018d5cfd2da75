"""Snapshots, the chain head, and the indexes behind `cansync journal inspect`'s filters.

The chain head (the last event's seq and digest) is filled from the events already there, so an
older journal keeps its chain and verify can from now on also tell when events were cut off the end.

Revision ID: 0002_snapshots_indexes
Revises: 0001_events
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002_snapshots_indexes"
down_revision: str | Sequence[str] | None = "0001_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_DIGEST = "00" * 32  # frozen here: a migration must not change when the code does


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("time_ms", sa.Integer, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
    )
    op.execute(
        "INSERT INTO chain_head (id, seq, digest) "
        "SELECT 1, COALESCE((SELECT seq FROM events ORDER BY seq DESC LIMIT 1), 0), "
        f"COALESCE((SELECT digest FROM events ORDER BY seq DESC LIMIT 1), '{GENESIS_DIGEST}')"
    )
    op.create_index("ix_events_peer_seq", "events", ["peer", "seq"])
    op.create_index("ix_events_hash_seq", "events", ["hash", "seq"])
    op.create_index("ix_events_kind_seq", "events", ["kind", "seq"])
    op.create_index("ix_events_time_ms", "events", ["time_ms"])


def downgrade() -> None:
    op.drop_index("ix_events_time_ms", "events")
    op.drop_index("ix_events_kind_seq", "events")
    op.drop_index("ix_events_hash_seq", "events")
    op.drop_index("ix_events_peer_seq", "events")
    op.drop_table("chain_head")
    op.drop_table("snapshots")
