"""An AgentView backed by a real journal file: what a running agent's view shows, without the agent.

The journal holds what `fill_journal` writes (real events through cansync.journal.recorder.Journal);
the state is their fold by cansync.core.machine.SyncState, as an agent's ledger keeps it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState
from cansync.journal.recorder import Journal
from cansync.web.journal_rows import journal_rows
from cansync.web.state_status import status_from_state


def peer_id(name: str) -> str:
    return hashlib.sha256(f"peer {name}".encode()).hexdigest()


def asset_hash(name: str) -> str:
    return hashlib.sha256(f"asset {name}".encode()).hexdigest()


OURS = peer_id("us")
ALICE, BOB, STRANGER = peer_id("alice"), peer_id("bob"), peer_id("stranger")
FROM_ALICE = asset_hash("photo from alice")  # alice sent it to us, verified
TO_BOB = asset_hash("report we sent bob")  # we sent it to bob
MOVING_IN = asset_hash("video coming from bob")  # bob is sending it, 40% there
MOVING_OUT = asset_hash("archive going to alice")  # we are sending it to alice
LOCAL = [asset_hash(f"local {n}") for n in range(3)]
STORE_URL = "http://127.0.0.1:3210"


def journal_events() -> list[Event]:
    def transfer(kind: EventKind, peer: str, asset: str, **data: Any) -> Event:
        return Event(kind, peer=peer, hash=asset, data=data)

    events = [Event(EventKind.LOCAL_ASSET_SEEN, hash=h, data={"timestamp": 1, "size": 10}) for h in LOCAL]
    events += [
        Event(EventKind.LOCAL_ASSET_SEEN, hash=TO_BOB, data={"timestamp": 2, "size": 2048}),
        Event(EventKind.LOCAL_ASSET_SEEN, hash=MOVING_OUT, data={"timestamp": 3, "size": 9_000_000}),
        Event(EventKind.PEER_DISCOVERED, peer=ALICE, data={"via": "lan", "addrs": ["127.0.0.1:4001"]}),
        Event(EventKind.PEER_CONNECTED, peer=ALICE, data={"direction": "out", "addrs": ["127.0.0.1:4001"]}),
        Event(EventKind.PEER_AUTHENTICATED, peer=ALICE),
        Event(EventKind.HASHES_ADVERTISED, peer=ALICE, data={"hashes": [FROM_ALICE], "watermark": 1, "full": True}),
        transfer(EventKind.TRANSFER_REQUESTED, ALICE, FROM_ALICE, direction="in", offset=0),
        transfer(EventKind.TRANSFER_STARTED, ALICE, FROM_ALICE, direction="in", offset=0, size=5000),
        transfer(EventKind.TRANSFER_COMPLETED, ALICE, FROM_ALICE, direction="in", size=5000, verified=True, sent=5000),
        Event(EventKind.ASSET_RECEIVED, peer=ALICE, hash=FROM_ALICE, data={"timestamp": 1_700_000_000_000}),
        transfer(EventKind.TRANSFER_REQUESTED, ALICE, MOVING_OUT, direction="out", offset=0),
        transfer(EventKind.TRANSFER_STARTED, ALICE, MOVING_OUT, direction="out", offset=0, size=9_000_000),
        Event(EventKind.PEER_DISCOVERED, peer=BOB, data={"via": "pkarr", "addrs": ["127.0.0.1:4002"]}),
        Event(EventKind.PEER_CONNECTED, peer=BOB, data={"direction": "in", "addrs": ["127.0.0.1:4002"]}),
        Event(EventKind.PEER_AUTHENTICATED, peer=BOB),
        Event(EventKind.HASHES_ADVERTISED, peer=BOB, data={"hashes": [MOVING_IN], "watermark": 4, "full": True}),
        transfer(EventKind.TRANSFER_REQUESTED, BOB, TO_BOB, direction="out", offset=0),
        transfer(EventKind.TRANSFER_STARTED, BOB, TO_BOB, direction="out", offset=0, size=2048),
        transfer(EventKind.TRANSFER_COMPLETED, BOB, TO_BOB, direction="out", size=2048, verified=False, sent=2048),
        transfer(EventKind.TRANSFER_REQUESTED, BOB, MOVING_IN, direction="in", offset=0),
        transfer(EventKind.TRANSFER_STARTED, BOB, MOVING_IN, direction="in", offset=0, size=10_000_000),
        transfer(EventKind.TRANSFER_CHECKPOINTED, BOB, MOVING_IN, direction="in", offset=4_000_000),
        Event(EventKind.PEER_DISCOVERED, peer=STRANGER, data={"via": "incoming"}),
        Event(EventKind.PEER_CONNECTED, peer=STRANGER, data={"direction": "in", "addrs": []}),
        Event(EventKind.PEER_REJECTED, peer=STRANGER, data={"reason": "wrong passphrase proof"}),
    ]
    return events


async def fill_journal(journal: Journal) -> SyncState:
    """Write the events and fold what the journal gave back (with its seqs and times) into a SyncState."""
    state = SyncState()
    for event in await journal.append(journal_events()):
        state.apply(event)
    return state


@dataclass
class JournalView:
    """AgentView over a real journal and the state folded from it."""

    journal: Journal
    state: SyncState
    in_session: set[str] = field(default_factory=lambda: {ALICE, BOB})
    paused: set[str] = field(default_factory=set)
    errors: list[dict[str, Any]] = field(default_factory=list)
    pause_calls: list[tuple[str, bool]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return status_from_state(
            self.state,
            endpoint_id=OURS,
            started_ms=1_700_000_000_000,
            store_url=STORE_URL,
            store_reachable=True,
            in_session=self.in_session,
            paused=self.paused,
            errors=self.errors,
            rates={"bytes_in_per_s": 1_500_000.0, "bytes_out_per_s": 250_000.0},
        )

    async def journal_rows(
        self, *, hash_prefix: str | None, peer: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await journal_rows(self.journal, hash_prefix=hash_prefix, peer=peer, kind=kind, limit=limit)

    async def set_paused(self, peer: str, paused: bool) -> None:
        if peer not in self.state.peers:
            raise KeyError(peer)
        self.pause_calls.append((peer, paused))
        (self.paused.add if paused else self.paused.discard)(peer)
