"""Properties of the fold: order, duplicates, replays and snapshots never change the derived state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core.commands import Advertise, RequestAsset
from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState, fold
from cansync.core.peer_state import LinkStatus
from tests.core.strategies import ASSETS, PEERS, interleaving, journal, merge


def canonical(streams: dict[str | None, list[Event]]) -> list[Event]:
    return sorted((e for events in streams.values() for e in events), key=lambda e: e.seq)


@settings(max_examples=150)
@given(data=st.data(), streams=journal())
def test_any_interleaving_that_keeps_each_peers_order_folds_to_the_same_state(data, streams):
    reference = fold(canonical(streams))
    order = data.draw(interleaving({k: len(v) for k, v in streams.items()}))
    assert fold(merge(streams, order)) == reference


@settings(max_examples=120)
@given(streams=journal())
def test_replaying_a_journal_twice_changes_nothing(streams):
    events = canonical(streams)
    once = fold(events)
    twice = fold(events, fold(events))
    assert twice == once
    assert twice.apply_all(events) == []  # a second replay implies nothing new either


@settings(max_examples=120)
@given(data=st.data(), streams=journal())
def test_snapshot_plus_tail_equals_folding_from_scratch(data, streams):
    events = canonical(streams)
    cut = data.draw(st.integers(0, len(events)))
    head = fold(events[:cut])
    restored = SyncState.from_snapshot(head.to_snapshot())
    assert restored == head
    assert fold(events[cut:], restored) == fold(events)


@settings(max_examples=120)
@given(data=st.data(), streams=journal())
def test_duplicated_events_change_nothing(data, streams):
    events = canonical(streams)
    with_duplicates = list(events)
    for _ in range(data.draw(st.integers(0, 10))):
        if not events:
            break
        source = data.draw(st.integers(0, len(events) - 1))
        # a duplicate shows up after its original, like a retried delivery
        original_at = with_duplicates.index(events[source])
        insert_at = data.draw(st.integers(original_at + 1, len(with_duplicates)))
        with_duplicates.insert(insert_at, events[source])
    assert fold(with_duplicates) == fold(events)


@settings(max_examples=150)
@given(streams=journal())
def test_what_came_from_a_peer_is_never_owed_or_advertised_to_it(streams):
    state = SyncState()
    for event in canonical(streams):
        for command in state.apply(event):
            if isinstance(command, Advertise):
                for asset in command.hashes:
                    assert asset not in state.peer(command.peer).received_from
        for peer in PEERS:
            assert not (state.owed(peer) & state.never_echo(peer))


@settings(max_examples=150)
@given(streams=journal())
def test_a_plan_asks_for_an_asset_once_and_only_of_a_peer_in_session_that_holds_it(streams):
    state = SyncState()
    planned_seq = 10_000  # after every seq of the generated journal
    for event in canonical(streams):
        state.apply(event)
        requests = state.plan(now_ms=10**12)
        assert len({r.hash for r in requests}) == len(requests)
        for request in requests:
            assert request.hash is not None and request.peer is not None
            assert request.hash not in state.local
            assert not state.claimed(request.hash)
            assert state.holds(state.peer(request.peer), request.hash)
            assert state.peer(request.peer).link is LinkStatus.AUTHENTICATED
        for request in requests:
            planned_seq += 1
            commands = state.apply(request.journaled(planned_seq, 10**12))
            assert commands == [RequestAsset(request.peer, request.hash, request.data["offset"], planned_seq)]
            assert state.claimed(request.hash)


def test_resume_offset_is_the_furthest_checkpoint_unless_discarded():
    peer = PEERS[0]
    asset = ASSETS[0]
    state = SyncState()
    seq = iter(range(1, 100))

    def emit(kind, **data):
        return state.apply(Event(kind, peer=peer, hash=asset, data=data).journaled(next(seq), 0))

    emit(EventKind.TRANSFER_REQUESTED, direction="in", offset=0)
    emit(EventKind.TRANSFER_STARTED, direction="in", offset=0, size=10_000)
    emit(EventKind.TRANSFER_CHECKPOINTED, direction="in", offset=4096)
    state.apply(Event(EventKind.PEER_DISCONNECTED, peer=peer).journaled(next(seq), 0))
    assert state.resume_offset(asset) == 4096
    emit(EventKind.TRANSFER_FAILED, direction="in", discard=True)
    assert state.resume_offset(asset) == 0


@settings(max_examples=120)
@given(streams=journal())
def test_a_quiet_replay_lands_on_the_same_state_as_acting_on_every_event(streams):
    events = canonical(streams)
    acting = SyncState()
    acting.apply_all(events)
    assert fold(events) == acting


@settings(max_examples=200)
@given(data=st.data(), streams=journal())
def test_the_claim_counts_kept_along_the_fold_equal_counting_afresh(data, streams):
    """The fold keeps per-asset counts of transfers in flight and pushes due as it goes (fast paths for
    the usual transitions); a snapshot load counts them from the transfers. Both must agree, always."""
    events = merge(streams, data.draw(interleaving({k: len(v) for k, v in streams.items()})))
    state = SyncState()
    for event in events:
        state.apply(event)
        recounted = SyncState.from_snapshot(state.to_snapshot())
        assert state._active == recounted._active
        assert state._pushing == recounted._pushing
        assert {p: s.active_in for p, s in state.peers.items()} == {p: s.active_in for p, s in recounted.peers.items()}
