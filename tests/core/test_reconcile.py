"""Set reconciliation (`core.reconcile`): both sides learn exactly the difference, in few rounds, and the
sorted set's fingerprints, bounds and positions agree with their definitions."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cansync.core.reconcile import (
    DEFAULT_BRANCHING,
    DEFAULT_ID_LIST_THRESHOLD,
    MAX_IDS_PER_MESSAGE,
    DigestSet,
    PeerReconcileError,
    RangeFingerprint,
    RangeIds,
    ReconcileMessage,
    Reconciler,
    ReconcilerMisuse,
    bound_below,
    fingerprint_of,
    is_bound,
    separating_bound,
)

MESSAGE_CAP = 10_000  # an exchange longer than this is a bug, not a slow run

random_ids = st.binary(min_size=32, max_size=32)
# ids sharing long prefixes (small integers) and the extremes of the key space: hard cases for bounds
clustered_ids = st.one_of(
    st.integers(min_value=0, max_value=5_000).map(lambda n: n.to_bytes(32, "big")),
    st.integers(min_value=0, max_value=255).map(lambda n: b"\xff" * 31 + bytes((n,))),
    st.integers(min_value=0, max_value=255).map(lambda n: bytes((n,)) + b"\x00" * 31),
)
any_ids = st.one_of(random_ids, clustered_ids)


def numbered_ids(seed: int, first: int, count: int) -> list[bytes]:
    """`count` distinct pseudo-random ids, cheap to make by the hundred thousand."""
    prefix = seed.to_bytes(8, "big")
    return [hashlib.sha256(prefix + n.to_bytes(8, "big")).digest() for n in range(first, first + count)]


@dataclass
class Transcript:
    initiator: Reconciler
    responder: Reconciler
    messages: list[ReconcileMessage] = field(default_factory=list)


def exchange(ids_a: set[bytes], ids_b: set[bytes], **knobs: int) -> Transcript:
    """Run an exchange to its end, A initiating; fail if it does not end."""
    transcript = Transcript(Reconciler(DigestSet(ids_a), **knobs), Reconciler(DigestSet(ids_b), **knobs))
    message: ReconcileMessage | None = transcript.initiator.initiate()
    receiver, sender = transcript.responder, transcript.initiator
    while message is not None:
        transcript.messages.append(message)
        assert len(transcript.messages) < MESSAGE_CAP, "the exchange does not end"
        message = receiver.respond(message)
        receiver, sender = sender, receiver
    return transcript


def assert_learned_the_difference(transcript: Transcript, ids_a: set[bytes], ids_b: set[bytes]) -> None:
    assert transcript.initiator.finished and transcript.responder.finished
    assert transcript.initiator.have_not == ids_b - ids_a
    assert transcript.initiator.they_lack == ids_a - ids_b
    assert transcript.responder.have_not == ids_a - ids_b
    assert transcript.responder.they_lack == ids_b - ids_a


def message_bound(largest: int, ids_to_carry: int, branching: int, threshold: int, max_ids: int) -> int:
    """Messages an exchange may take: two per level of splitting, four to open and close, and two per
    message-full of ids that has to wait for a later message."""
    levels = math.ceil(math.log(max(largest, 1) / max(threshold, 1), branching)) if largest > threshold else 0
    return 2 * levels + 4 + 2 * math.ceil(ids_to_carry / max_ids)


def assert_message_is_well_formed(message: ReconcileMessage, max_ranges: int, max_ids: int) -> None:
    assert len(message.ranges) <= max_ranges and message.id_count <= max_ids
    previous_upper: bytes | None = b""
    for item in message.ranges:
        assert previous_upper is not None and previous_upper <= item.lower
        assert is_bound(item.lower) and (item.upper is None or is_bound(item.upper))
        assert bound_below(item.lower, item.upper)
        if isinstance(item, RangeIds):
            assert list(item.ids) == sorted(set(item.ids))
            assert all(item.lower <= digest and bound_below(digest, item.upper) for digest in item.ids)
        previous_upper = item.upper
    for ids in (message.ids_you_lack, message.ids_i_lack):
        assert list(ids) == sorted(set(ids))


# ---------------------------------------------------------------------------------------------- the exchange


@settings(max_examples=300, deadline=None)
@given(
    common=st.sets(any_ids, max_size=300),
    only_a=st.sets(any_ids, max_size=60),
    only_b=st.sets(any_ids, max_size=60),
)
def test_any_two_sets_learn_exactly_the_difference(common, only_a, only_b):
    ids_a, ids_b = common | only_a, (common | only_b) - only_a
    transcript = exchange(ids_a, ids_b)
    assert_learned_the_difference(transcript, ids_a, ids_b)
    difference = len(ids_a ^ ids_b)
    bound = message_bound(
        max(len(ids_a), len(ids_b)), difference, DEFAULT_BRANCHING, DEFAULT_ID_LIST_THRESHOLD, MAX_IDS_PER_MESSAGE
    )
    assert len(transcript.messages) <= bound


@pytest.mark.parametrize(
    ("name", "ids_a", "ids_b"),
    [
        ("both empty", set(), set()),
        ("initiator empty", set(), set(numbered_ids(1, 0, 500))),
        ("responder empty", set(numbered_ids(1, 0, 500)), set()),
        ("disjoint", set(numbered_ids(1, 0, 400)), set(numbered_ids(2, 0, 300))),
        ("initiator a subset", set(numbered_ids(1, 0, 300)), set(numbered_ids(1, 0, 1_000))),
        ("responder a subset", set(numbered_ids(1, 0, 1_000)), set(numbered_ids(1, 500, 100))),
        ("one id each, different", {b"\x01" * 32}, {b"\x02" * 32}),
        ("the extremes of the key space", {b"\x00" * 32, b"\xff" * 32}, {b"\xff" * 32}),
    ],
)
def test_the_shapes_of_difference_all_end_exact(name, ids_a, ids_b):
    assert_learned_the_difference(exchange(ids_a, ids_b), ids_a, ids_b)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    common=st.integers(min_value=0, max_value=100_000),
    difference=st.integers(min_value=1, max_value=1_000),
    share_for_a=st.floats(min_value=0, max_value=1),
)
@example(seed=14, common=99_500, difference=1_000, share_for_a=0.5)
@example(seed=15, common=100_000, difference=1, share_for_a=0.0)
def test_small_differences_among_many_ids_cost_rounds_by_log_n(seed, common, difference, share_for_a):
    only_a = round(difference * share_for_a)
    ids_common = numbered_ids(seed, 0, common)
    ids_a = set(ids_common + numbered_ids(seed, common, only_a))
    ids_b = set(ids_common + numbered_ids(seed, common + only_a, difference - only_a))
    transcript = exchange(ids_a, ids_b)
    assert_learned_the_difference(transcript, ids_a, ids_b)
    largest = max(len(ids_a), len(ids_b))
    bound = message_bound(largest, difference, DEFAULT_BRANCHING, DEFAULT_ID_LIST_THRESHOLD, MAX_IDS_PER_MESSAGE)
    assert len(transcript.messages) <= bound
    # what is said follows the difference: a listed or split range differs, so holds one of the differing
    # ids, and such ranges are disjoint within a level; a list holds at most a threshold of ids
    items = [item for message in transcript.messages for item in message.ranges]
    listed = sum(len(item.ids) for item in items if isinstance(item, RangeIds))
    fingerprints = sum(1 for item in items if isinstance(item, RangeFingerprint))
    assert listed <= DEFAULT_ID_LIST_THRESHOLD * (difference + 1)
    assert fingerprints <= 1 + DEFAULT_BRANCHING * difference * len(transcript.messages)


@settings(max_examples=100, deadline=None)
@given(ids=st.sets(any_ids, min_size=DEFAULT_ID_LIST_THRESHOLD + 1, max_size=400))
def test_equal_sets_take_one_round_trip_carrying_one_fingerprint(ids):
    transcript = exchange(ids, set(ids))
    opening, answer = transcript.messages
    assert len(opening.ranges) == 1 and isinstance(opening.ranges[0], RangeFingerprint)
    assert (opening.ids_you_lack, opening.ids_i_lack, opening.more) == ((), (), False)
    assert answer == ReconcileMessage()
    assert_learned_the_difference(transcript, ids, ids)


@settings(max_examples=50, deadline=None)
@given(ids=st.sets(any_ids, max_size=DEFAULT_ID_LIST_THRESHOLD))
def test_equal_small_sets_take_one_round_trip_listing_their_ids(ids):
    transcript = exchange(ids, set(ids))
    opening, answer = transcript.messages
    assert opening.ranges == (RangeIds(b"", None, tuple(sorted(ids))),)
    assert answer == ReconcileMessage()


def test_two_hundred_thousand_equal_ids_cost_one_fingerprint():
    ids = set(numbered_ids(3, 0, 200_000))
    transcript = exchange(ids, set(ids))
    assert [len(m.ranges) for m in transcript.messages] == [1, 0]


@settings(max_examples=150, deadline=None)
@given(
    common=st.sets(any_ids, max_size=200),
    only_a=st.sets(any_ids, max_size=80),
    only_b=st.sets(any_ids, max_size=80),
    branching=st.integers(min_value=2, max_value=8),
    threshold=st.integers(min_value=1, max_value=8),
    max_ranges=st.integers(min_value=8, max_value=20),
    extra_ids=st.integers(min_value=0, max_value=12),
)
def test_messages_stay_within_the_limits_and_the_rest_waits(
    common, only_a, only_b, branching, threshold, max_ranges, extra_ids
):
    ids_a, ids_b = common | only_a, (common | only_b) - only_a
    max_ids = threshold + extra_ids + 1
    knobs = {"branching": branching, "id_list_threshold": threshold, "max_ranges": max_ranges, "max_ids": max_ids}
    transcript = exchange(ids_a, ids_b, **knobs)
    assert_learned_the_difference(transcript, ids_a, ids_b)
    for message in transcript.messages:
        assert_message_is_well_formed(message, max_ranges, max_ids)
    # what waited for a later message still arrived: at most two messages per message-full of ids,
    # and two per message-full of ranges, beyond the unlimited bound
    ids_carried = sum(m.id_count for m in transcript.messages)
    ranges_carried = sum(len(m.ranges) for m in transcript.messages)
    bound = message_bound(max(len(ids_a), len(ids_b)), ids_carried, branching, threshold, max_ids)
    assert len(transcript.messages) <= bound + 2 * math.ceil(ranges_carried / max_ranges)


@settings(max_examples=100, deadline=None)
@given(common=st.sets(any_ids, max_size=200), only_a=st.sets(any_ids, max_size=40))
def test_every_message_of_an_exchange_is_well_formed(common, only_a):
    ids_b = common - only_a
    transcript = exchange(common | only_a, ids_b)
    for message in transcript.messages:
        assert_message_is_well_formed(message, 32_768, MAX_IDS_PER_MESSAGE)


# ---------------------------------------------------------------------------------------------- misuse and lies


def test_initiating_twice_is_our_own_mistake():
    reconciler = Reconciler(DigestSet([]))
    reconciler.initiate()
    with pytest.raises(ReconcilerMisuse):
        reconciler.initiate()


def test_a_message_after_the_end_is_refused():
    transcript = exchange({b"\x01" * 32}, {b"\x01" * 32})
    with pytest.raises(PeerReconcileError, match="after the exchange ended"):
        transcript.responder.respond(ReconcileMessage())


def test_a_peer_claiming_we_lack_an_id_we_hold_is_refused():
    reconciler = Reconciler(DigestSet([b"\x05" * 32]))
    with pytest.raises(PeerReconcileError, match="which we hold"):
        reconciler.respond(ReconcileMessage(ids_you_lack=(b"\x05" * 32,)))


def test_a_peer_claiming_to_lack_an_id_we_never_had_is_refused():
    reconciler = Reconciler(DigestSet([b"\x05" * 32]))
    with pytest.raises(PeerReconcileError, match="which we do not hold"):
        reconciler.respond(ReconcileMessage(ids_i_lack=(b"\x06" * 32,)))


@pytest.mark.parametrize(
    "knobs",
    [
        {"branching": 1},
        {"id_list_threshold": 0},
        {"max_ids": 0},
        {"max_ranges": 10**9},
        {"max_ids": 4, "id_list_threshold": 5},
    ],
)
def test_settings_outside_what_can_work_are_refused(knobs):
    with pytest.raises(ValueError):
        Reconciler(DigestSet([]), **knobs)


# ---------------------------------------------------------------------------------------------- the sorted set


@settings(max_examples=200, deadline=None)
@given(ids=st.sets(any_ids, max_size=120), data=st.data())
def test_a_range_fingerprint_is_the_fingerprint_of_its_ids(ids, data):
    digests = DigestSet(ids)
    ordered = sorted(ids)
    start = data.draw(st.integers(min_value=0, max_value=len(ordered)))
    stop = data.draw(st.integers(min_value=start, max_value=len(ordered)))
    assert digests.fingerprint(start, stop) == fingerprint_of(ordered[start:stop])
    assert digests.keys(start, stop) == tuple(ordered[start:stop])
    assert list(digests) == ordered and len(digests) == len(ordered)


@settings(max_examples=200, deadline=None)
@given(ids=st.sets(any_ids, min_size=2, max_size=100), data=st.data())
def test_a_separator_is_the_shortest_bound_between_neighbours(ids, data):
    digests = DigestSet(ids)
    index = data.draw(st.integers(min_value=1, max_value=len(digests) - 1))
    before, after = digests.key(index - 1), digests.key(index)
    bound = digests.separator(index)
    assert is_bound(bound) and before < bound <= after
    assert digests.position(bound) == index
    assert not (before < bound[:-1] <= after)  # one byte shorter would not separate them


def _padded(bound: bytes) -> bytes:
    return bound + b"\x00" * (32 - len(bound))


bounds = st.binary(max_size=32).map(lambda prefix: prefix.rstrip(b"\x00"))


@settings(max_examples=300)
@given(first=bounds, second=bounds, digest=any_ids)
def test_raw_byte_order_of_bounds_is_the_order_of_the_keys_they_stand_for(first, second, digest):
    assert (first < second) == (_padded(first) < _padded(second))
    assert (first == second) == (_padded(first) == _padded(second))
    assert (digest < first) == (digest < _padded(first))


@settings(max_examples=200, deadline=None)
@given(ids=st.sets(any_ids, max_size=100), lower=bounds, upper=st.none() | bounds)
def test_positions_count_the_ids_below_a_bound(ids, lower, upper):
    digests = DigestSet(ids)
    start, stop = digests.positions(lower, upper)
    assert start == sum(1 for digest in ids if digest < _padded(lower))
    if upper is not None and lower < upper:
        assert stop - start == sum(1 for digest in ids if _padded(lower) <= digest < _padded(upper))
    if upper is None:
        assert stop == len(ids)
    assert all((digest in digests) for digest in ids)


def test_duplicates_collapse_and_wrong_lengths_are_refused():
    assert len(DigestSet([b"\x01" * 32, b"\x01" * 32])) == 1
    assert b"\x01" * 31 not in DigestSet([b"\x01" * 32])
    with pytest.raises(ValueError, match="32 bytes"):
        DigestSet([b"\x01" * 31])


def test_a_separating_bound_is_short_for_ids_that_differ_early():
    assert separating_bound(b"\x10" + b"\xff" * 31, b"\x11" + b"\x00" * 31) == b"\x11"
    assert separating_bound(b"\x10\x01" + b"\x00" * 30, b"\x10\x02" + b"\x00" * 30) == b"\x10\x02"
