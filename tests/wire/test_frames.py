"""Frame encoding and decoding: round trips, caps checked before the payload, hostile bytes."""

from __future__ import annotations

import struct

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.wire.frames import (
    DEFAULT_CHUNK_CAP,
    DEFAULT_CONTROL_CAP,
    HEADER_SIZE,
    MESSAGE_CLASSES,
    FrameDecoder,
    FrameError,
    FrameLimits,
    FrameType,
    decode_header,
    decode_message,
    encode_frame,
    encode_header,
    encode_message,
    message_type,
)
from cansync.wire.pb import can_sync_pb2, peer_pb2

DIGEST = can_sync_pb2.AssetDigest(hash="ab" * 32, timestamp=1700000000000, size=12, changed_seq=7)
META = can_sync_pb2.AssetMeta(hash="cd" * 32, timestamp=1, size=3, tags=["a", "b"], description="d")

SAMPLES: dict[FrameType, Message] = {
    FrameType.HELLO: peer_pb2.Hello(protocol_version=1, endpoint_id=b"\x01" * 32, nonce=b"\x02" * 32),
    FrameType.PROOF: peer_pb2.Proof(mac=b"\x03" * 32),
    FrameType.AUTH_RESULT: peer_pb2.AuthResult(ok=False, reason="wrong passphrase"),
    FrameType.DIGEST_REQUEST: peer_pb2.DigestRequest(since=42),
    FrameType.DIGEST_BATCH: peer_pb2.DigestBatch(digests=[DIGEST, DIGEST], watermark=9, full=True, last=True),
    FrameType.WANT: peer_pb2.Want(items=[peer_pb2.WantItem(hash="ab" * 32, offset=1024)]),
    FrameType.ASSET_HEADER: peer_pb2.AssetHeader(meta=META, offset=5),
    FrameType.ASSET_END: peer_pb2.AssetEnd(hash="cd" * 32, total=3),
    FrameType.ASSET_UNAVAILABLE: peer_pb2.AssetUnavailable(hash="ef" * 32, reason="gone"),
    FrameType.ADVERTISE: peer_pb2.Advertise(digests=[DIGEST], watermark=3),
    FrameType.META_CHANGE: peer_pb2.MetaChange(
        update=can_sync_pb2.MetaUpdate(hash="ab" * 32, tags=["x"], trashed=True, updated_ms=5, origin="o")
    ),
    FrameType.PEER_LIST: peer_pb2.PeerList(
        peers=[peer_pb2.PeerAddress(endpoint_id="aa" * 32, addrs=["127.0.0.1:1"], relay_url="https://r.example")]
    ),
    FrameType.GOODBYE: peer_pb2.Goodbye(reason="shutting down"),
    FrameType.KEEPALIVE: peer_pb2.KeepAlive(),
    FrameType.RECONCILE: peer_pb2.Reconcile(watermark=3, exchange=b"\x01\x00\x00\x00\x00"),
}


def test_every_frame_type_but_chunk_has_a_message_and_a_sample() -> None:
    assert set(MESSAGE_CLASSES) == set(FrameType) - {FrameType.CHUNK}
    assert set(SAMPLES) == set(MESSAGE_CLASSES)
    # one frame type per peer.proto message that travels on its own (WantItem/PeerAddress are parts)
    top_level = {name for name in peer_pb2.DESCRIPTOR.message_types_by_name} - {"WantItem", "PeerAddress"}
    assert {cls.DESCRIPTOR.name for cls in MESSAGE_CLASSES.values()} == top_level


@pytest.mark.parametrize("ftype", sorted(SAMPLES))
def test_message_round_trip(ftype: FrameType) -> None:
    msg = SAMPLES[ftype]
    frame = encode_message(msg)
    got_type, length = decode_header(frame[:HEADER_SIZE])
    assert got_type is ftype
    assert length == len(frame) - HEADER_SIZE
    assert decode_message(got_type, frame[HEADER_SIZE:]) == msg
    assert message_type(msg) is ftype


