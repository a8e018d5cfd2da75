"""The binary form of a reconciliation message (`cansync.core.reconcile.ReconcileMessage`), and its checks.

Ids travel as 32 raw bytes, counts as varints (unsigned LEB128, as protobuf writes them), bounds as a
length byte and at most 32 bytes of prefix. Layout:

    message     = version:u8 (1)  flags:varint (bit 0: more)
                  range_count:varint  range*
                  you_lack_count:varint  id*  i_lack_count:varint  id*
    range       = head:u8  [lower]  [upper]  (fingerprint:16 bytes | id_count:varint id*)
    head        = kind (bits 0-1: 1 fingerprint, 2 ids) | 0x04 lower is the previous upper (the first
                  range's "previous upper" is the first key) | 0x08 upper is past the last key
    lower/upper = length:u8 (0..32) prefix:length bytes, with no trailing zero byte
    id          = 32 bytes

Buckets of one split are adjacent, so most ranges carry only an upper bound: a fingerprint item costs
about 21 bytes. Decoding refuses, with `ReconcileDecodeError`, anything but a canonical message within the
limits: every count and length is checked against what remains and against the caps before it is used;
ranges must be ascending and disjoint, bounds canonical, ids ascending, inside their range and distinct.
Every accepted input is the one encoding of its message, so decoding and encoding are inverse.
"""

from __future__ import annotations

from typing import Final

from cansync.core.reconcile import (
    DIGEST_SIZE,
    FINGERPRINT_SIZE,
    MAX_IDS_PER_MESSAGE,
    MAX_RANGES_PER_MESSAGE,
    RangeFingerprint,
    RangeIds,
    RangeItem,
    ReconcileMessage,
    bound_below,
    is_bound,
)
from cansync.wire.frames import PeerProtocolError

VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
MAX_VARINT_BYTES: Final = 5  # every count we accept is below 2^35

_KIND_FINGERPRINT: Final = 1
_KIND_IDS: Final = 2
_KIND_MASK: Final = 0x03
_LOWER_IS_PREVIOUS_UPPER: Final = 0x04
_UPPER_IS_END: Final = 0x08
_HEAD_BITS: Final = _KIND_MASK | _LOWER_IS_PREVIOUS_UPPER | _UPPER_IS_END
_FLAG_MORE: Final = 0x01

# the largest message the limits allow, every field at its widest: it must fit MAX_MESSAGE_BYTES
WORST_CASE_MESSAGE_BYTES: Final = (
    1
    + MAX_VARINT_BYTES * 4
    + MAX_RANGES_PER_MESSAGE * (1 + 2 * (1 + DIGEST_SIZE) + max(FINGERPRINT_SIZE, MAX_VARINT_BYTES))
    + MAX_IDS_PER_MESSAGE * DIGEST_SIZE
)


class ReconcileDecodeError(PeerProtocolError):
    """Reconciliation bytes we refuse: truncated, oversized, over a limit, or not canonical."""


# ---------------------------------------------------------------------------------------------- encode


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bound(prefix: bytes) -> bytes:
    return bytes((len(prefix),)) + prefix


def encode_reconcile(message: ReconcileMessage) -> bytes:
    """The bytes of `message`. Raises ValueError for a message our own side should never have built."""
    if len(message.ranges) > MAX_RANGES_PER_MESSAGE or message.id_count > MAX_IDS_PER_MESSAGE:
        raise ValueError(
            f"a reconciliation message holds at most {MAX_RANGES_PER_MESSAGE} ranges and {MAX_IDS_PER_MESSAGE} ids"
        )
    parts = [bytes((VERSION,)), _varint(_FLAG_MORE if message.more else 0), _varint(len(message.ranges))]
    previous_upper: bytes | None = b""
    for item in message.ranges:
        head = _KIND_FINGERPRINT if isinstance(item, RangeFingerprint) else _KIND_IDS
        if item.lower == previous_upper:
            head |= _LOWER_IS_PREVIOUS_UPPER
        if item.upper is None:
            head |= _UPPER_IS_END
        parts.append(bytes((head,)))
        if not head & _LOWER_IS_PREVIOUS_UPPER:
            parts.append(_bound(item.lower))
        if item.upper is not None:
            parts.append(_bound(item.upper))
        if isinstance(item, RangeFingerprint):
            parts.append(item.fingerprint)
        else:
            parts.append(_varint(len(item.ids)))
            parts.extend(item.ids)
        previous_upper = item.upper
    for ids in (message.ids_you_lack, message.ids_i_lack):
        parts.append(_varint(len(ids)))
        parts.extend(ids)
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------- decode


