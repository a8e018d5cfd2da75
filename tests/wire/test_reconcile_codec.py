"""The reconciliation codec: every message round-trips, every accepted input is the one encoding of its
message, and truncated, oversized, over-limit, non-canonical and garbage inputs are refused."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core.reconcile import (
    FINGERPRINT_SIZE,
    MAX_IDS_PER_MESSAGE,
    MAX_RANGES_PER_MESSAGE,
    DigestSet,
    RangeFingerprint,
    RangeIds,
    RangeItem,
    ReconcileMessage,
    Reconciler,
)
from cansync.wire.frames import DEFAULT_CONTROL_CAP
from cansync.wire.peer_messages import PeerProtocolError
from cansync.wire.reconcile_codec import (
    MAX_MESSAGE_BYTES,
    WORST_CASE_MESSAGE_BYTES,
    ReconcileDecodeError,
    decode_reconcile,
    encode_reconcile,
)

ID = b"\x42" * 32
FINGERPRINT = b"\x07" * FINGERPRINT_SIZE

canonical_bounds = st.binary(min_size=1, max_size=32).map(lambda prefix: prefix.rstrip(b"\x00")).filter(bool)
id_sets = st.sets(st.binary(min_size=32, max_size=32), max_size=40)


@st.composite
def messages(draw: st.DrawFn) -> ReconcileMessage:
    """Any message the protocol allows: ascending disjoint ranges, some adjacent, ids inside their range."""
    cut_points = sorted(draw(st.sets(canonical_bounds, max_size=12)))
    edges: list[bytes | None] = [b"", *cut_points]
    if draw(st.booleans()):
        edges.append(None)
    pool = sorted(draw(id_sets))
    ranges: list[RangeItem] = []
    for lower, upper in zip(edges, edges[1:], strict=False):
        assert lower is not None
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            continue  # a gap: the next range is written with its own lower bound
        if draw(st.booleans()):
            ranges.append(RangeFingerprint(lower, upper, draw(st.binary(min_size=16, max_size=16))))
        else:
            inside = [d for d in pool if lower <= d and (upper is None or d < upper)]
            ranges.append(RangeIds(lower, upper, tuple(inside)))
    return ReconcileMessage(
        tuple(ranges),
        tuple(sorted(draw(id_sets))),
        tuple(sorted(draw(id_sets))),
        more=draw(st.booleans()),
    )


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def transcript_messages(ids_a: set[bytes], ids_b: set[bytes]) -> list[ReconcileMessage]:
    sides = [Reconciler(DigestSet(ids_a)), Reconciler(DigestSet(ids_b))]
    said: list[ReconcileMessage] = []
    message: ReconcileMessage | None = sides[0].initiate()
    turn = 1
    while message is not None:
        said.append(message)
        message = sides[turn].respond(message)
        turn ^= 1
    return said


def numbered_ids(seed: int, count: int) -> set[bytes]:
    return {hashlib.sha256(bytes((seed,)) + n.to_bytes(4, "big")).digest() for n in range(count)}


# ---------------------------------------------------------------------------------------------- round trips


@settings(max_examples=400)
@given(message=messages())
def test_every_message_round_trips(message):
    assert decode_reconcile(encode_reconcile(message)) == message


def test_every_message_of_a_real_exchange_round_trips():
    common = numbered_ids(1, 20_000)
    said = transcript_messages(common | numbered_ids(2, 150), common | numbered_ids(3, 150))
    assert len(said) > 4  # fingerprints, id lists and difference lists all appear
    for message in said:
        assert decode_reconcile(encode_reconcile(message)) == message


def test_ids_travel_as_32_raw_bytes_and_a_split_costs_about_21_bytes_a_bucket():
    one_id = encode_reconcile(ReconcileMessage(ids_you_lack=(ID,)))
    assert len(one_id) == 1 + 1 + 1 + 1 + 32 + 1
    buckets = tuple(RangeFingerprint(bytes((n,)), bytes((n + 1,)), FINGERPRINT) for n in range(1, 17))
    split = encode_reconcile(ReconcileMessage(buckets))
    header, first, adjacent, no_differences = 3, 1 + 2 + 2 + 16, 1 + 2 + 16, 2  # only the first lower is written
    assert len(split) == header + first + 15 * adjacent + no_differences


def test_the_limits_fit_a_control_frame():
    assert WORST_CASE_MESSAGE_BYTES <= MAX_MESSAGE_BYTES <= DEFAULT_CONTROL_CAP


def test_the_encoder_refuses_a_message_over_the_limits():
    with pytest.raises(ValueError, match="at most"):
        encode_reconcile(ReconcileMessage(ids_you_lack=(ID,) * (MAX_IDS_PER_MESSAGE + 1)))


# ---------------------------------------------------------------------------------------------- refusals


@settings(max_examples=200)
@given(message=messages(), data=st.data())
def test_every_truncation_is_refused(message, data):
    encoded = encode_reconcile(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(ReconcileDecodeError):
        decode_reconcile(encoded[:cut])


@settings(max_examples=200)
@given(message=messages(), tail=st.binary(min_size=1, max_size=8))
def test_bytes_after_the_message_are_refused(message, tail):
    with pytest.raises(ReconcileDecodeError):
        decode_reconcile(encode_reconcile(message) + tail)


@settings(max_examples=2_000)
@given(garbage=st.binary(max_size=300) | st.binary(max_size=300).map(lambda tail: b"\x01" + tail))
def test_garbage_is_refused_or_is_the_one_encoding_of_a_message(garbage):
    try:
        message = decode_reconcile(garbage)
    except ReconcileDecodeError:
        return
    assert encode_reconcile(message) == garbage


@settings(max_examples=300)
@given(message=messages(), data=st.data())
def test_a_flipped_byte_is_refused_or_is_the_one_encoding_of_a_message(message, data):
    encoded = bytearray(encode_reconcile(message))
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        decoded = decode_reconcile(bytes(encoded))
    except ReconcileDecodeError:
        return
    assert encode_reconcile(decoded) == bytes(encoded)


def test_an_oversized_message_is_refused_before_it_is_read():
    with pytest.raises(ReconcileDecodeError, match="at most"):
        decode_reconcile(b"\x01" + b"\x00" * MAX_MESSAGE_BYTES)


HEADER = b"\x01\x00"  # version 1, no flags
NO_DIFFERENCES = b"\x00\x00"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("another version", b"\x02\x00\x00" + NO_DIFFERENCES),
        ("an unknown flag", b"\x01\x02\x00" + NO_DIFFERENCES),
        ("too many ranges", HEADER + varint(MAX_RANGES_PER_MESSAGE + 1)),
        ("too many ids in a list", HEADER + b"\x00" + varint(MAX_IDS_PER_MESSAGE + 1)),
        ("a varint longer than five bytes", HEADER + b"\x80\x80\x80\x80\x80\x01"),
        ("a varint with a needless zero byte", HEADER + b"\x80\x00" + NO_DIFFERENCES),
        ("an unknown range kind", HEADER + b"\x01" + b"\x0f" + FINGERPRINT + NO_DIFFERENCES),
        ("unknown head bits", HEADER + b"\x01" + b"\x1d" + FINGERPRINT + NO_DIFFERENCES),
        ("a bound over 32 bytes", HEADER + b"\x01" + b"\x05" + b"\x21" + b"\x01" * 33 + FINGERPRINT + NO_DIFFERENCES),
        ("a bound ending in a zero byte", HEADER + b"\x01" + b"\x05" + b"\x02\x01\x00" + FINGERPRINT + NO_DIFFERENCES),
        ("an upper bound at the first key", HEADER + b"\x01" + b"\x05" + b"\x00" + FINGERPRINT + NO_DIFFERENCES),
        (
            "descending ranges",
            HEADER + b"\x02" + b"\x05\x01\x50" + FINGERPRINT + b"\x09\x01\x40" + FINGERPRINT + NO_DIFFERENCES,
        ),
        (
            "an explicit lower bound equal to the previous upper",
            HEADER + b"\x02" + b"\x05\x01\x50" + FINGERPRINT + b"\x09\x01\x50" + FINGERPRINT + NO_DIFFERENCES,
        ),
        ("a range after the end of the key space", HEADER + b"\x02" + b"\x0d" + FINGERPRINT + b"\x0d" + FINGERPRINT),
        ("an id above its range", HEADER + b"\x01" + b"\x06\x01\x10" + b"\x01" + b"\x10" * 32 + NO_DIFFERENCES),
        (
            "an id below its range",
            HEADER + b"\x01" + b"\x0a\x01\x10" + b"\x01" + b"\x0f" * 32 + NO_DIFFERENCES,
        ),
        ("ids out of order", HEADER + b"\x00" + b"\x02" + b"\x02" * 32 + b"\x01" * 32 + b"\x00"),
        ("a repeated id", HEADER + b"\x00" + b"\x02" + b"\x02" * 32 + b"\x02" * 32 + b"\x00"),
        ("a truncated fingerprint", HEADER + b"\x01" + b"\x0d" + FINGERPRINT[:-1]),
    ],
)
def test_malformed_messages_are_refused(name, data):
    with pytest.raises(ReconcileDecodeError):
        decode_reconcile(data)


def test_too_many_ids_across_the_lists_are_refused_before_they_are_read():
    half = MAX_IDS_PER_MESSAGE // 2
    ids = b"".join(n.to_bytes(32, "big") for n in range(half))
    over = HEADER + b"\x00" + varint(half) + ids + varint(half + 1)
    with pytest.raises(ReconcileDecodeError, match="over the limit"):
        decode_reconcile(over)


def test_a_refusal_is_a_peer_protocol_error_and_a_value_error():
    assert issubclass(ReconcileDecodeError, PeerProtocolError)
    assert issubclass(ReconcileDecodeError, ValueError)
