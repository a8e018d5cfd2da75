"""Fuzz the peer-protocol frame decoder and every protobuf message we define.

What a hostile or broken peer can send is bytes; the only answers allowed are a decoded frame/message,
`FrameError` (frames), or protobuf's `DecodeError` (a bare message parse). Any other exception type, or
a hang (pytest-timeout), fails. Inputs: random bytes, valid encodings truncated / bit-flipped /
spliced, and headers declaring lengths around and far above the caps.
"""

from __future__ import annotations

import struct

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cansync.wire.frames import (
    HEADER_SIZE,
    MESSAGE_CLASSES,
    FrameDecoder,
    FrameError,
    FrameLimits,
    FrameType,
    decode_header,
    decode_message,
    encode_frame,
    encode_message,
)
from cansync.wire.pb import can_sync_pb2, peer_pb2

from .conftest import InputCounter
from .proto_strategies import ALL_MESSAGE_CLASSES, ANY_MESSAGE, messages_of, mutated

pytestmark = pytest.mark.timeout(120)

_BASE = settings(
    deadline=None,  # a loaded CI machine is slow; a real hang is caught by pytest-timeout
    database=None,  # keep no example files in the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(max_examples: int) -> settings:
    return settings(_BASE, max_examples=max_examples)


# Small caps make random streams hit the cap checks often; the defaults are checked with real headers.
SMALL_LIMITS = FrameLimits(control_cap=96, chunk_cap=48)
LIMITS = st.sampled_from([SMALL_LIMITS, FrameLimits(), FrameLimits(control_cap=1, chunk_cap=1)])
PEER_MESSAGES = st.sampled_from(sorted(MESSAGE_CLASSES)).flatmap(lambda t: messages_of(MESSAGE_CLASSES[t]))
FRAME_TYPES = st.sampled_from(list(FrameType))


def parse_or_decode_error(cls: type[Message], data: bytes) -> Message | None:
    """Parse data as cls; DecodeError (the documented failure) gives None, anything else propagates."""
    msg = cls()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return None
    return msg


def feed_all(decoder: FrameDecoder, pieces: list[bytes]) -> tuple[list[tuple[FrameType, bytes]], FrameError | None]:
    """Feed pieces in order; the frames that came out, and the FrameError that stopped it (if one did)."""
    frames: list[tuple[FrameType, bytes]] = []
    try:
        for piece in pieces:
            frames.extend(decoder.feed(piece))
    except FrameError as exc:
        return frames, exc
    return frames, None


def split_points(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """data cut into consecutive pieces at random points (as a network delivers it)."""
    cuts = st.lists(st.integers(0, len(data)), max_size=6).map(sorted)
    return cuts.map(lambda points: [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)])


def test_the_fuzzed_classes_are_every_message_of_both_protos() -> None:
    names = {cls.DESCRIPTOR.full_name for cls in ALL_MESSAGE_CLASSES}
    expected = {f"cansync.peer.v1.{n}" for n in peer_pb2.DESCRIPTOR.message_types_by_name} | {
        f"cansync.sync.v1.{n}" for n in can_sync_pb2.DESCRIPTOR.message_types_by_name
    }
    assert names == expected and len(names) == 28


# --- bare protobuf messages ------------------------------------------------------------------------


@fuzz(1500)
@given(cls=st.sampled_from(ALL_MESSAGE_CLASSES), data=st.binary(max_size=300))
def test_random_bytes_parse_or_raise_decode_error(inputs: InputCounter, cls: type[Message], data: bytes) -> None:
    inputs.add()
    msg = parse_or_decode_error(cls, data)
    if msg is not None:
        # whatever parsed must serialize again and re-parse to the same message (no half-built state)
        assert parse_or_decode_error(cls, msg.SerializeToString()) == msg


@fuzz(800)
@given(msg=ANY_MESSAGE)
def test_valid_messages_round_trip(inputs: InputCounter, msg: Message) -> None:
    inputs.add()
    assert parse_or_decode_error(type(msg), msg.SerializeToString()) == msg


@fuzz(1500)
@given(data=st.data(), msg=ANY_MESSAGE)
def test_mutated_encodings_parse_as_every_class_or_raise_decode_error(
    inputs: InputCounter, data: st.DataObject, msg: Message
) -> None:
    broken = data.draw(mutated(msg.SerializeToString()), label="mutated")
    for cls in ALL_MESSAGE_CLASSES:  # a peer may send a valid message of another type, or garbage
        inputs.add()
        parse_or_decode_error(cls, broken)


@fuzz(300)
@given(depth=st.integers(50, 3000), cls=st.sampled_from(ALL_MESSAGE_CLASSES))
def test_deeply_nested_length_delimited_fields_do_not_crash(inputs: InputCounter, depth: int, cls: type) -> None:
    # field 3 (length-delimited) nested `depth` times: AssetHeader.meta / PullItem.meta recurse this way
    payload = b""
    for _ in range(depth):
        payload = b"\x1a" + _varint(len(payload)) + payload
    inputs.add()
    parse_or_decode_error(cls, payload)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# --- frame headers and decode_message --------------------------------------------------------------


@fuzz(1200)
@given(header=st.binary(max_size=2 * HEADER_SIZE), limits=LIMITS)
def test_decode_header_random_bytes(inputs: InputCounter, header: bytes, limits: FrameLimits) -> None:
    inputs.add()
    try:
        ftype, length = decode_header(header, limits)
    except FrameError:
        return
    assert len(header) == HEADER_SIZE
    assert header[0] == ftype and 0 <= length <= limits.cap_for(ftype)


@fuzz(800)
@given(ftype=FRAME_TYPES, excess=st.one_of(st.integers(1, 16), st.integers(1, 2**32 - 1)), limits=LIMITS)
def test_oversized_length_is_refused_from_the_header_alone(
    inputs: InputCounter, ftype: FrameType, excess: int, limits: FrameLimits
) -> None:
    length = min(limits.cap_for(ftype) + excess, 2**32 - 1)
    header = struct.pack(">BI", ftype, length)
    inputs.add(2)
    with pytest.raises(FrameError):
        decode_header(header, limits)
    decoder = FrameDecoder(limits)
    frames, error = feed_all(decoder, [header])  # no payload byte follows: the header must be enough
    assert frames == [] and isinstance(error, FrameError)
    with pytest.raises(FrameError, match="already failed"):
        list(decoder.feed(b"\x00" * 64))


@fuzz(1200)
@given(ftype=FRAME_TYPES, payload=st.one_of(st.binary(max_size=200), ANY_MESSAGE.map(lambda m: m.SerializeToString())))
def test_decode_message_returns_a_message_or_raises_frame_error(
    inputs: InputCounter, ftype: FrameType, payload: bytes
) -> None:
    inputs.add()
    try:
        msg = decode_message(ftype, payload)
    except FrameError:
        return
    assert ftype is not FrameType.CHUNK
    assert isinstance(msg, MESSAGE_CLASSES[ftype])


# --- the incremental decoder -----------------------------------------------------------------------


@fuzz(1500)
@given(data=st.data(), stream=st.binary(max_size=400), limits=LIMITS)
def test_decoder_on_random_streams(
    inputs: InputCounter, data: st.DataObject, stream: bytes, limits: FrameLimits
) -> None:
    pieces = data.draw(split_points(stream), label="pieces")
    inputs.add()
    frames, error = feed_all(FrameDecoder(limits), pieces)
    # every frame it let through respects the cap of its type, and it never invents bytes
    assert all(len(payload) <= limits.cap_for(ftype) for ftype, payload in frames)
    assert sum(HEADER_SIZE + len(p) for _, p in frames) <= len(stream)
    for ftype, payload in frames:
        inputs.add()
        try:
            decode_message(ftype, payload)
        except FrameError:
            pass


@fuzz(1000)
@given(data=st.data(), msgs=st.lists(PEER_MESSAGES, min_size=1, max_size=4), chunk=st.binary(max_size=40))
def test_decoder_reassembles_valid_streams_split_anywhere(
    inputs: InputCounter, data: st.DataObject, msgs: list[Message], chunk: bytes
) -> None:
    stream = b"".join(encode_message(m) for m in msgs) + encode_frame(FrameType.CHUNK, chunk)
    pieces = data.draw(split_points(stream), label="pieces")
    inputs.add()
    decoder = FrameDecoder()
    frames, error = feed_all(decoder, pieces)
    assert error is None and decoder.at_frame_boundary()
    assert [decode_message(t, p) for t, p in frames[:-1]] == msgs
    assert frames[-1] == (FrameType.CHUNK, chunk)


@fuzz(1500)
@given(data=st.data(), msgs=st.lists(PEER_MESSAGES, min_size=1, max_size=3), limits=LIMITS)
def test_decoder_on_corrupted_valid_streams(
    inputs: InputCounter, data: st.DataObject, msgs: list[Message], limits: FrameLimits
) -> None:
    stream = b"".join(encode_message(m) for m in msgs)
    broken = data.draw(mutated(stream), label="mutated")
    pieces = data.draw(split_points(broken), label="pieces")
    inputs.add()
    decoder = FrameDecoder(limits)
    frames, error = feed_all(decoder, pieces)
    if error is not None:
        with pytest.raises(FrameError):  # a failed decoder stays failed
            list(decoder.feed(b"x"))
    for ftype, payload in frames:
        inputs.add()
        try:
            decode_message(ftype, payload)
        except FrameError:
            pass