class _Reader:
    """A cursor over the message bytes that never reads past the end."""

    __slots__ = ("_data", "_at")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._at

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining:
            raise ReconcileDecodeError(f"{what}: needs {size} bytes, {self.remaining} remain")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str, limit: int) -> int:
        value = 0
        for index in range(MAX_VARINT_BYTES):
            byte = self.byte(what)
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if byte == 0 and index > 0:
                    raise ReconcileDecodeError(f"{what}: varint with a needless trailing byte")
                if value > limit:
                    raise ReconcileDecodeError(f"{what}: {value} is over the limit of {limit}")
                return value
        raise ReconcileDecodeError(f"{what}: varint longer than {MAX_VARINT_BYTES} bytes")

    def bound(self, what: str) -> bytes:
        length = self.byte(what)
        if length > DIGEST_SIZE:
            raise ReconcileDecodeError(f"{what}: a bound of {length} bytes (at most {DIGEST_SIZE})")
        prefix = self.take(length, what)
        if not is_bound(prefix):
            raise ReconcileDecodeError(f"{what}: a bound must not end in a zero byte")
        return prefix

    def ids(self, count: int, what: str, lower: bytes, upper: bytes | None) -> tuple[bytes, ...]:
        """`count` ids, strictly ascending, each in `[lower, upper)`; the count was checked against limits."""
        blob = self.take(count * DIGEST_SIZE, what)
        ids = tuple(blob[at : at + DIGEST_SIZE] for at in range(0, len(blob), DIGEST_SIZE))
        previous = lower
        for index, digest in enumerate(ids):
            if digest < previous or (index and digest == previous):
                raise ReconcileDecodeError(f"{what}: ids must be ascending, distinct and inside their range")
            previous = digest
        if ids and upper is not None and ids[-1] >= upper:
            raise ReconcileDecodeError(f"{what}: an id at or above the range's upper bound")
        return ids


def decode_reconcile(data: bytes) -> ReconcileMessage:
    """The message in `data`, checked; raises ReconcileDecodeError for anything else."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise ReconcileDecodeError(f"a reconciliation message of {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
    reader = _Reader(bytes(data))
    version = reader.byte("version")
    if version != VERSION:
        raise ReconcileDecodeError(f"reconciliation version {version} (we speak {VERSION})")
    flags = reader.varint("flags", _FLAG_MORE)
    range_count = reader.varint("range count", MAX_RANGES_PER_MESSAGE)
    id_budget = MAX_IDS_PER_MESSAGE
    ranges: list[RangeItem] = []
    previous_upper: bytes | None = b""
    for index in range(range_count):
        where = f"range {index}"
        if previous_upper is None:
            raise ReconcileDecodeError(f"{where}: follows a range that reaches past the last key")
        head = reader.byte(where)
        kind = head & _KIND_MASK
        if head & ~_HEAD_BITS or kind not in (_KIND_FINGERPRINT, _KIND_IDS):
            raise ReconcileDecodeError(f"{where}: unknown head byte {head:#04x}")
        if head & _LOWER_IS_PREVIOUS_UPPER:
            lower = previous_upper
        else:
            lower = reader.bound(f"{where} lower bound")
            if lower <= previous_upper:  # equal would be the adjacent form, spelled out: one message, one encoding
                raise ReconcileDecodeError(f"{where}: ranges must be ascending, disjoint and written canonically")
        upper = None if head & _UPPER_IS_END else reader.bound(f"{where} upper bound")
        if not bound_below(lower, upper):
            raise ReconcileDecodeError(f"{where}: its lower bound is not below its upper bound")
        if kind == _KIND_FINGERPRINT:
            ranges.append(RangeFingerprint(lower, upper, reader.take(FINGERPRINT_SIZE, f"{where} fingerprint")))
        else:
            count = reader.varint(f"{where} id count", id_budget)
            id_budget -= count
            ranges.append(RangeIds(lower, upper, reader.ids(count, f"{where} ids", lower, upper)))
        previous_upper = upper
    you_lack_count = reader.varint("ids you lack: count", id_budget)
    ids_you_lack = reader.ids(you_lack_count, "ids you lack", b"", None)
    i_lack_count = reader.varint("ids I lack: count", id_budget - you_lack_count)
    ids_i_lack = reader.ids(i_lack_count, "ids I lack", b"", None)
    if reader.remaining:
        raise ReconcileDecodeError(f"{reader.remaining} bytes after the end of the message")
    return ReconcileMessage(tuple(ranges), ids_you_lack, ids_i_lack, more=bool(flags & _FLAG_MORE))
