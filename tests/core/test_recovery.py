"""A transfer cut off by a crash after our store took the asset: recorded as received only on the facts."""

from __future__ import annotations

import hashlib

from cansync.core.events import (
    AssetReceived,
    Direction,
    Event,
    EventKind,
    HashesAdvertised,
    PeerAuthenticated,
    PeerDisconnected,
    TransferCheckpointed,
    TransferCompleted,
    TransferStarted,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.recovery import CutOffTransfer, cut_off_transfers, receipt_after_restart
from tests.core.node import Node

A, B = "aa" * 32, "bb" * 32
CONTENT = b"x" * 3_000_000
ASSET = hashlib.sha256(CONTENT).hexdigest()
SIZE = len(CONTENT)


def streaming(node: Node, peer: str, *, offset: int = 0, checkpoint: int = SIZE // 2) -> None:
    """The peer is asked for ASSET and sends part of it (asked at `offset`, checkpointed at `checkpoint`)."""
    node.record(Event.of(HashesAdvertised((ASSET,)), peer=peer))
    node.record(Event.of(TransferStarted(Direction.IN, offset, SIZE), peer=peer, hash=ASSET))
    node.record(Event.of(TransferCheckpointed(Direction.IN, checkpoint), peer=peer, hash=ASSET))


def crashed_node(*peers: str) -> Node:
    node = Node("00" * 32)
    for peer in peers:
        node.record(Event.of(PeerAuthenticated(), peer=peer))
    return node


def restart(node: Node, *peers: str) -> None:
    """What the agent journals first after a crash: the links it had open are closed."""
    node.record(*(Event.of(PeerDisconnected("agent restarted"), peer=peer) for peer in peers))


def test_a_whole_verified_copy_our_store_holds_is_recorded_as_received_from_its_sender():
    node = crashed_node(A)
    streaming(node, A)
    restart(node, A)
    [cut] = cut_off_transfers(node.state)
    assert cut == CutOffTransfer(A, ASSET, SIZE)
    events = receipt_after_restart(cut, node.state, staged_size=SIZE, staged_digest=ASSET, store_holds=True)
    assert [e.kind for e in events] == [EventKind.TRANSFER_COMPLETED, EventKind.ASSET_RECEIVED]
    assert all(e.peer == A and e.hash == ASSET for e in events)
    done = events[0].payload
    assert done.verified and done.stored and done.direction is Direction.IN
    node.record(*events)
    assert ASSET in node.state.local
    assert ASSET in node.state.peers[A].received_from
    assert node.state.peers[A].bytes_in == SIZE
    assert ASSET not in node.state.peers[A].incoming
    assert ASSET not in node.state.never_echo(B) and ASSET in node.state.never_echo(A)
    assert cut_off_transfers(node.state) == []  # settled: a second restart finds nothing to do


def test_no_receipt_unless_the_store_holds_it_and_the_staged_copy_is_whole_and_right():
    node = crashed_node(A)
    streaming(node, A)
    restart(node, A)
    [cut] = cut_off_transfers(node.state)
    state = node.state
    assert receipt_after_restart(cut, state, staged_size=SIZE, staged_digest=ASSET, store_holds=False) == []
    assert receipt_after_restart(cut, state, staged_size=SIZE - 1, staged_digest=ASSET, store_holds=True) == []
    assert receipt_after_restart(cut, state, staged_size=SIZE, staged_digest="ff" * 32, store_holds=True) == []
    assert receipt_after_restart(cut, state, staged_size=0, staged_digest=None, store_holds=True) == []


def test_staging_shared_by_two_senders_is_credited_to_the_one_that_sent_last():
    node = crashed_node(A, B)
    streaming(node, A)
    node.record(failed_transfer(A, ASSET, Direction.IN, Failure.LINK_LOST, "stream reset"))
    streaming(node, B, offset=SIZE // 2, checkpoint=SIZE - 1000)
    restart(node, A, B)
    assert cut_off_transfers(node.state) == [CutOffTransfer(B, ASSET, SIZE)]


def test_a_transfer_that_ended_otherwise_or_an_asset_already_ours_is_left_alone():
    node = crashed_node(A)
    streaming(node, A)
    node.record(failed_transfer(A, ASSET, Direction.IN, Failure.CONTENT_MISMATCH, "wrong bytes"))
    assert cut_off_transfers(node.state) == []  # its outcome is journaled

    node = crashed_node(A)
    streaming(node, A)
    done = TransferCompleted(Direction.IN, SIZE, SIZE, verified=True, meta={"hash": ASSET}, stored=True)
    node.record(Event.of(done, peer=A, hash=ASSET), Event.of(AssetReceived(), peer=A, hash=ASSET))
    assert cut_off_transfers(node.state) == []  # recorded before the crash

    node = crashed_node(A)
    streaming(node, A)
    [cut] = cut_off_transfers(node.state)
    node.record(Event.of(AssetReceived(), peer=A, hash=ASSET))  # settled between the look and the decision
    assert receipt_after_restart(cut, node.state, staged_size=SIZE, staged_digest=ASSET, store_holds=True) == []


def test_a_transfer_whose_size_never_came_is_not_a_candidate():
    node = crashed_node(A)
    node.record(Event.of(HashesAdvertised((ASSET,)), peer=A))
    node.record(Event.of(TransferStarted(Direction.IN, 0, None), peer=A, hash=ASSET))
    restart(node, A)
    assert cut_off_transfers(node.state) == []
