"""Shared helpers for the journal tests: real SQLite files under tmp_path, realistic events."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from alembic import command
from cansync.core.events import Event, EventKind
from cansync.journal.chain import GENESIS_DIGEST, canonical_json, event_digest
from cansync.journal.database import alembic_config, install_sqlite_behaviour
from cansync.journal.recorder import Journal


def peer_id(n: int) -> str:
    return hashlib.sha256(f"peer {n}".encode()).hexdigest()


def asset_hash(n: int) -> str:
    return hashlib.sha256(f"asset {n}".encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def session_events(peer: str, asset: str, size: int = 1000) -> list[Event]:
    """One peer found, authenticated, advertising an asset that it then sends us."""
    return [
        Event(EventKind.PEER_DISCOVERED, peer=peer, data={"via": "lan", "addrs": ["127.0.0.1:4000"]}),
        Event(EventKind.PEER_CONNECTED, peer=peer, data={"direction": "out", "addrs": ["127.0.0.1:4000"]}),
        Event(EventKind.PEER_AUTHENTICATED, peer=peer),
        Event(EventKind.HASHES_ADVERTISED, peer=peer, data={"hashes": [asset], "watermark": 1, "full": True}),
        Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=asset, data={"direction": "in", "offset": 0}),
        Event(EventKind.TRANSFER_STARTED, peer=peer, hash=asset, data={"direction": "in", "offset": 0, "size": size}),
        Event(
            EventKind.TRANSFER_COMPLETED,
            peer=peer,
            hash=asset,
            data={"direction": "in", "size": size, "verified": True, "sent": size},
        ),
        Event(EventKind.ASSET_RECEIVED, peer=peer, hash=asset, data={"timestamp": 1_700_000_000_000}),
    ]


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    opened = await Journal.open(tmp_path / "data" / "journal.db")
    try:
        yield opened
    finally:
        await opened.close()


def make_0001_journal(path: Path, events: int) -> list[str]:
    """A journal as revision 0001 left it, holding `events` chained events; returns their digests."""
    engine = create_engine(f"sqlite:///{path}")
    install_sqlite_behaviour(engine)
    cfg = alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_events")
        conn.commit()
    engine.dispose()
    digests, prev = [], bytes.fromhex(GENESIS_DIGEST)
    with sqlite3.connect(path) as conn:
        for seq in range(1, events + 1):
            data = canonical_json({"via": "ticket", "n": seq})
            digest = event_digest(prev, seq, 1000 + seq, "peer_discovered", peer_id(seq), None, data)
            conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, 1000 + seq, "peer_discovered", peer_id(seq), None, data, prev.hex(), digest.hex()),
            )
            digests.append(digest.hex())
            prev = digest
    return digests