def test_chunk_round_trip_and_header_layout() -> None:
    payload = bytes(range(256)) * 10
    frame = encode_frame(FrameType.CHUNK, payload)
    assert frame[:HEADER_SIZE] == bytes([FrameType.CHUNK]) + len(payload).to_bytes(4, "big")
    assert encode_header(FrameType.CHUNK, len(payload)) == frame[:HEADER_SIZE]
    decoder = FrameDecoder()
    assert list(decoder.feed(frame)) == [(FrameType.CHUNK, payload)]
    assert decoder.at_frame_boundary()
    with pytest.raises(FrameError, match="raw bytes"):
        decode_message(FrameType.CHUNK, payload)


def test_decoder_reassembles_frames_fed_one_byte_at_a_time() -> None:
    stream = b"".join(encode_message(m) for m in SAMPLES.values()) + encode_frame(FrameType.CHUNK, b"xyz")
    decoder = FrameDecoder()
    frames = [frame for i in range(len(stream)) for frame in decoder.feed(stream[i : i + 1])]
    assert [t for t, _ in frames] == [*SAMPLES, FrameType.CHUNK]
    assert [decode_message(t, p) for t, p in frames[:-1]] == list(SAMPLES.values())


@pytest.mark.parametrize(
    ("ftype", "cap"), [(FrameType.CHUNK, DEFAULT_CHUNK_CAP), (FrameType.DIGEST_BATCH, DEFAULT_CONTROL_CAP)]
)
def test_oversized_header_is_refused_before_any_payload(ftype: FrameType, cap: int) -> None:
    header = struct.pack(">BI", ftype, cap + 1)
    with pytest.raises(FrameError) as err:
        decode_header(header)
    assert ftype.name in str(err.value) and str(cap + 1) in str(err.value) and str(cap) in str(err.value)
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        list(decoder.feed(header))  # the header alone: no payload byte was needed to refuse it
    # exactly at the cap is fine
    assert decode_header(struct.pack(">BI", ftype, cap)) == (ftype, cap)


@pytest.mark.parametrize("raw_type", [0, 17, 99, 255])
def test_unknown_type_is_refused(raw_type: int) -> None:
    with pytest.raises(FrameError, match=f"unknown frame type {raw_type}"):
        decode_header(struct.pack(">BI", raw_type, 0))


def test_caps_are_configurable_and_enforced_on_encode() -> None:
    limits = FrameLimits(control_cap=10, chunk_cap=20)
    with pytest.raises(FrameError, match="10-byte cap"):
        encode_frame(FrameType.GOODBYE, b"x" * 11, limits)
    with pytest.raises(FrameError, match="20-byte cap"):
        decode_header(struct.pack(">BI", FrameType.CHUNK, 21), limits)
    assert decode_header(struct.pack(">BI", FrameType.CHUNK, 20), limits) == (FrameType.CHUNK, 20)
    with pytest.raises(ValueError):
        FrameLimits(control_cap=0)


def test_malformed_protobuf_payload_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="malformed HELLO"):
        decode_message(FrameType.HELLO, b"\xff\xff\xff\xff")
    with pytest.raises(FrameError):
        decode_message(FrameType.GOODBYE, b"\x0a\x05ab")  # string field longer than the payload


def test_a_part_message_is_not_a_frame() -> None:
    with pytest.raises(FrameError, match="not a peer-protocol frame"):
        encode_message(peer_pb2.WantItem(hash="x"))


def test_short_header_is_refused() -> None:
    with pytest.raises(FrameError, match="5 bytes"):
        decode_header(b"\x01\x00")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_bytes_raise_only_frame_errors(pieces: list[bytes]) -> None:
    decoder = FrameDecoder(FrameLimits(control_cap=1024, chunk_cap=1024))
    try:
        for piece in pieces:
            for ftype, payload in decoder.feed(piece):
                if ftype is not FrameType.CHUNK:
                    decode_message(ftype, payload)
    except FrameError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(MESSAGE_CLASSES)), st.binary(max_size=200))
def test_random_payloads_parse_or_raise_frame_error(ftype: FrameType, payload: bytes) -> None:
    try:
        msg = decode_message(ftype, payload)
    except FrameError:
        return
    assert isinstance(msg, MESSAGE_CLASSES[ftype])


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE))
def test_random_headers_decode_within_caps_or_raise(header: bytes) -> None:
    try:
        ftype, length = decode_header(header)
    except FrameError:
        raw_type, length = struct.unpack(">BI", header)
        assert raw_type not in set(FrameType) or length > FrameLimits().cap_for(FrameType(raw_type))
        return
    assert length <= FrameLimits().cap_for(ftype)
