"""Shared helpers for the journal tests: real SQLite files under tmp_path, realistic events."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cansync.core.events import Event, EventKind
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
