"""The verdict table of failed transfers: who is charged, what is thrown away, what waits before a retry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cansync.core.events import Direction, Event, EventKind, Fault, TransferFailed, TransferRequested
from cansync.core.faults import Failure, Verdict, failed_transfer, verdict
from cansync.core.machine import LOCAL_RETRY_MS, fold
from tests.core.strategies import ASSETS, PEERS

PEER = PEERS[0]
ASSET = ASSETS[0]

# What each failure says about whom: the only failures a peer answers for are its bytes and its answers.
CHARGED_TO_THE_PEER = {
    Failure.CONTENT_MISMATCH,
    Failure.OVERRUN,
    Failure.MALFORMED_STREAM,
    Failure.UNAVAILABLE,
    Failure.STORE_REFUSED,
}
LINK_FAILURES = {Failure.STALLED, Failure.LINK_LOST, Failure.PEER_TROUBLE}
OUR_FAILURES = {
    Failure.STAGING_FAILED,
    Failure.STAGING_LOST,
    Failure.STORE_UNAVAILABLE,
    Failure.SOURCE_UNAVAILABLE,
}
# The staged bytes are wrong (or gone): the next request starts at byte 0.
DISCARDS = {Failure.CONTENT_MISMATCH, Failure.OVERRUN, Failure.STORE_REFUSED, Failure.STAGING_LOST}
# Asking again at once would fail the same way.
DEFERS = {
    Failure.UNAVAILABLE,
    Failure.PEER_TROUBLE,
    Failure.STAGING_FAILED,
    Failure.STORE_UNAVAILABLE,
    Failure.SOURCE_UNAVAILABLE,
}
# Only the push into our store failed: the bytes were verified.
STORE_STAGE = {Failure.STORE_UNAVAILABLE, Failure.STORE_REFUSED}


def test_the_expected_sets_partition_every_failure() -> None:
    # guards the table below: a new Failure must be placed in exactly one of the three fault classes
    assert CHARGED_TO_THE_PEER | LINK_FAILURES | OUR_FAILURES == set(Failure)
    assert not CHARGED_TO_THE_PEER & LINK_FAILURES
    assert not CHARGED_TO_THE_PEER & OUR_FAILURES
    assert not LINK_FAILURES & OUR_FAILURES


@pytest.mark.parametrize("failure", list(Failure))
def test_every_failure_has_a_verdict(failure: Failure) -> None:
    judged = verdict(failure)
    assert isinstance(judged, Verdict)
    assert isinstance(judged.fault, Fault)
    assert judged.stage in ("transfer", "store")


@pytest.mark.parametrize("failure", list(Failure))
def test_a_peer_is_charged_only_for_its_bytes_and_its_answers(failure: Failure) -> None:
    assert (verdict(failure).fault is Fault.PEER) == (failure in CHARGED_TO_THE_PEER)


@pytest.mark.parametrize("failure", sorted(LINK_FAILURES))
def test_a_link_failure_is_the_links(failure: Failure) -> None:
    judged = verdict(failure)
    assert judged.fault is Fault.LINK
    assert not judged.discard  # a cut link leaves good staged bytes: resume from them
    # and ask again at once; but a peer that said its store failed is asked again after a pause
    assert judged.defer is (failure is Failure.PEER_TROUBLE)


@pytest.mark.parametrize("failure", sorted(OUR_FAILURES))
def test_a_failure_of_our_own_is_ours(failure: Failure) -> None:
    assert verdict(failure).fault is Fault.OURS


@pytest.mark.parametrize("failure", list(Failure))
def test_which_failures_discard_the_staged_bytes(failure: Failure) -> None:
    assert verdict(failure).discard == (failure in DISCARDS)


@pytest.mark.parametrize("failure", list(Failure))
def test_which_failures_defer_the_next_request(failure: Failure) -> None:
    assert verdict(failure).defer == (failure in DEFERS)


@pytest.mark.parametrize("failure", list(Failure))
def test_which_failures_are_of_the_push_into_our_store(failure: Failure) -> None:
    assert verdict(failure).stage == ("store" if failure in STORE_STAGE else "transfer")


@given(
    failure=st.sampled_from(list(Failure)),
    direction=st.sampled_from(list(Direction)),
    reason=st.text(max_size=50),
    peer=st.sampled_from(PEERS),
    asset=st.sampled_from(ASSETS),
)
def test_failed_transfer_builds_the_event_of_its_verdict(
    failure: Failure, direction: Direction, reason: str, peer: str, asset: str
) -> None:
    event = failed_transfer(peer, asset, direction, failure, reason)
    judged = verdict(failure)
    assert event.kind is EventKind.TRANSFER_FAILED
    assert (event.peer, event.hash) == (peer, asset)
    assert event.data["direction"] == direction.value
    assert event.data["reason"] == reason
    assert event.data["fault"] == judged.fault.value
    assert event.data["discard"] == judged.discard
    assert event.data.get("stage", "transfer") == judged.stage
    assert event.data["local_fault"] == (judged.fault is Fault.OURS)


@pytest.mark.parametrize("failure", list(Failure))
def test_the_journaled_event_reads_back_as_its_verdict(failure: Failure) -> None:
    """What the machine reads (`event.payload`) must be what the table decided."""
    payload = failed_transfer(PEER, ASSET, Direction.IN, failure, "why").payload
    judged = verdict(failure)
    assert payload == TransferFailed(Direction.IN, "why", judged.fault, judged.discard, judged.stage, judged.defer)


def _fold_failure(failure: Failure) -> tuple[int, int, bool]:
    """An incoming request then its failure, folded: (strikes, defer_until, discarded)."""
    requested = Event.of(TransferRequested(Direction.IN, 100), peer=PEER, hash=ASSET).journaled(1, 1_000)
    failed = failed_transfer(PEER, ASSET, Direction.IN, failure, "why").journaled(2, 2_000)
    transfer = fold([requested, failed]).peer(PEER).incoming[ASSET]
    return transfer.failures, transfer.defer_until, transfer.discarded


@pytest.mark.parametrize("failure", list(Failure))
def test_the_machine_charges_a_strike_only_for_the_peers_faults(failure: Failure) -> None:
    strikes, _, _ = _fold_failure(failure)
    assert strikes == (1 if failure in CHARGED_TO_THE_PEER else 0)


@pytest.mark.parametrize("failure", list(Failure))
def test_the_machine_pauses_the_asset_only_for_the_failures_that_defer(failure: Failure) -> None:
    _, defer_until, discarded = _fold_failure(failure)
    assert defer_until == (2_000 + LOCAL_RETRY_MS if failure in DEFERS else 0)
    assert discarded == (failure in DISCARDS)
