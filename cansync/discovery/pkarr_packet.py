"""pkarr signed packets: keys, the BEP44 signable, build / parse / verify. Pure: no I/O, no clock of its own.

Wire facts (see the pkarr design notes):
- a key is an Ed25519 public key, written as 52 characters of z-base-32; the secret is the 32-byte seed;
- the relay payload is `signature(64) || timestamp(8, big-endian, µs since the epoch) || dns packet`;
- what is signed is the BEP44 bencoding of {seq: timestamp, v: dns} without its outer d...e;
- the DNS packet is a reply (id 0, flags 0x8000) holding only answers, every name relative to the key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from dnslib import QTYPE, RR, TXT, DNSError, DNSHeader, DNSRecord
from dnslib.buffer import BufferError as DnsBufferError
from dnslib.label import DNSLabelError

from cansync.discovery import zbase32

SIGNATURE_BYTES = 64
TIMESTAMP_BYTES = 8
PUBLIC_KEY_BYTES = 32
# The JS stack (bittorrent-dht, npm pkarr) refuses a DNS part of 1000 bytes, Rust allows 1000: build to the
# stricter limit so every relay takes our packets, parse to the looser one so we read every valid packet.
MAX_BUILD_DNS_BYTES = 999
MAX_PARSE_DNS_BYTES = 1000
MIN_PAYLOAD_BYTES = SIGNATURE_BYTES + TIMESTAMP_BYTES
MAX_PAYLOAD_BYTES = MIN_PAYLOAD_BYTES + MAX_PARSE_DNS_BYTES  # 1072
TXT_STRING_MAX = 255
DNS_REPLY_FLAGS = 0x8000  # QR=1 and nothing else; simple_dns (Rust) refuses a header with the Z bit set
_DNS_Z_BIT = 0x0040
DEFAULT_MINIMUM_TTL = 300
DEFAULT_MAXIMUM_TTL = 86400


class PkarrError(Exception):
    """Base of every pkarr packet error."""


class InvalidPublicKeyError(PkarrError):
    """Text or bytes that are not a usable pkarr (Ed25519) public key."""


class PacketTooLargeError(PkarrError):
    """The DNS part would exceed what relays accept."""


class InvalidSignedPacketError(PkarrError):
    """A payload that fails a check: length, signature, or DNS parsing."""


# --- keys -------------------------------------------------------------------------------------------

_FIELD_P = 2**255 - 19
_EDWARDS_D = (-121665 * pow(121666, -1, _FIELD_P)) % _FIELD_P


def is_ed25519_point(public_key: bytes) -> bool:
    """True when 32 bytes decompress to a curve point (the check Rust does when it parses a key).

    cryptography only notices a bad point when verifying; checking here gives the same early refusal
    as Rust: the point exists when x^2 = (y^2 - 1) / (d*y^2 + 1) has a square root mod p.
    """
    if len(public_key) != PUBLIC_KEY_BYTES:
        return False
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    y_squared = y * y % _FIELD_P
    numerator = (y_squared - 1) % _FIELD_P
    denominator = (_EDWARDS_D * y_squared + 1) % _FIELD_P
    x_squared = numerator * pow(denominator, -1, _FIELD_P) % _FIELD_P
    return x_squared == 0 or pow(x_squared, (_FIELD_P - 1) // 2, _FIELD_P) == 1


def public_key_from_z32(text: str) -> bytes:
    """Parse a key written as `<z32>` or `pk:<z32>`; refuse anything that is not a valid Ed25519 point."""
    bare = text[3:] if text.startswith("pk:") else text
    try:
        key = zbase32.decode(bare)
    except zbase32.ZBase32Error as exc:
        raise InvalidPublicKeyError(f"{text!r} is not a pkarr key: {exc}") from exc
    if len(key) != PUBLIC_KEY_BYTES:
        raise InvalidPublicKeyError(f"{text!r} is not a pkarr key: it decodes to {len(key)} bytes, not 32")
    if not is_ed25519_point(key):
        raise InvalidPublicKeyError(f"{text!r} is not a pkarr key: not an Ed25519 curve point")
    return key


@dataclass(frozen=True)
class Keypair:
    """An Ed25519 keypair made from its 32-byte RFC 8032 seed."""

    seed: bytes = field(repr=False)
    public_key: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Keypair:
        if len(seed) != 32:
            raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        private = Ed25519PrivateKey.from_private_bytes(seed)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(seed=bytes(seed), public_key=public)

    @property
    def z32(self) -> str:
        return zbase32.encode(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


# --- signable and timestamps ---------------------------------------------------------------------------


def signable(timestamp: int, dns: bytes) -> bytes:
    """The bytes that get signed: `3:seqi<ts>e1:v<len>:<dns>` (BEP44 dict body, no salt)."""
    return b"3:seqi%de1:v%d:" % (timestamp, len(dns)) + dns


class TimestampSource:
    """Publish timestamps in µs: wall clock, but strictly increasing per key (relays refuse a re-used seq)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last: dict[bytes, int] = {}

    def next(self, public_key: bytes) -> int:
        now_us = int(self._clock() * 1_000_000)
        stamp = max(now_us, self._last.get(public_key, -1) + 1)
        self._last[public_key] = stamp
        return stamp


