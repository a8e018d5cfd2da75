"""Peer-protocol frames: 1 type byte, a 4-byte big-endian payload length, then the payload.

The payload is a protobuf message from proto/peer.proto, or raw content bytes for CHUNK. Every
length is checked against a cap before any payload byte is read, so a hostile or broken peer cannot
make us allocate more than the cap. Pure: no streams, no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from google.protobuf.message import DecodeError, Message

from cansync.wire.pb import peer_pb2

HEADER_SIZE = 5
_HEADER = struct.Struct(">BI")

MiB = 1024 * 1024
DEFAULT_CONTROL_CAP = 16 * MiB
DEFAULT_CHUNK_CAP = 4 * MiB


class FrameError(ValueError):
    """A frame we refuse: unknown type, length over the cap, truncated, or a malformed payload."""


class PeerProtocolError(FrameError):
    """A message that breaks the protocol: a malformed id, an impossible number, too many items."""


class FrameType(IntEnum):
    HELLO = 1
    PROOF = 2
    AUTH_RESULT = 3
    DIGEST_REQUEST = 4
    DIGEST_BATCH = 5
    WANT = 6
    ASSET_HEADER = 7
    CHUNK = 8  # raw content bytes, not protobuf
    ASSET_END = 9
    ASSET_UNAVAILABLE = 10
    ADVERTISE = 11
    META_CHANGE = 12
    PEER_LIST = 13
    GOODBYE = 14
    KEEPALIVE = 15
    RECONCILE = 16


MESSAGE_CLASSES: dict[FrameType, type[Message]] = {
    FrameType.HELLO: peer_pb2.Hello,
    FrameType.PROOF: peer_pb2.Proof,
    FrameType.AUTH_RESULT: peer_pb2.AuthResult,
    FrameType.DIGEST_REQUEST: peer_pb2.DigestRequest,
    FrameType.DIGEST_BATCH: peer_pb2.DigestBatch,
    FrameType.WANT: peer_pb2.Want,
    FrameType.ASSET_HEADER: peer_pb2.AssetHeader,
    FrameType.ASSET_END: peer_pb2.AssetEnd,
    FrameType.ASSET_UNAVAILABLE: peer_pb2.AssetUnavailable,
    FrameType.ADVERTISE: peer_pb2.Advertise,
    FrameType.META_CHANGE: peer_pb2.MetaChange,
    FrameType.PEER_LIST: peer_pb2.PeerList,
    FrameType.GOODBYE: peer_pb2.Goodbye,
    FrameType.KEEPALIVE: peer_pb2.KeepAlive,
    FrameType.RECONCILE: peer_pb2.Reconcile,
}
_TYPE_BY_MESSAGE_NAME = {cls.DESCRIPTOR.full_name: ftype for ftype, cls in MESSAGE_CLASSES.items()}


@dataclass(frozen=True)
class FrameLimits:
    """Largest payload accepted per frame kind (bytes)."""

    control_cap: int = DEFAULT_CONTROL_CAP
    chunk_cap: int = DEFAULT_CHUNK_CAP

    def __post_init__(self) -> None:
        for name in ("control_cap", "chunk_cap"):
            value = getattr(self, name)
            if not 0 < value <= 0xFFFFFFFF:
                raise ValueError(f"{name} must be between 1 and 4 GiB - 1, got {value}")

    def cap_for(self, ftype: FrameType) -> int:
        return self.chunk_cap if ftype is FrameType.CHUNK else self.control_cap


DEFAULT_LIMITS = FrameLimits()


def _check(ftype: FrameType, length: int, limits: FrameLimits) -> None:
    cap = limits.cap_for(ftype)
    if length > cap:
        raise FrameError(f"{ftype.name} frame of {length} bytes exceeds the {cap}-byte cap for that type")


def frame_type_of(raw: int) -> FrameType:
    try:
        return FrameType(raw)
    except ValueError:
        raise FrameError(f"unknown frame type {raw} (known: 1-{max(FrameType)})") from None


def encode_header(ftype: FrameType, length: int, limits: FrameLimits = DEFAULT_LIMITS) -> bytes:
    """The 5 header bytes for a payload of `length` bytes (send the payload separately: no copy)."""
    ftype = frame_type_of(int(ftype))
    _check(ftype, length, limits)
    return _HEADER.pack(ftype, length)


def encode_frame(ftype: FrameType, payload: bytes, limits: FrameLimits = DEFAULT_LIMITS) -> bytes:
    return encode_header(ftype, len(payload), limits) + payload


def decode_header(header: bytes, limits: FrameLimits = DEFAULT_LIMITS) -> tuple[FrameType, int]:
    """Type and payload length from 5 header bytes; refuses an unknown type or an over-cap length."""
    if len(header) != HEADER_SIZE:
        raise FrameError(f"a frame header is {HEADER_SIZE} bytes, got {len(header)}")
    raw_type, length = _HEADER.unpack(header)
    ftype = frame_type_of(raw_type)
    _check(ftype, length, limits)
    return ftype, length


def message_type(msg: Message) -> FrameType:
    try:
        return _TYPE_BY_MESSAGE_NAME[msg.DESCRIPTOR.full_name]
    except KeyError:
        raise FrameError(f"{msg.DESCRIPTOR.full_name} is not a peer-protocol frame message") from None


def encode_message(msg: Message, limits: FrameLimits = DEFAULT_LIMITS) -> bytes:
    """The whole frame (header + payload) for a peer-protocol message."""
    return encode_frame(message_type(msg), msg.SerializeToString(), limits)


def decode_message(ftype: FrameType, payload: bytes) -> Message:
    """Parse a control frame's payload; CHUNK frames carry raw bytes and are refused here."""
    cls = MESSAGE_CLASSES.get(ftype)
    if cls is None:
        raise FrameError(f"{FrameType(ftype).name} frames carry raw bytes, not a protobuf message")
    msg = cls()
    try:
        msg.ParseFromString(bytes(payload))
    except (DecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"malformed {ftype.name} payload ({len(payload)} bytes): {exc}") from exc
    return msg


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, take out whole frames.

    Caps are checked as soon as a header is complete, before the payload is buffered.
    After a FrameError the decoder is broken and refuses further input.
    """

    def __init__(self, limits: FrameLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._pending: tuple[FrameType, int] | None = None
        self._failed: FrameError | None = None

    def feed(self, data: bytes) -> Iterator[tuple[FrameType, bytes]]:
        if self._failed is not None:
            raise FrameError(f"decoder already failed: {self._failed}")
        self._buffer += data
        while True:
            if self._pending is None:
                if len(self._buffer) < HEADER_SIZE:
                    return
                try:
                    self._pending = decode_header(bytes(self._buffer[:HEADER_SIZE]), self._limits)
                except FrameError as exc:
                    self._failed = exc
                    raise
                del self._buffer[:HEADER_SIZE]
            ftype, length = self._pending
            if len(self._buffer) < length:
                return
            payload = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            yield ftype, payload

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def at_frame_boundary(self) -> bool:
        """True when no partial frame is held (a stream may end here cleanly)."""
        return self._pending is None and not self._buffer
