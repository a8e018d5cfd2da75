"""The machine's decisions, case by case: whom to ask for what, when to ask again, what heals on replay."""

from __future__ import annotations

from collections import Counter

from cansync.core.commands import ApplyMetadata, RecordSuperseded, StoreAsset
from cansync.core.events import (
    AssetReceived,
    Direction,
    Event,
    EventKind,
    HashesAdvertised,
    LocalAssetSeen,
    MetadataChanged,
    PeerAuthenticated,
    PeerDisconnected,
    TransferCheckpointed,
    TransferCompleted,
    TransferStarted,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.machine import LOCAL_RETRY_MS, MAX_FAILURES_PER_PEER, REQUEST_WINDOW, fold
from tests.core.node import Node

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32
ASSET = "01" * 32


def asset(n: int) -> str:
    return f"{n:064x}"


def node_with_peers(*peers: str, now: int = 1_000) -> Node:
    node = Node("00" * 32, now=now)
    for peer in peers:
        node.record(Event.of(PeerAuthenticated(), peer=peer))
    return node


def advertise(node: Node, peer: str, *hashes: str) -> None:
    node.record(Event.of(HashesAdvertised(tuple(hashes)), peer=peer))


def complete(node: Node, peer: str, digest: str) -> list:
    done = TransferCompleted(Direction.IN, 5, 5, verified=True, meta={"hash": digest, "size": 5})
    return node.record(Event.of(done, peer=peer, hash=digest))


def test_an_asset_two_peers_advertise_is_asked_of_one():
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    advertise(node, B, ASSET)
    assert node.requested() == {ASSET: [A]}


def test_an_asset_verified_and_waiting_for_its_push_is_not_asked_for_again():
    """The mesh bug: a third peer advertised the asset while its verified copy was being pushed."""
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    commands = complete(node, A, ASSET)
    assert commands == [StoreAsset(A, ASSET, {"hash": ASSET, "size": 5})]
    advertise(node, B, ASSET)
    assert node.requested() == {ASSET: [A]}
    node.record(Event.of(AssetReceived(), peer=A, hash=ASSET))
    advertise(node, B, ASSET)
    assert node.requested() == {ASSET: [A]}  # received: never asked for again


def test_a_push_our_store_refused_releases_the_asset_to_another_peer():
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    advertise(node, B, ASSET)
    complete(node, A, ASSET)
    node.record(failed_transfer(A, ASSET, Direction.IN, Failure.STORE_REFUSED, "bad record"))
    assert node.requested() == {ASSET: [A, B]}
    assert node.state.resume_offset(ASSET) == 0  # refused bytes are thrown away


def test_a_push_that_failed_on_our_side_is_retried_later_from_the_same_staged_bytes():
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    complete(node, A, ASSET)
    node.record(failed_transfer(A, ASSET, Direction.IN, Failure.STORE_UNAVAILABLE, "store down"))
    advertise(node, B, ASSET)
    assert node.requested() == {ASSET: [A]}  # still claimed: the verified copy waits
    assert node.tick() == []
    assert node.now is not None
    node.now += LOCAL_RETRY_MS
    assert node.tick() == [StoreAsset(A, ASSET, {"hash": ASSET, "size": 5})]


def test_a_cut_link_asks_another_holder_at_once_and_resumes_at_the_checkpoint():
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    advertise(node, B, ASSET)
    node.record(Event.of(TransferStarted(Direction.IN, 0, 100), peer=A, hash=ASSET))
    node.record(Event.of(TransferCheckpointed(Direction.IN, 40), peer=A, hash=ASSET))
    node.record(Event.of(PeerDisconnected("gone"), peer=A))
    assert node.requested() == {ASSET: [A, B]}
    last = [e for e in node.journal if e.kind is EventKind.TRANSFER_REQUESTED][-1]
    assert last.data["offset"] == 40


def test_a_failure_of_ours_pauses_the_asset_before_it_is_asked_for_again():
    node = node_with_peers(A)
    advertise(node, A, ASSET)
    node.record(failed_transfer(A, ASSET, Direction.IN, Failure.STAGING_FAILED, "disk full"))
    assert node.requested() == {ASSET: [A]}
    assert node.state.peer(A).incoming[ASSET].failures == 0  # not the peer's fault
    node.tick()
    assert node.requested() == {ASSET: [A]}
    assert node.now is not None
    node.now += LOCAL_RETRY_MS
    node.tick()
    assert node.requested() == {ASSET: [A, A]}


def test_a_peer_that_sends_wrong_bytes_three_times_is_not_asked_again_in_that_session():
    node = node_with_peers(A, B)
    advertise(node, A, ASSET)
    for _ in range(MAX_FAILURES_PER_PEER):
        node.record(failed_transfer(A, ASSET, Direction.IN, Failure.CONTENT_MISMATCH, "wrong bytes"))
    assert node.requested() == {ASSET: [A] * MAX_FAILURES_PER_PEER}
    advertise(node, B, ASSET)
    assert node.requested()[ASSET][-1] == B
    node.record(failed_transfer(B, ASSET, Direction.IN, Failure.LINK_LOST, "cut"))
    # B was cut off, not caught lying: asked again; A has used its strikes
    assert node.requested()[ASSET][-1] == B
    node.record(Event.of(PeerDisconnected("gone"), peer=B))
    assert node.requested()[ASSET][-1] == B  # A is still out
    node.record(Event.of(PeerAuthenticated(), peer=A))  # a new session: its strikes start again
    assert node.requested()[ASSET][-1] == A


def test_requests_spread_over_the_peers_that_hold_the_assets():
    node = node_with_peers(A, B, C)
    hashes = [asset(n) for n in range(1, 301)]
    for peer in (A, B, C):
        advertise(node, peer, *hashes)
    asked = Counter(peers[0] for peers in node.requested().values())
    assert sum(asked.values()) == 300
    assert max(asked.values()) <= 2 * (300 / 3), asked
    assert min(asked.values()) > 0


def test_no_more_than_a_window_of_requests_is_in_flight_to_one_peer():
    node = node_with_peers(A)
    hashes = [asset(n) for n in range(1, REQUEST_WINDOW + 101)]
    advertise(node, A, *hashes)
    assert len(node.requested()) == REQUEST_WINDOW
    first = next(iter(node.requested()))
    complete(node, A, first)
    node.record(Event.of(AssetReceived(), peer=A, hash=first))
    assert len(node.requested()) == REQUEST_WINDOW + 1  # one landed, the next one is asked for


def test_an_ordinary_edit_is_no_conflict_and_a_late_loser_is_journaled():
    node = node_with_peers(A)
    node.record(Event.of(LocalAssetSeen(), hash=ASSET))
    first = node.record(Event.of(MetadataChanged(10, A, ("x",)), peer=A, hash=ASSET))
    second = node.record(Event.of(MetadataChanged(20, A, ("y",)), peer=A, hash=ASSET))
    assert not [c for c in first + second if isinstance(c, RecordSuperseded)]
    assert not [e for e in node.journal if e.kind is EventKind.METADATA_SUPERSEDED]
    assert [c for c in second if isinstance(c, ApplyMetadata)]
    node.record(Event.of(MetadataChanged(15, B, ("z",)), peer=A, hash=ASSET))  # arrived after a later one
    losses = [e for e in node.journal if e.kind is EventKind.METADATA_SUPERSEDED]
    assert len(losses) == 1
    assert losses[0].data["loser"]["tags"] == ["z"] and losses[0].data["winner"]["tags"] == ["y"]


def test_metadata_that_arrived_before_its_asset_is_applied_once_the_asset_is_stored():
    node = node_with_peers(A)
    assert node.record(Event.of(MetadataChanged(10, A, ("x",)), peer=A, hash=ASSET)) == []
    advertise(node, A, ASSET)
    complete(node, A, ASSET)
    commands = node.record(Event.of(AssetReceived(), peer=A, hash=ASSET))
    assert [c.value.tags for c in commands if isinstance(c, ApplyMetadata)] == [("x",)]


def test_ids_that_are_not_asset_ids_are_ignored_so_an_old_journal_heals_on_replay():
    bad = "not-a-hash"
    upper = "AB" * 32
    events = [
        Event.of(PeerAuthenticated(), peer=A),
        Event.of(HashesAdvertised((bad, upper, ASSET)), peer=A),
        Event(EventKind.TRANSFER_REQUESTED, peer=A, hash=bad, data={"direction": "in", "offset": 0}),
        Event(EventKind.LOCAL_ASSET_SEEN, hash=upper, data={}),
    ]
    journal = [e.journaled(i + 1, i + 1) for i, e in enumerate(events)]
    state = fold(journal)
    assert state.holdings(A) == {ASSET}
    assert not state.local
    assert bad not in state.peer(A).incoming
    node = node_with_peers(A)
    advertise(node, A, bad, upper, ASSET)
    assert node.requested() == {ASSET: [A]}  # the live machine asks only for the real asset


def reconciled(node: Node, peer: str, lacks: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> list:
    from cansync.core.events import PeerReconciled

    return node.record(Event.of(PeerReconciled(lacks, extra, watermark=7), peer=peer))


def test_after_a_reconciliation_the_peer_holds_our_assets_but_what_it_lacks_and_what_came_after():
    node = node_with_peers(A)
    ours = [asset(n) for n in range(1, 6)]
    for digest in ours:
        node.record(Event.of(LocalAssetSeen(), hash=digest))
    theirs = asset(99)
    reconciled(node, A, lacks=(ours[0],), extra=(theirs,))
    state = node.state
    assert state.owed(A) == {ours[0]}
    assert state.wanted(A) == {theirs}
    assert node.requested() == {theirs: [A]}  # what it holds extra is asked for at once
    assert state.peer(A).their_watermark == 7
    later = asset(50)
    commands = node.record(Event.of(LocalAssetSeen(), hash=later))
    assert any(getattr(c, "peer", None) == A for c in commands)  # a new asset of ours: offered to it
    assert state.owed(A) == {ours[0], later}
    node.record(Event.of(HashesAdvertised((later, ours[0])), peer=A))  # it says it has them now
    assert state.owed(A) == set()
    assert state.holdings(A) == set(ours) | {later, theirs}


def test_a_reconciled_peer_keeps_only_its_differences():
    node = node_with_peers(A)
    for n in range(1, 2001):
        node.record(Event.of(LocalAssetSeen(), hash=asset(n)))
    reconciled(node, A, lacks=(asset(1),), extra=())
    peer = node.state.peer(A)
    assert (len(peer.known), len(peer.lacks), len(peer.extra)) == (0, 1, 0)
    assert node.state.describe()["peers"][A]["has"] == 1999