# --- DNS ----------------------------------------------------------------------------------------------


def normalize_name(origin: str, name: str) -> str:
    """Make a record name relative to the key `origin` (its z32), as pkarr does."""
    if name.endswith("."):
        name = name[:-1]
    last_label = name.rsplit(".", 1)[-1]
    if last_label == origin:
        return name
    if last_label in ("@", ""):
        return origin
    return f"{name}.{origin}"


@dataclass(frozen=True)
class TxtRecord:
    """One TXT resource record; `value` is its character-strings joined and decoded as UTF-8."""

    name: str
    value: str
    ttl: int


def _txt_strings(value: str) -> list[bytes]:
    raw = value.encode("utf-8")
    if not raw:
        return [b""]
    return [raw[i : i + TXT_STRING_MAX] for i in range(0, len(raw), TXT_STRING_MAX)]


def encode_dns(origin: str, records: Iterable[TxtRecord]) -> bytes:
    """A compressed DNS reply packet (header id 0, flags 0x8000) holding these TXT answers."""
    message = DNSRecord(DNSHeader(id=0, bitmap=DNS_REPLY_FLAGS))
    for record in records:
        if not 0 <= record.ttl < 2**31:
            raise ValueError(f"TTL {record.ttl} of {record.name!r} is out of range")
        try:
            message.add_answer(
                RR(
                    normalize_name(origin, record.name),
                    QTYPE.TXT,
                    rdata=TXT(_txt_strings(record.value)),
                    ttl=record.ttl,
                )
            )
        except DNSLabelError as exc:
            raise ValueError(f"record name {record.name!r} is not a valid DNS name: {exc}") from exc
    return bytes(message.pack())  # pack() gives a bytearray


def decode_dns(dns: bytes) -> tuple[TxtRecord, ...]:
    """Parse a DNS packet and return its TXT answers (other record types are skipped)."""
    try:
        message = DNSRecord.parse(dns)
        if message.header.bitmap & _DNS_Z_BIT:
            raise InvalidSignedPacketError("DNS header has the reserved Z bit set (Rust pkarr refuses it)")
        records = []
        for answer in message.rr:
            if answer.rtype != QTYPE.TXT:
                continue
            joined = b"".join(answer.rdata.data)
            name = str(answer.rname)
            records.append(
                TxtRecord(
                    name=name[:-1] if name.endswith(".") else name,
                    value=joined.decode("utf-8", errors="replace"),
                    ttl=int(answer.ttl),
                )
            )
    except (DNSError, DnsBufferError, DNSLabelError, UnicodeError, ValueError, IndexError, AttributeError) as exc:
        raise InvalidSignedPacketError(f"the DNS packet does not parse: {exc}") from exc
    return tuple(records)


