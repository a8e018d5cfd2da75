"""Two machines driven through a simulated session: once every owed transfer completes, both hold the union.

The "network" here is a list of pending deliveries; hypothesis picks which one happens next, and may
fail a transfer (the receiver then journals the failure, as the agent does on a hash mismatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core.commands import Advertise, RequestAsset, SendAsset
from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState

ASSETS = [f"{i:064x}" for i in range(1, 9)]


@dataclass
class Node:
    name: str
    state: SyncState = field(default_factory=SyncState)
    seq: int = 0
    journal: list[Event] = field(default_factory=list)

    def record(self, event: Event) -> list:
        self.seq += 1
        stamped = event.journaled(self.seq, self.seq)
        self.journal.append(stamped)
        return self.state.apply(stamped)


def run_session(a: Node, b: Node, choices: st.DataObject, fail_budget: int) -> None:
    nodes = {a.name: a, b.name: b}
    other = {a.name: b, b.name: a}
    pending: list[tuple[str, str, object]] = []  # (to, kind, payload)

    def handle(node: Node, commands: list) -> None:
        for command in commands:
            if isinstance(command, RequestAsset):
                if node.state.incoming_active(command.hash):
                    continue
                handle(
                    node,
                    node.record(
                        Event(
                            EventKind.TRANSFER_REQUESTED,
                            peer=command.peer,
                            hash=command.hash,
                            data={"direction": "in", "offset": 0},
                        )
                    ),
                )
                pending.append((command.peer, "want", (node.name, command.hash)))
            elif isinstance(command, SendAsset):
                pending.append((command.peer, "asset", (node.name, command.hash)))
            elif isinstance(command, Advertise):
                pending.append((command.peer, "advert", (node.name, list(command.hashes))))

    for node in (a, b):
        peer = other[node.name].name
        handle(node, node.record(Event(EventKind.PEER_CONNECTED, peer=peer)))
        handle(node, node.record(Event(EventKind.PEER_AUTHENTICATED, peer=peer)))
        pending.append((peer, "advert", (node.name, sorted(node.state.local))))

    failures = 0
    while pending:
        to, kind, payload = pending.pop(choices.draw(st.integers(0, len(pending) - 1)))
        node = nodes[to]
        sender, body = payload  # type: ignore[misc]
        if kind == "advert":
            handle(node, node.record(Event(EventKind.HASHES_ADVERTISED, peer=sender, data={"hashes": body})))
        elif kind == "want":
            handle(
                node,
                node.record(
                    Event(EventKind.TRANSFER_REQUESTED, peer=sender, hash=body, data={"direction": "out", "offset": 0})
                ),
            )
        elif kind == "asset":
            source = nodes[sender]
            source.record(
                Event(EventKind.TRANSFER_COMPLETED, peer=to, hash=body, data={"direction": "out", "size": 10})
            )
            if failures < fail_budget and choices.draw(st.booleans()):
                failures += 1
                handle(
                    node,
                    node.record(
                        Event(
                            EventKind.TRANSFER_FAILED,
                            peer=sender,
                            hash=body,
                            data={"direction": "in", "reason": "hash mismatch", "discard": True},
                        )
                    ),
                )
                continue
            node.record(
                Event(
                    EventKind.TRANSFER_COMPLETED,
                    peer=sender,
                    hash=body,
                    data={"direction": "in", "size": 10, "verified": True},
                )
            )
            handle(node, node.record(Event(EventKind.ASSET_RECEIVED, peer=sender, hash=body)))


@settings(max_examples=150, deadline=None)
@given(
    a_assets=st.sets(st.sampled_from(ASSETS)),
    b_assets=st.sets(st.sampled_from(ASSETS)),
    fail_budget=st.integers(0, 2),
    choices=st.data(),
)
def test_after_all_owed_transfers_complete_both_hold_the_union(a_assets, b_assets, fail_budget, choices):
    a, b = Node("a" * 64), Node("b" * 64)
    for node, assets in ((a, a_assets), (b, b_assets)):
        for asset in sorted(assets):
            node.record(Event(EventKind.LOCAL_ASSET_SEEN, hash=asset))
    run_session(a, b, choices, fail_budget)
    union = a_assets | b_assets
    assert a.state.local == union
    assert b.state.local == union
    assert a.state.owed(b.name) == set() and b.state.owed(a.name) == set()
    # echo suppression: nothing B received from A was ever sent back to A
    sent_back = {
        e.hash
        for e in b.journal
        if e.kind == EventKind.TRANSFER_COMPLETED and e.data["direction"] == "out" and e.peer == a.name
    }
    assert not (sent_back & a_assets)
    # and the journals alone rebuild the same states
    from cansync.core.machine import fold

    assert fold(a.journal) == a.state
    assert fold(b.journal) == b.state
