"""Pure pkarr pieces: z-base-32, keys, the signable, the signed-packet vector, DNS names and limits."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.discovery import zbase32
from cansync.discovery.pkarr_packet import (
    InvalidPublicKeyError,
    InvalidSignedPacketError,
    Keypair,
    PacketTooLargeError,
    PkarrError,
    SignedPacket,
    TimestampSource,
    TxtRecord,
    decode_dns,
    encode_dns,
    normalize_name,
    public_key_from_z32,
    signable,
)
from tests.discovery.ed25519_reference import public_key_from_seed

# From the pkarr Rust tests (keys.rs).
Z32_VECTOR_BYTES = bytes(
    [
        1,
        180,
        103,
        163,
        183,
        145,
        58,
        178,
        122,
        4,
        168,
        237,
        242,
        243,
        251,
        7,
        76,
        254,
        14,
        207,
        75,
        171,
        225,
        8,
        214,
        123,
        227,
        133,
        59,
        15,
        38,
        197,
    ]
)
Z32_VECTOR_TEXT = "yg4gxe7z1r7mr6orids9fh95y7gxhdsxjqi6nngsxxtakqaxr5no"
# Rust's `invalid_key` test string: non-zero pad bits, and not a curve point either.
RUST_INVALID_KEY = "c1bkg8tfsyy8wcedtmw4fwhdmm7bbzhgg3z58tf43m5ow8w9mbus"

# The npm pkarr client's packet for seed 0x07*32, ts 1700000000000000, `_can_sync` TXT "ab"*32, TTL 300.
VECTOR_SEED = bytes([7]) * 32
VECTOR_TS = 1_700_000_000_000_000
VECTOR_Z32 = "7jfgaa9nutjyixzikb7tgmsf9gkwq7iqz498zr1nd5ig1fng4esy"
VECTOR_PAYLOAD = bytes.fromhex(
    "a1e72d2d6566559eca2a35302d8c36f4a35cf4a2ca10ff4f0914d68767263c1e"
    "42c29a6a8d1c491e452019e58d35e8dee85ba0b5488c559578b7caaf9eeff803"
    "00060a24181e4000"
    "000080000000000100000000095f63616e5f73796e6334376a66676161396e75746a7969787a696b623774676d736639676b7771"
    "3769717a3439387a72316e6435696731666e673465737900001000010000012c004140" + "6162" * 32
)


def test_z32_matches_the_rust_vector() -> None:
    assert zbase32.encode(Z32_VECTOR_BYTES) == Z32_VECTOR_TEXT
    assert zbase32.decode(Z32_VECTOR_TEXT) == Z32_VECTOR_BYTES
    assert len(zbase32.encode(os.urandom(32))) == 52


@given(st.binary(max_size=64))
def test_z32_round_trips_any_bytes(data: bytes) -> None:
    assert zbase32.decode(zbase32.encode(data)) == data


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (Z32_VECTOR_TEXT.upper(), "not a z-base-32 character"),
        (Z32_VECTOR_TEXT[:-1] + "0", "not a z-base-32 character"),  # '0' is not in the alphabet
        (RUST_INVALID_KEY, "non-zero padding bits"),
        ("yyy", "not a valid z-base-32 length"),
    ],
)
def test_z32_decode_is_strict(text: str, why: str) -> None:
    with pytest.raises(zbase32.ZBase32Error, match=why):
        zbase32.decode(text)


def test_public_key_parsing_refuses_bad_keys_and_accepts_pk_prefix() -> None:
    assert public_key_from_z32(VECTOR_Z32) == public_key_from_seed(VECTOR_SEED)
    assert public_key_from_z32("pk:" + VECTOR_Z32) == public_key_from_seed(VECTOR_SEED)
    with pytest.raises(InvalidPublicKeyError, match="padding"):
        public_key_from_z32(RUST_INVALID_KEY)
    canonical_but_off_curve = RUST_INVALID_KEY[:-1] + "o"  # the same 32 bytes, canonically written
    with pytest.raises(InvalidPublicKeyError, match="not an Ed25519 curve point"):
        public_key_from_z32(canonical_but_off_curve)
    with pytest.raises(InvalidPublicKeyError, match="not 32"):
        public_key_from_z32(zbase32.encode(b"\x01" * 31))


def test_signable_bytes() -> None:
    assert signable(VECTOR_TS, b"") == b"3:seqi1700000000000000e1:v0:"
    assert signable(5, b"abc") == b"3:seqi5e1:v3:abc"


def test_deterministic_payload_matches_the_npm_vector() -> None:
    keypair = Keypair.from_seed(VECTOR_SEED)
    assert keypair.public_key == public_key_from_seed(VECTOR_SEED)
    assert keypair.z32 == VECTOR_Z32
    packet = SignedPacket.build(keypair, [TxtRecord("_can_sync", "ab" * 32, 300)], VECTOR_TS)
    assert len(packet.relay_payload()) == 223
    assert packet.relay_payload() == VECTOR_PAYLOAD
    assert packet.dns[:12].hex() == "000080000000000100000000"  # id 0, flags 0x8000, one answer
    parsed = SignedPacket.from_relay_payload(keypair.public_key, VECTOR_PAYLOAD)
    assert parsed == packet
    assert SignedPacket.from_bytes(packet.to_bytes()) == packet
    assert [r.value for r in parsed.txt("_can_sync")] == ["ab" * 32]
    assert parsed.txt(f"_can_sync.{VECTOR_Z32}") == parsed.txt("_can_sync")
    assert parsed.ttl() == 300 and parsed.ttl(minimum=0) == 300


@pytest.mark.parametrize("position", [0, 63, 64, 71, 72, 100, 222])
def test_any_tampered_byte_fails_verification(position: int) -> None:
    tampered = bytearray(VECTOR_PAYLOAD)
    tampered[position] ^= 0x01
    with pytest.raises(InvalidSignedPacketError, match="bad signature"):
        SignedPacket.from_relay_payload(public_key_from_seed(VECTOR_SEED), bytes(tampered))


def test_payload_under_another_key_fails() -> None:
    other = Keypair.from_seed(bytes([8]) * 32)
    with pytest.raises(InvalidSignedPacketError, match="bad signature"):
        SignedPacket.from_relay_payload(other.public_key, VECTOR_PAYLOAD)


@pytest.mark.parametrize("length", [0, 71, 1073])
def test_payload_length_bounds(length: int) -> None:
    with pytest.raises(InvalidSignedPacketError, match="72..1072"):
        SignedPacket.from_relay_payload(public_key_from_seed(VECTOR_SEED), b"\x00" * length)


def test_normalize_name() -> None:
    origin = VECTOR_Z32
    assert normalize_name(origin, "@") == origin
    assert normalize_name(origin, ".") == origin
    assert normalize_name(origin, "") == origin
    assert normalize_name(origin, "foo.") == f"foo.{origin}"
    assert normalize_name(origin, f"foo.{origin}") == f"foo.{origin}"
    assert normalize_name(origin, f"foo.{origin}.") == f"foo.{origin}"
    assert normalize_name(origin, "_can_sync") == f"_can_sync.{origin}"


def test_long_txt_values_are_chunked_and_joined() -> None:
    keypair = Keypair.from_seed(VECTOR_SEED)
    value = "x" * 600
    packet = SignedPacket.build(keypair, [TxtRecord("_long", value, 60)], VECTOR_TS)
    assert packet.txt("_long")[0].value == value
    # 600 bytes travel as three character-strings: 255, 255, 90 (each prefixed by its length byte)
    assert bytes([255]) + b"x" * 255 + bytes([255]) in packet.dns and bytes([90]) + b"x" * 90 in packet.dns


def test_bare_txt_names_are_accepted_too() -> None:
    keypair = Keypair.from_seed(VECTOR_SEED)
    # A packet whose record names were never made relative to the key (signed by hand).
    from dnslib import QTYPE, RR, TXT, DNSHeader, DNSRecord

    message = DNSRecord(DNSHeader(id=0, bitmap=0x8000))
    message.add_answer(RR("_can_sync", QTYPE.TXT, rdata=TXT(["cd" * 32]), ttl=300))
    dns = bytes(message.pack())
    payload = keypair.sign(signable(VECTOR_TS, dns)) + VECTOR_TS.to_bytes(8, "big") + dns
    packet = SignedPacket.from_relay_payload(keypair.public_key, payload)
    assert [r.value for r in packet.txt("_can_sync")] == ["cd" * 32]


def test_oversized_packet_is_refused_with_a_clear_error() -> None:
    keypair = Keypair.from_seed(VECTOR_SEED)
    with pytest.raises(PacketTooLargeError, match=r"is 1\d\d\d bytes; relays accept at most 999"):
        SignedPacket.build(keypair, [TxtRecord("_big", "y" * 1000, 60)], VECTOR_TS)


def test_dns_header_with_z_bit_is_refused() -> None:
    dns = bytearray(encode_dns(VECTOR_Z32, [TxtRecord("_a", "b", 30)]))
    dns[3] |= 0x40
    with pytest.raises(InvalidSignedPacketError, match="Z bit"):
        decode_dns(bytes(dns))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_dns_parser_only_raises_pkarr_errors(garbage: bytes) -> None:
    try:
        decode_dns(garbage)
    except PkarrError:
        pass


@settings(max_examples=200)
@given(st.binary(min_size=12, max_size=200), st.integers(0, 199))
def test_dns_parser_survives_corrupted_real_packets(noise: bytes, cut: int) -> None:
    real = encode_dns(VECTOR_Z32, [TxtRecord("_can_sync", "ab" * 32, 300), TxtRecord("_iroh", "addr=1.2.3.4:5", 30)])
    mangled = real[:cut] + noise
    try:
        decode_dns(mangled)
    except PkarrError:
        pass


def test_more_recent_than() -> None:
    keypair = Keypair.from_seed(VECTOR_SEED)
    old = SignedPacket.build(keypair, [TxtRecord("_a", "1", 30)], 100)
    new = SignedPacket.build(keypair, [TxtRecord("_a", "1", 30)], 101)
    assert new.more_recent_than(old) and not old.more_recent_than(new)
    low = SignedPacket.build(keypair, [TxtRecord("_a", "1", 30)], 100)
    high = SignedPacket.build(keypair, [TxtRecord("_a", "2", 30)], 100)
    assert high.more_recent_than(low) and not low.more_recent_than(high)
    assert not low.more_recent_than(dataclasses.replace(low))


def test_timestamps_increase_per_key_even_when_the_clock_stalls_or_goes_back() -> None:
    readings = iter([10.0, 10.0, 9.0, 10.0, 20.0])
    source = TimestampSource(clock=lambda: next(readings))
    a, b = b"a" * 32, b"b" * 32
    assert source.next(a) == 10_000_000
    assert source.next(a) == 10_000_001
    assert source.next(a) == 10_000_002  # clock went back: still increasing
    assert source.next(b) == 10_000_000  # another key has its own sequence
    assert source.next(a) == 20_000_000