# --- signed packets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedPacket:
    """A verified (or freshly signed) pkarr packet."""

    public_key: bytes
    signature: bytes
    timestamp: int  # µs since the Unix epoch; also the BEP44 seq
    dns: bytes
    records: tuple[TxtRecord, ...]

    @classmethod
    def build(cls, keypair: Keypair, records: Sequence[TxtRecord], timestamp: int) -> SignedPacket:
        """Sign TXT records under `keypair`; refuse a DNS part over 999 bytes with PacketTooLargeError."""
        if not 0 <= timestamp < 2**64:
            raise ValueError(f"timestamp {timestamp} does not fit in 8 bytes")
        dns = encode_dns(keypair.z32, records)
        if len(dns) > MAX_BUILD_DNS_BYTES:
            raise PacketTooLargeError(
                f"the DNS packet for pk:{keypair.z32} is {len(dns)} bytes; relays accept at most "
                f"{MAX_BUILD_DNS_BYTES}: publish fewer or shorter records"
            )
        signature = keypair.sign(signable(timestamp, dns))
        return cls(keypair.public_key, signature, timestamp, dns, decode_dns(dns))

    @classmethod
    def from_relay_payload(cls, public_key: bytes, payload: bytes) -> SignedPacket:
        """Check a relay body (`sig || ts || dns`) against the key it was fetched for; raise if anything fails."""
        if not MIN_PAYLOAD_BYTES <= len(payload) <= MAX_PAYLOAD_BYTES:
            raise InvalidSignedPacketError(
                f"a relay payload is {MIN_PAYLOAD_BYTES}..{MAX_PAYLOAD_BYTES} bytes, got {len(payload)}"
            )
        if not is_ed25519_point(public_key):
            raise InvalidPublicKeyError(f"{public_key.hex()} is not an Ed25519 public key")
        signature = bytes(payload[:SIGNATURE_BYTES])
        timestamp = int.from_bytes(payload[SIGNATURE_BYTES:MIN_PAYLOAD_BYTES], "big")
        dns = bytes(payload[MIN_PAYLOAD_BYTES:])
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signable(timestamp, dns))
        except InvalidSignature as exc:
            raise InvalidSignedPacketError(
                f"bad signature on the packet for pk:{zbase32.encode(public_key)} (tampered or not signed by this key)"
            ) from exc
        return cls(bytes(public_key), signature, timestamp, dns, decode_dns(dns))

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedPacket:
        """Parse the canonical form `public_key(32) || relay payload`."""
        if len(data) < PUBLIC_KEY_BYTES:
            raise InvalidSignedPacketError(f"a signed packet starts with a 32-byte key, got {len(data)} bytes")
        return cls.from_relay_payload(bytes(data[:PUBLIC_KEY_BYTES]), bytes(data[PUBLIC_KEY_BYTES:]))

    @property
    def z32(self) -> str:
        return zbase32.encode(self.public_key)

    def relay_payload(self) -> bytes:
        return self.signature + self.timestamp.to_bytes(TIMESTAMP_BYTES, "big") + self.dns

    def to_bytes(self) -> bytes:
        return self.public_key + self.relay_payload()

    def txt(self, name: str) -> list[TxtRecord]:
        """TXT records named `name`, written either bare (`_can_sync`) or with the key (`_can_sync.<z32>`)."""
        origin = self.z32
        wanted = normalize_name(origin, name)
        bare = wanted[: -len(origin) - 1] if wanted.endswith("." + origin) else wanted
        return [r for r in self.records if r.name in (wanted, bare)]

    def ttl(self, minimum: int = DEFAULT_MINIMUM_TTL, maximum: int = DEFAULT_MAXIMUM_TTL) -> int:
        """The packet's cache lifetime: the smallest record TTL, clamped to [minimum, maximum]."""
        smallest = min((r.ttl for r in self.records), default=minimum)
        return max(minimum, min(maximum, smallest))

    def age_seconds(self, now: float) -> float:
        return now - self.timestamp / 1_000_000

    def more_recent_than(self, other: SignedPacket) -> bool:
        """pkarr's ordering: the larger timestamp wins; on a tie the lexicographically larger DNS bytes win."""
        if self.timestamp != other.timestamp:
            return self.timestamp > other.timestamp
        return self.dns > other.dns


HEX_ID = re.compile(r"[0-9a-fA-F]{64}")


def parse_endpoint_id_hex(text: str) -> str | None:
    """A 64-hex endpoint id, lowercased; None when `text` is anything else."""
    return text.lower() if HEX_ID.fullmatch(text) else None
