"""Two machines driven through a simulated session: once every owed transfer completes, both hold the union.

The "network" here is a list of pending deliveries; hypothesis picks which one happens next, and may
fail a transfer (the receiver then journals the failure, as the agent does on a hash mismatch). Each
node journals through `tests.core.node.Node`, which applies the ledger's rule: what the machine
decides (which asset to ask whom for) is journaled before anything else happens.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core.commands import Advertise, Command, RequestAsset, SendAsset, StoreAsset
from cansync.core.events import (
    AssetReceived,
    Direction,
    Event,
    EventKind,
    HashesAdvertised,
    LocalAssetSeen,
    PeerAuthenticated,
    PeerConnected,
    TransferCompleted,
    TransferRequested,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.machine import fold
from tests.core.node import Node

ASSETS = [f"{i:064x}" for i in range(1, 9)]


def run_session(a: Node, b: Node, choices: st.DataObject, fail_budget: int) -> None:
    nodes = {a.name: a, b.name: b}
    pending: list[tuple[str, str, object]] = []  # (to, kind, payload)

    def handle(node: Node, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, RequestAsset):
                pending.append((command.peer, "want", (node.name, command.hash, command.request_id)))
            elif isinstance(command, SendAsset):
                pending.append((command.peer, "asset", (node.name, command.hash)))
            elif isinstance(command, Advertise):
                pending.append((command.peer, "advert", (node.name, list(command.hashes))))
            elif isinstance(command, StoreAsset):
                handle(node, node.record(Event.of(AssetReceived(), peer=command.peer, hash=command.hash)))

    for node in (a, b):
        peer = [n for n in nodes if n != node.name][0]
        handle(node, node.record(Event.of(PeerConnected(Direction.OUT), peer=peer)))
        handle(node, node.record(Event.of(PeerAuthenticated(), peer=peer)))
        pending.append((peer, "advert", (node.name, sorted(node.state.local))))

    failures = 0
    while pending:
        to, kind, payload = pending.pop(choices.draw(st.integers(0, len(pending) - 1)))
        node = nodes[to]
        if kind == "advert":
            sender, hashes = payload  # type: ignore[misc]
            handle(node, node.record(Event.of(HashesAdvertised(tuple(hashes)), peer=sender)))
        elif kind == "want":
            sender, asset, request_id = payload  # type: ignore[misc]
            want = TransferRequested(Direction.OUT, 0, request_id)
            handle(node, node.record(Event.of(want, peer=sender, hash=asset)))
        elif kind == "asset":
            sender, asset = payload  # type: ignore[misc]
            source = nodes[sender]
            source.record(Event.of(TransferCompleted(Direction.OUT, 10, 10), peer=to, hash=asset))
            if failures < fail_budget and choices.draw(st.booleans()):
                failures += 1
                failure = failed_transfer(sender, asset, Direction.IN, Failure.CONTENT_MISMATCH, "hash mismatch")
                handle(node, node.record(failure))
                continue
            done = TransferCompleted(Direction.IN, 10, 10, verified=True, meta={"hash": asset, "size": 10})
            handle(node, node.record(Event.of(done, peer=sender, hash=asset)))


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
            node.record(Event.of(LocalAssetSeen(), hash=asset))
    run_session(a, b, choices, fail_budget)
    union = a_assets | b_assets
    assert set(a.state.local) == union
    assert set(b.state.local) == union
    assert a.state.owed(b.name) == set() and b.state.owed(a.name) == set()
    # echo suppression: nothing B received from A was ever sent back to A
    sent_back = {
        e.hash
        for e in b.journal
        if e.kind == EventKind.TRANSFER_COMPLETED and e.data["direction"] == "out" and e.peer == a.name
    }
    assert not (sent_back & a_assets)
    # each asset was received once, and asked for once per failure plus once
    for node in (a, b):
        received = [e.hash for e in node.journal if e.kind is EventKind.ASSET_RECEIVED]
        assert len(received) == len(set(received))
        failed = sum(1 for e in node.journal if e.kind is EventKind.TRANSFER_FAILED)
        asked = sum(len(peers) for peers in node.requested().values())
        assert asked == len(received) + failed
    # and the journals alone rebuild the same states
    assert fold(a.journal) == a.state
    assert fold(b.journal) == b.state
