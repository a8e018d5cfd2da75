"""The wire boundary of the peer protocol (`wire.peer_messages`): every valid message round-trips, and every
malformed id, impossible number, over-long list or text, and foreign frame is refused with PeerProtocolError
(and nothing else) before the session sees it."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core import messages as msg
from cansync.core.ids import is_asset_id, is_endpoint_id
from cansync.core.metadata import MetaValue
from cansync.wire.addresses import parse_socket_addr
from cansync.wire.frames import MESSAGE_CLASSES, FrameError, FrameType, message_type
from cansync.wire.pb import can_sync_pb2, peer_pb2
from cansync.wire.peer_messages import (
    MAX_ADDRS,
    MAX_ASSET_SIZE,
    MAX_CLOCK,
    MAX_DESCRIPTION_CHARS,
    MAX_DIGESTS,
    MAX_EXTENSION_CHARS,
    MAX_MIME_CHARS,
    MAX_NAME_CHARS,
    MAX_PEERS,
    MAX_REASON_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_URL_CHARS,
    MAX_WANTS,
    PeerProtocolError,
    decode_asset_end,
    decode_asset_header,
    decode_control,
    encode_asset_header,
    encode_control,
    meta_from_record,
    record_from_meta,
)
from tests.fuzz.proto_strategies import messages_of, mutated

GOOD = "ab" * 32
GOOD2 = "cd" * 32
ENDPOINT = "ef" * 32
BAD_HASHES = [
    pytest.param("a" * 63, id="63-chars"),
    pytest.param("a" * 65, id="65-chars"),
    pytest.param("AB" * 32, id="upper-case"),
    pytest.param("ab" * 31 + "Ab", id="one-upper"),
    pytest.param("g" * 64, id="non-hex"),
    pytest.param("ab" * 31 + "a ", id="space"),
    pytest.param("ab" * 31 + "a\x00", id="nul"),
    pytest.param("\u0661" * 64, id="arabic-digits"),
    pytest.param("", id="empty"),
]
CONTROL_TYPES = [
    FrameType.DIGEST_REQUEST,
    FrameType.DIGEST_BATCH,
    FrameType.WANT,
    FrameType.ADVERTISE,
    FrameType.META_CHANGE,
    FrameType.PEER_LIST,
    FrameType.ASSET_UNAVAILABLE,
    FrameType.GOODBYE,
    FrameType.KEEPALIVE,
    FrameType.RECONCILE,
]

Decoder = Callable[[bytes], object]


def control(ftype: FrameType) -> Decoder:
    return lambda payload: decode_control(ftype, payload)


def refused(decoder: Decoder, message: Message | bytes) -> PeerProtocolError:
    payload = message if isinstance(message, bytes) else message.SerializeToString()
    with pytest.raises(PeerProtocolError) as caught:
        decoder(payload)
    assert type(caught.value) is PeerProtocolError
    assert str(caught.value)  # a message a user can act on
    return caught.value


def decoded(message: Message) -> msg.ControlMessage:
    return decode_control(message_type(message), message.SerializeToString())


# ---------------------------------------------------------------------------------------------- builders


def digest_pb(**fields: Any) -> can_sync_pb2.AssetDigest:
    values: dict[str, Any] = dict(hash=GOOD, timestamp=1_700_000_000_000, size=10, meta_updated_ms=5, changed_seq=3)
    values.update(fields)
    return can_sync_pb2.AssetDigest(**values)


def batch_pb(*digests: can_sync_pb2.AssetDigest, **fields: Any) -> peer_pb2.DigestBatch:
    values: dict[str, Any] = dict(watermark=9, full=False, last=True)
    values.update(fields)
    return peer_pb2.DigestBatch(digests=list(digests or [digest_pb()]), **values)


def item_pb(**fields: Any) -> peer_pb2.WantItem:
    values: dict[str, Any] = dict(hash=GOOD, offset=0, request_id=1)
    values.update(fields)
    return peer_pb2.WantItem(**values)


def want_pb(*items: peer_pb2.WantItem) -> peer_pb2.Want:
    return peer_pb2.Want(items=list(items or [item_pb()]))


def advertise_pb(*hashes: str) -> peer_pb2.Advertise:
    return peer_pb2.Advertise(digests=[can_sync_pb2.AssetDigest(hash=h) for h in hashes or [GOOD]])


def meta_change_pb(**fields: Any) -> peer_pb2.MetaChange:
    values: dict[str, Any] = dict(hash=GOOD, tags=["a", "b"], description="d", trashed=False, updated_ms=5, origin="")
    values.update(fields)
    return peer_pb2.MetaChange(update=can_sync_pb2.MetaUpdate(**values))


def peer_pb(**fields: Any) -> peer_pb2.PeerAddress:
    values: dict[str, Any] = dict(endpoint_id=ENDPOINT, addrs=["10.0.0.1:4000"], relay_url="https://relay.example")
    values.update(fields)
    return peer_pb2.PeerAddress(**values)


def peer_list_pb(*peers: peer_pb2.PeerAddress) -> peer_pb2.PeerList:
    return peer_pb2.PeerList(peers=list(peers or [peer_pb()]))


def unavailable_pb(**fields: Any) -> peer_pb2.AssetUnavailable:
    values: dict[str, Any] = dict(hash=GOOD, reason="not in the store", request_id=3)
    values.update(fields)
    return peer_pb2.AssetUnavailable(**values)


def meta_pb(**fields: Any) -> can_sync_pb2.AssetMeta:
    values: dict[str, Any] = dict(
        hash=GOOD,
        timestamp=1_700_000_000_000,
        size=100,
        mime_type="text/plain",
        tags=["a"],
        description="d",
        human_file_name="f.txt",
        human_readable_path="/x/f.txt",
        application="app",
        user="u",
        trashed=False,
        meta_updated_ms=7,
        meta_origin=ENDPOINT,
        extension="txt",
    )
    values.update(fields)
    return can_sync_pb2.AssetMeta(**values)


def header_pb(offset: int = 0, request_id: int = 1, **meta_fields: Any) -> peer_pb2.AssetHeader:
    return peer_pb2.AssetHeader(meta=meta_pb(**meta_fields), offset=offset, request_id=request_id)


def end_pb(**fields: Any) -> peer_pb2.AssetEnd:
    values: dict[str, Any] = dict(hash=GOOD, total=100)
    values.update(fields)
    return peer_pb2.AssetEnd(**values)


# ---------------------------------------------------------------------------------------------- baselines

BASELINES: list[tuple[str, Decoder, Message]] = [
    ("DigestRequest", control(FrameType.DIGEST_REQUEST), peer_pb2.DigestRequest(since=4)),
    ("DigestBatch", control(FrameType.DIGEST_BATCH), batch_pb()),
    ("Want", control(FrameType.WANT), want_pb()),
    ("Advertise", control(FrameType.ADVERTISE), advertise_pb()),
    ("MetaChange", control(FrameType.META_CHANGE), meta_change_pb()),
    ("PeerList", control(FrameType.PEER_LIST), peer_list_pb()),
    ("AssetUnavailable", control(FrameType.ASSET_UNAVAILABLE), unavailable_pb()),
    ("Goodbye", control(FrameType.GOODBYE), peer_pb2.Goodbye(reason="bye")),
    ("KeepAlive", control(FrameType.KEEPALIVE), peer_pb2.KeepAlive()),
    ("AssetHeader", decode_asset_header, header_pb()),
    ("AssetEnd", decode_asset_end, end_pb()),
]


@pytest.mark.parametrize("decoder, message", [pytest.param(d, m, id=n) for n, d, m in BASELINES])
def test_the_baseline_of_every_refusal_below_is_accepted(decoder: Decoder, message: Message) -> None:
    # each refusal below changes one field of these: the refusal is that field's doing
    assert decoder(message.SerializeToString()) is not None


def test_decoded_values_of_the_baselines() -> None:
    assert decoded(peer_pb2.DigestRequest(since=4)) == msg.DigestRequest(4)
    assert decoded(batch_pb()) == msg.DigestBatch(
        (msg.Digest(GOOD, 1_700_000_000_000, False, 5, 10, 3),), 9, False, True
    )
    assert decoded(want_pb()) == msg.Want((msg.WantItem(GOOD, 0, 1),))
    assert decoded(advertise_pb(GOOD, GOOD2)) == msg.Advertise((GOOD, GOOD2))
    assert decoded(meta_change_pb()) == msg.MetaChange(GOOD, MetaValue(5, "", ("a", "b"), "d", False))
    assert decoded(peer_list_pb()) == msg.PeerList(
        (msg.PeerInfo(ENDPOINT, ("10.0.0.1:4000",), "https://relay.example"),)
    )
    assert decoded(unavailable_pb()) == msg.AssetUnavailable(GOOD, "not in the store", 3)
    assert decoded(peer_pb2.Goodbye(reason="bye")) == msg.Goodbye("bye")
    assert decoded(peer_pb2.KeepAlive()) == msg.KeepAlive()
    header = decode_asset_header(header_pb(offset=40, request_id=8).SerializeToString())
    assert (header.hash, header.size, header.offset, header.request_id) == (GOOD, 100, 40, 8)
    assert header.record == record_from_meta(meta_pb())
    assert decode_asset_end(end_pb().SerializeToString()) == msg.AssetEnd(GOOD, 100)


def test_an_empty_payload_is_the_default_message_where_that_is_valid() -> None:
    assert decode_control(FrameType.DIGEST_REQUEST, b"") == msg.DigestRequest(0)
    assert decode_control(FrameType.DIGEST_BATCH, b"") == msg.DigestBatch((), 0, False, False)
    assert decode_control(FrameType.WANT, b"") == msg.Want(())
    assert decode_control(FrameType.ADVERTISE, b"") == msg.Advertise(())
    assert decode_control(FrameType.PEER_LIST, b"") == msg.PeerList(())
    assert decode_control(FrameType.GOODBYE, b"") == msg.Goodbye("")
    assert decode_control(FrameType.KEEPALIVE, b"") == msg.KeepAlive()


@pytest.mark.parametrize(
    "decoder",
    [
        pytest.param(control(FrameType.META_CHANGE), id="MetaChange"),
        pytest.param(control(FrameType.ASSET_UNAVAILABLE), id="AssetUnavailable"),
        pytest.param(decode_asset_header, id="AssetHeader"),
        pytest.param(decode_asset_end, id="AssetEnd"),
    ],
)
def test_an_empty_payload_is_refused_where_a_hash_is_required(decoder: Decoder) -> None:
    refused(decoder, b"")


# ---------------------------------------------------------------------------------------------- bad hashes

HASH_FIELDS: list[tuple[str, Decoder, Callable[[str], Message]]] = [
    ("DigestBatch", control(FrameType.DIGEST_BATCH), lambda h: batch_pb(digest_pb(), digest_pb(hash=h))),
    ("Want", control(FrameType.WANT), lambda h: want_pb(item_pb(), item_pb(hash=h, request_id=2))),
    ("Advertise", control(FrameType.ADVERTISE), lambda h: advertise_pb(GOOD, h)),
    ("MetaChange", control(FrameType.META_CHANGE), lambda h: meta_change_pb(hash=h)),
    ("AssetUnavailable", control(FrameType.ASSET_UNAVAILABLE), lambda h: unavailable_pb(hash=h)),
    ("AssetHeader", decode_asset_header, lambda h: header_pb(hash=h)),
    ("AssetEnd", decode_asset_end, lambda h: end_pb(hash=h)),
]


@pytest.mark.parametrize("bad", BAD_HASHES)
@pytest.mark.parametrize("decoder, build", [pytest.param(d, b, id=n) for n, d, b in HASH_FIELDS])
def test_a_bad_hash_is_refused_in_every_message(decoder: Decoder, build: Callable[[str], Message], bad: str) -> None:
    assert decoder(build(GOOD2).SerializeToString()) is not None  # the same message with a good hash passes
    refused(decoder, build(bad))


# ---------------------------------------------------------------------------------------------- numbers

TOO_BIG_SIZE = MAX_ASSET_SIZE + 1
NUMBER_REFUSALS: list[tuple[str, Decoder, Message]] = [
    ("since-negative", control(FrameType.DIGEST_REQUEST), peer_pb2.DigestRequest(since=-1)),
    ("since-int64-min", control(FrameType.DIGEST_REQUEST), peer_pb2.DigestRequest(since=-(2**63))),
    ("since-over-clock", control(FrameType.DIGEST_REQUEST), peer_pb2.DigestRequest(since=MAX_CLOCK + 1)),
    ("watermark-negative", control(FrameType.DIGEST_BATCH), batch_pb(watermark=-1)),
    ("watermark-over-clock", control(FrameType.DIGEST_BATCH), batch_pb(watermark=MAX_CLOCK + 1)),
    ("digest-timestamp-negative", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(timestamp=-1))),
    ("digest-timestamp-over", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(timestamp=MAX_CLOCK + 1))),
    ("digest-meta-updated-negative", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(meta_updated_ms=-1))),
    ("digest-changed-seq-negative", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(changed_seq=-1))),
    ("digest-size-over", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(size=TOO_BIG_SIZE))),
    ("digest-size-uint64-max", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(size=2**64 - 1))),
    ("want-offset-over", control(FrameType.WANT), want_pb(item_pb(offset=TOO_BIG_SIZE))),
    ("want-request-id-zero", control(FrameType.WANT), want_pb(item_pb(request_id=0))),
    ("want-request-id-over", control(FrameType.WANT), want_pb(item_pb(request_id=MAX_CLOCK + 1))),
    ("want-request-id-uint64-max", control(FrameType.WANT), want_pb(item_pb(request_id=2**64 - 1))),
    ("meta-updated-negative", control(FrameType.META_CHANGE), meta_change_pb(updated_ms=-1)),
    ("meta-updated-over", control(FrameType.META_CHANGE), meta_change_pb(updated_ms=MAX_CLOCK + 1)),
    ("unavailable-request-id-over", control(FrameType.ASSET_UNAVAILABLE), unavailable_pb(request_id=MAX_CLOCK + 1)),
    ("header-offset-past-size", decode_asset_header, header_pb(offset=101, size=100)),
    ("header-offset-over", decode_asset_header, header_pb(offset=TOO_BIG_SIZE, size=MAX_ASSET_SIZE)),
    ("header-size-over", decode_asset_header, header_pb(size=TOO_BIG_SIZE)),
    ("header-request-id-zero", decode_asset_header, header_pb(request_id=0)),
    ("header-request-id-over", decode_asset_header, header_pb(request_id=MAX_CLOCK + 1)),
    ("header-timestamp-negative", decode_asset_header, header_pb(timestamp=-1)),
    ("header-meta-updated-negative", decode_asset_header, header_pb(meta_updated_ms=-1)),
    ("end-total-over", decode_asset_end, end_pb(total=TOO_BIG_SIZE)),
]


@pytest.mark.parametrize("decoder, message", [pytest.param(d, m, id=n) for n, d, m in NUMBER_REFUSALS])
def test_out_of_range_numbers_are_refused(decoder: Decoder, message: Message) -> None:
    refused(decoder, message)


NUMBER_EDGES: list[tuple[str, Decoder, Message]] = [
    ("since-max", control(FrameType.DIGEST_REQUEST), peer_pb2.DigestRequest(since=MAX_CLOCK)),
    ("watermark-max", control(FrameType.DIGEST_BATCH), batch_pb(watermark=MAX_CLOCK)),
    ("digest-size-max", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(size=MAX_ASSET_SIZE))),
    ("digest-zeroes", control(FrameType.DIGEST_BATCH), batch_pb(digest_pb(timestamp=0, meta_updated_ms=0, size=0))),
    ("want-offset-max", control(FrameType.WANT), want_pb(item_pb(offset=MAX_ASSET_SIZE))),
    ("want-request-id-one", control(FrameType.WANT), want_pb(item_pb(request_id=1))),
    ("want-request-id-max", control(FrameType.WANT), want_pb(item_pb(request_id=MAX_CLOCK))),
    ("meta-updated-zero", control(FrameType.META_CHANGE), meta_change_pb(updated_ms=0)),
    ("unavailable-request-id-max", control(FrameType.ASSET_UNAVAILABLE), unavailable_pb(request_id=MAX_CLOCK)),
    ("header-offset-at-size", decode_asset_header, header_pb(offset=100, size=100)),
    ("header-empty-asset", decode_asset_header, header_pb(offset=0, size=0)),
    ("header-size-max", decode_asset_header, header_pb(offset=MAX_ASSET_SIZE, size=MAX_ASSET_SIZE)),
    ("end-total-max", decode_asset_end, end_pb(total=MAX_ASSET_SIZE)),
    ("end-total-zero", decode_asset_end, end_pb(total=0)),
]


@pytest.mark.parametrize("decoder, message", [pytest.param(d, m, id=n) for n, d, m in NUMBER_EDGES])
def test_numbers_at_the_edge_of_their_range_are_accepted(decoder: Decoder, message: Message) -> None:
    assert decoder(message.SerializeToString()) is not None


# ---------------------------------------------------------------------------------------------- counts


def _hashes(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(1, n + 1)]


@cache
def _count_case(kind: str, n: int) -> tuple[FrameType, bytes]:
    """A message with `n` of the capped things (built once: some are large)."""
    message: Message
    if kind == "DigestBatch":
        message = batch_pb(*[digest_pb(hash=h) for h in _hashes(n)])
    elif kind == "Advertise":
        message = advertise_pb(*_hashes(n))
    elif kind == "Want":
        message = want_pb(*[item_pb(hash=h) for h in _hashes(n)])
    elif kind == "PeerList":
        message = peer_list_pb(*[peer_pb(endpoint_id=h) for h in _hashes(n)])
    elif kind == "PeerList addrs":
        message = peer_list_pb(peer_pb(addrs=[f"10.0.0.1:{port}" for port in range(1, n + 1)]))
    elif kind == "MetaChange tags":
        message = meta_change_pb(tags=[f"t{i}" for i in range(n)])
    elif kind == "AssetHeader tags":
        message = header_pb(tags=[f"t{i}" for i in range(n)])
    else:
        raise AssertionError(kind)
    ftype = message_type(message)
    return ftype, message.SerializeToString()


def _decode_any(ftype: FrameType, payload: bytes) -> object:
    return decode_asset_header(payload) if ftype is FrameType.ASSET_HEADER else decode_control(ftype, payload)


CAPS = [
    pytest.param("DigestBatch", MAX_DIGESTS, id="DigestBatch"),
    pytest.param("Advertise", MAX_DIGESTS, id="Advertise"),
    pytest.param("Want", MAX_WANTS, id="Want"),
    pytest.param("PeerList", MAX_PEERS, id="PeerList"),
    pytest.param("PeerList addrs", MAX_ADDRS, id="PeerList-addrs"),
    pytest.param("MetaChange tags", MAX_TAGS, id="MetaChange-tags"),
    pytest.param("AssetHeader tags", MAX_TAGS, id="AssetHeader-tags"),
]


@pytest.mark.parametrize("kind, cap", CAPS)
def test_a_count_at_its_cap_is_accepted(kind: str, cap: int) -> None:
    ftype, payload = _count_case(kind, cap)
    assert _decode_any(ftype, payload) is not None


@pytest.mark.parametrize("kind, cap", CAPS)
def test_a_count_over_its_cap_is_refused(kind: str, cap: int) -> None:
    ftype, payload = _count_case(kind, cap + 1)
    with pytest.raises(PeerProtocolError, match="more than"):
        _decode_any(ftype, payload)


def test_the_caps_leave_room_for_what_the_protocol_sends() -> None:
    from cansync.core.protocol import DIGESTS_PER_FRAME, WANTS_PER_FRAME

    assert DIGESTS_PER_FRAME <= MAX_DIGESTS
    assert WANTS_PER_FRAME <= MAX_WANTS


# ---------------------------------------------------------------------------------------------- texts

ON_GOODBYE = control(FrameType.GOODBYE)
ON_UNAVAILABLE = control(FrameType.ASSET_UNAVAILABLE)
ON_META_CHANGE = control(FrameType.META_CHANGE)
ON_PEER_LIST = control(FrameType.PEER_LIST)
ON_HEADER = decode_asset_header
TEXT_FIELDS: list[tuple[str, Decoder, Callable[[str], Message], int]] = [
    ("Goodbye reason", ON_GOODBYE, lambda t: peer_pb2.Goodbye(reason=t), MAX_REASON_CHARS),
    ("AssetUnavailable reason", ON_UNAVAILABLE, lambda t: unavailable_pb(reason=t), MAX_REASON_CHARS),
    ("MetaChange description", ON_META_CHANGE, lambda t: meta_change_pb(description=t), MAX_DESCRIPTION_CHARS),
    ("MetaChange tag", ON_META_CHANGE, lambda t: meta_change_pb(tags=["ok", t]), MAX_TAG_CHARS),
    ("PeerList relay_url", ON_PEER_LIST, lambda t: peer_list_pb(peer_pb(relay_url="https://" + t)), MAX_URL_CHARS - 8),
    ("AssetHeader mime_type", ON_HEADER, lambda t: header_pb(mime_type=t), MAX_MIME_CHARS),
    ("AssetHeader tag", ON_HEADER, lambda t: header_pb(tags=[t]), MAX_TAG_CHARS),
    ("AssetHeader description", ON_HEADER, lambda t: header_pb(description=t), MAX_DESCRIPTION_CHARS),
    ("AssetHeader human_file_name", ON_HEADER, lambda t: header_pb(human_file_name=t), MAX_NAME_CHARS),
    ("AssetHeader human_readable_path", ON_HEADER, lambda t: header_pb(human_readable_path=t), MAX_NAME_CHARS),
    ("AssetHeader application", ON_HEADER, lambda t: header_pb(application=t), MAX_NAME_CHARS),
    ("AssetHeader user", ON_HEADER, lambda t: header_pb(user=t), MAX_NAME_CHARS),
    ("AssetHeader extension", ON_HEADER, lambda t: header_pb(extension=t), MAX_EXTENSION_CHARS),
]
TEXT_CASES = [pytest.param(d, b, cap, id=n) for n, d, b, cap in TEXT_FIELDS]


@pytest.mark.parametrize("decoder, build, cap", TEXT_CASES)
def test_a_text_at_its_cap_is_accepted_counting_characters(
    decoder: Decoder, build: Callable[[str], Message], cap: int
) -> None:
    assert decoder(build("x" * cap).SerializeToString()) is not None
    assert decoder(build("é" * cap).SerializeToString()) is not None  # the cap counts characters, not bytes


@pytest.mark.parametrize("decoder, build, cap", TEXT_CASES)
def test_a_text_over_its_cap_is_refused(decoder: Decoder, build: Callable[[str], Message], cap: int) -> None:
    refused(decoder, build("x" * (cap + 1)))


@pytest.mark.parametrize("where", ["start", "middle", "end", "alone"])
@pytest.mark.parametrize("decoder, build, cap", TEXT_CASES)
def test_a_text_with_a_nul_is_refused(decoder: Decoder, build: Callable[[str], Message], cap: int, where: str) -> None:
    text = {"start": "\x00abc", "middle": "ab\x00c", "end": "abc\x00", "alone": "\x00"}[where]
    refused(decoder, build(text))


@pytest.mark.parametrize(
    "decoder, message",
    [
        pytest.param(control(FrameType.GOODBYE), b"\x0a\x02\xc3\x28", id="Goodbye"),
        pytest.param(control(FrameType.ASSET_UNAVAILABLE), b"\x12\x01\xff", id="AssetUnavailable-reason"),
        pytest.param(control(FrameType.META_CHANGE), b"\x0a\x03\x1a\x01\x80", id="MetaChange-description"),
        pytest.param(control(FrameType.PEER_LIST), b"\x0a\x03\x1a\x01\xfe", id="PeerList-relay"),
        pytest.param(decode_asset_end, b"\x0a\x01\xff", id="AssetEnd-hash"),
    ],
)
def test_a_string_field_that_is_not_utf8_is_refused(decoder: Decoder, message: bytes) -> None:
    refused(decoder, message)


# ---------------------------------------------------------------------------------------------- one-off rules


def test_a_want_naming_one_asset_twice_is_refused() -> None:
    refused(control(FrameType.WANT), want_pb(item_pb(hash=GOOD, request_id=1), item_pb(hash=GOOD, request_id=2)))
    refused(
        control(FrameType.WANT),
        want_pb(item_pb(hash=GOOD), item_pb(hash=GOOD2, request_id=2), item_pb(hash=GOOD, offset=5, request_id=3)),
    )
    assert decoded(want_pb(item_pb(hash=GOOD), item_pb(hash=GOOD2, request_id=1))) == msg.Want(
        (msg.WantItem(GOOD, 0, 1), msg.WantItem(GOOD2, 0, 1))
    )


@pytest.mark.parametrize(
    "endpoint",
    ["", "ef" * 31, "ef" * 32 + "0", "EF" * 32, "zz" * 32, "ef" * 31 + "e\x00", "12:34:56", "\u0661" * 64],
)
def test_a_peer_list_entry_that_is_not_an_endpoint_id_is_refused(endpoint: str) -> None:
    refused(control(FrameType.PEER_LIST), peer_list_pb(peer_pb(), peer_pb(endpoint_id=endpoint)))


BAD_ADDRS = [
    "",
    "10.0.0.1",
    "10.0.0.1:",
    ":4000",
    "10.0.0.1:0",
    "10.0.0.1:65536",
    "10.0.0.1:-1",
    "10.0.0.1:+80",
    "10.0.0.1: 80",
    "10.0.0.1:80 ",
    " 10.0.0.1:80",
    "10.0.0.1:80\n",
    "10.0.0.1:99999999999999999999",
    "10.0.0.256:80",
    "010.0.0.1:80",
    "example.com:80",
    "localhost:80",
    "::1:80",  # IPv6 must be in brackets
    "[::1]",
    "[::1]:",
    "[10.0.0.1]:80",  # IPv4 must not be
    "[example.com]:80",
    "http://10.0.0.1:80",
    "10.0.0.1:80\x00",
]


@pytest.mark.parametrize("addr", BAD_ADDRS)
def test_a_peer_list_address_that_is_not_ip_port_is_refused(addr: str) -> None:
    refused(control(FrameType.PEER_LIST), peer_list_pb(peer_pb(addrs=["10.0.0.1:4000", addr])))


@pytest.mark.parametrize(
    "addr",
    [
        pytest.param("[fe80::1%\x00]:80", id="nul-in-zone-id"),
        pytest.param("[fe80::1%eth\x000]:80", id="nul-inside-zone-id"),
        pytest.param("[fe80::1%" + "z" * 5_000 + "]:80", id="5000-char-zone-id"),
        pytest.param("[fe80::1%" + "z" * 1_000_000 + "]:80", id="megabyte-zone-id"),
    ],
)
def test_a_peer_list_address_with_a_nul_or_of_unbounded_length_is_refused(addr: str) -> None:
    """An address is a text from the peer like any other: no NUL, and bounded. The IPv6 zone id (after
    `%`) is free text to `ipaddress`, so it must not become a way to smuggle either in."""
    refused(control(FrameType.PEER_LIST), peer_list_pb(peer_pb(addrs=[addr])))


@pytest.mark.parametrize(
    "addr",
    [
        pytest.param("10.0.0.1:\u0668\u0660", id="arabic-indic-80"),
        pytest.param("10.0.0.1:\uff18\uff10", id="full-width-80"),
        pytest.param("[::1]:\u0664\u0664\u0663", id="arabic-indic-443"),
    ],
)
def test_a_peer_list_port_in_non_ascii_digits_is_refused(addr: str) -> None:
    """`str.isdigit` and `int` take any Unicode decimal digit; an `ip:port` port is ASCII digits only
    (what passes is kept verbatim and handed on to the transport and to other peers)."""
    refused(control(FrameType.PEER_LIST), peer_list_pb(peer_pb(addrs=[addr])))


@pytest.mark.parametrize("addr", ["10.0.0.1:1", "255.255.255.255:65535", "[::1]:4000", "[2001:db8::1]:443"])
def test_a_peer_list_address_of_ip_and_port_is_accepted(addr: str) -> None:
    assert decoded(peer_list_pb(peer_pb(addrs=[addr]))) == msg.PeerList(
        (msg.PeerInfo(ENDPOINT, (addr,), "https://relay.example"),)
    )


@pytest.mark.parametrize(
    "relay",
    [
        "relay.example",
        "ftp://relay.example",
        "javascript:alert(1)",
        "HTTPS://relay.example",
        "//relay.example",
        "ws://r",
    ],
)
def test_a_relay_url_that_is_not_http_is_refused(relay: str) -> None:
    refused(control(FrameType.PEER_LIST), peer_list_pb(peer_pb(relay_url=relay)))


@pytest.mark.parametrize("relay", ["", "http://relay.example", "https://relay.example:8443/path"])
def test_an_http_relay_url_or_none_is_accepted(relay: str) -> None:
    peers = decoded(peer_list_pb(peer_pb(relay_url=relay)))
    assert isinstance(peers, msg.PeerList) and peers.peers[0].relay_url == relay


@pytest.mark.parametrize("origin", ["me", "ef" * 31, "EF" * 32, "ef" * 32 + "0", "local", " "])
def test_a_meta_change_origin_that_is_not_an_endpoint_id_is_refused(origin: str) -> None:
    refused(control(FrameType.META_CHANGE), meta_change_pb(origin=origin))
    refused(decode_asset_header, header_pb(meta_origin=origin))


def test_a_meta_change_origin_may_be_empty_or_an_endpoint_id() -> None:
    assert decoded(meta_change_pb(origin="")) == msg.MetaChange(GOOD, MetaValue(5, "", ("a", "b"), "d"))
    assert decoded(meta_change_pb(origin=ENDPOINT)) == msg.MetaChange(GOOD, MetaValue(5, ENDPOINT, ("a", "b"), "d"))


def test_a_meta_change_without_its_update_is_refused() -> None:
    refused(control(FrameType.META_CHANGE), peer_pb2.MetaChange())


def test_an_asset_header_without_its_record_is_refused() -> None:
    refused(decode_asset_header, peer_pb2.AssetHeader(offset=0, request_id=1))


def test_an_unavailable_naming_no_request_is_refused() -> None:
    # request ids are never 0: an AssetUnavailable answers a Want, and every Want names its request
    refused(control(FrameType.ASSET_UNAVAILABLE), unavailable_pb(request_id=0))


# ---------------------------------------------------------------------------------------------- foreign frames

FOREIGN_FRAMES: list[tuple[FrameType, bytes]] = [
    (FrameType.HELLO, peer_pb2.Hello(protocol_version=2, endpoint_id=b"\x01" * 32).SerializeToString()),
    (FrameType.PROOF, peer_pb2.Proof(mac=b"\x02" * 32).SerializeToString()),
    (FrameType.AUTH_RESULT, peer_pb2.AuthResult(ok=True).SerializeToString()),
    (FrameType.ASSET_HEADER, header_pb().SerializeToString()),
    (FrameType.CHUNK, b"raw content bytes"),
    (FrameType.CHUNK, b""),
    (FrameType.ASSET_END, end_pb().SerializeToString()),
]


@pytest.mark.parametrize("ftype, payload", [pytest.param(t, p, id=f"{t.name}-{len(p)}") for t, p in FOREIGN_FRAMES])
def test_a_frame_that_does_not_belong_on_the_control_stream_is_refused(ftype: FrameType, payload: bytes) -> None:
    error = refused(control(ftype), payload)
    assert ftype.name in str(error)


def test_every_frame_type_is_either_a_control_frame_or_refused_there() -> None:
    foreign = {ftype for ftype, _ in FOREIGN_FRAMES}
    assert foreign | set(CONTROL_TYPES) == set(FrameType)
    assert not foreign & set(CONTROL_TYPES)


GARBAGE = [
    pytest.param(b"\x0a\x05ab", id="truncated-length-delimited"),
    pytest.param(b"\x08", id="truncated-varint"),
    pytest.param(b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", id="over-long-varint"),
    pytest.param(b"\xff\xff\xff\xff\xff", id="ff-bytes"),
    pytest.param(b"\x00", id="field-zero"),
    pytest.param(b"\x0f", id="wire-type-7"),
    pytest.param(b"\x0b", id="unclosed-group"),
    pytest.param(b"\x0a\xff\xff\xff\xff\x0f", id="length-past-the-end"),
]


@pytest.mark.parametrize("garbage", GARBAGE)
@pytest.mark.parametrize("ftype", CONTROL_TYPES, ids=lambda t: t.name)
def test_garbage_bytes_are_refused_on_the_control_stream(ftype: FrameType, garbage: bytes) -> None:
    refused(control(ftype), garbage)


@pytest.mark.parametrize("garbage", GARBAGE)
def test_garbage_bytes_are_refused_on_a_transfer_stream(garbage: bytes) -> None:
    refused(decode_asset_header, garbage)
    refused(decode_asset_end, garbage)


# ---------------------------------------------------------------------------------------------- round trips

PRINTABLE = st.characters(codec="utf-8", exclude_characters="\x00")  # proto3 strings are UTF-8
hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)
clocks = st.one_of(st.sampled_from([0, 1, MAX_CLOCK]), st.integers(0, MAX_CLOCK))
sizes = st.one_of(st.sampled_from([0, 1, MAX_ASSET_SIZE]), st.integers(0, MAX_ASSET_SIZE))
request_ids = st.one_of(st.sampled_from([1, MAX_CLOCK]), st.integers(1, MAX_CLOCK))


def texts(limit: int, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.one_of(st.text(PRINTABLE, max_size=min(limit, max_size)), st.just("y" * limit))


ports = st.integers(1, 65535)
socket_addrs = st.one_of(
    st.builds(lambda ip, port: f"{ip}:{port}", st.ip_addresses(v=4), ports),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6), ports),
)
relay_urls = st.one_of(
    st.just(""),
    st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["http", "https"]), texts(MAX_URL_CHARS - 8, 30)),
)
digests = st.builds(
    msg.Digest, hash=hashes, timestamp=clocks, trashed=st.booleans(), meta_updated_ms=clocks, size=sizes,
    changed_seq=clocks,
)  # fmt: skip
meta_values = st.builds(
    MetaValue,
    updated_ms=clocks,
    origin=st.one_of(st.just(""), hashes),
    tags=st.lists(texts(MAX_TAG_CHARS), max_size=5).map(tuple),
    description=texts(MAX_DESCRIPTION_CHARS),
    trashed=st.booleans(),
)
control_messages: st.SearchStrategy[msg.ControlMessage] = st.one_of(
    st.builds(msg.DigestRequest, since=clocks),
    st.builds(
        msg.DigestBatch,
        digests=st.lists(digests, max_size=5).map(tuple),
        watermark=clocks,
        full=st.booleans(),
        last=st.booleans(),
    ),
    st.lists(st.tuples(hashes, sizes, request_ids), max_size=6, unique_by=lambda t: t[0]).map(
        lambda items: msg.Want(tuple(msg.WantItem(*item) for item in items))
    ),
    st.builds(msg.Advertise, hashes=st.lists(hashes, max_size=6).map(tuple)),
    st.builds(msg.MetaChange, hash=hashes, value=meta_values),
    st.builds(
        msg.PeerList,
        peers=st.lists(
            st.builds(
                msg.PeerInfo,
                endpoint_id=hashes,
                addrs=st.lists(socket_addrs, max_size=MAX_ADDRS).map(tuple),
                relay_url=relay_urls,
            ),
            max_size=4,
        ).map(tuple),
    ),
    st.builds(msg.AssetUnavailable, hash=hashes, reason=texts(MAX_REASON_CHARS), request_id=request_ids),
    st.builds(msg.Goodbye, reason=texts(MAX_REASON_CHARS)),
    st.just(msg.KeepAlive()),
)


@settings(max_examples=400)
@given(message=control_messages)
def test_every_control_message_round_trips(message: msg.ControlMessage) -> None:
    encoded = encode_control(message)
    ftype = message_type(encoded)
    assert ftype in CONTROL_TYPES
    assert decode_control(ftype, encoded.SerializeToString()) == message


@pytest.mark.parametrize(
    "message, ftype",
    [
        (msg.DigestRequest(1), FrameType.DIGEST_REQUEST),
        (msg.DigestBatch((), 1, True, True), FrameType.DIGEST_BATCH),
        (msg.Want(()), FrameType.WANT),
        (msg.Advertise(()), FrameType.ADVERTISE),
        (msg.MetaChange(GOOD, MetaValue(1, "")), FrameType.META_CHANGE),
        (msg.PeerList(()), FrameType.PEER_LIST),
        (msg.AssetUnavailable(GOOD, "r", 1), FrameType.ASSET_UNAVAILABLE),
        (msg.Goodbye("r"), FrameType.GOODBYE),
        (msg.KeepAlive(), FrameType.KEEPALIVE),
    ],
)
def test_each_control_message_encodes_to_its_own_frame_type(message: msg.ControlMessage, ftype: FrameType) -> None:
    assert message_type(encode_control(message)) is ftype


@pytest.mark.parametrize(
    "not_control",
    [msg.AssetHeader(GOOD, 1, 0, 1, {}), msg.AssetEnd(GOOD, 1), msg.WantItem(GOOD, 0, 1), object(), None, "KeepAlive"],
)
def test_encoding_something_that_is_not_a_control_message_is_a_type_error(not_control: object) -> None:
    with pytest.raises(TypeError):
        encode_control(not_control)


records = st.fixed_dictionaries(
    {
        "hash": hashes,
        "timestamp": clocks,
        "size": sizes,
        "mime_type": texts(MAX_MIME_CHARS),
        "tags": st.lists(texts(MAX_TAG_CHARS), max_size=4),
        "description": texts(MAX_DESCRIPTION_CHARS),
        "human_file_name": texts(MAX_NAME_CHARS),
        "human_readable_path": texts(MAX_NAME_CHARS),
        "application": texts(MAX_NAME_CHARS),
        "user": texts(MAX_NAME_CHARS),
        "trashed": st.booleans(),
        "meta_updated_ms": clocks,
        "meta_origin": st.one_of(st.just(""), hashes),
        "extension": texts(MAX_EXTENSION_CHARS),
    }
)


@settings(max_examples=200)
@given(record=records)
def test_a_record_round_trips_through_the_store_message_and_the_journal(record: dict[str, Any]) -> None:
    meta = meta_from_record(record)
    assert record_from_meta(meta) == record
    assert record_from_meta(can_sync_pb2.AssetMeta.FromString(meta.SerializeToString())) == record
    journaled = json.loads(json.dumps(record))  # the journal keeps the record as JSON while the push waits
    assert meta_from_record(journaled) == meta


def test_every_key_of_a_record_is_a_field_of_the_store_message() -> None:
    # meta_from_record drops keys it does not know: a record key that is no AssetMeta field would be lost
    assert set(record_from_meta(meta_pb())) <= set(can_sync_pb2.AssetMeta.DESCRIPTOR.fields_by_name)


@settings(max_examples=200)
@given(record=records, data=st.data())
def test_an_asset_header_round_trips(record: dict[str, Any], data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, record["size"]))
    request_id = data.draw(request_ids)
    header = encode_asset_header(meta_from_record(record), offset, request_id)
    assert message_type(header) is FrameType.ASSET_HEADER
    decoded_header = decode_asset_header(header.SerializeToString())
    assert decoded_header == msg.AssetHeader(record["hash"], record["size"], offset, request_id, record)


@given(asset=hashes, total=sizes)
def test_an_asset_end_round_trips(asset: str, total: int) -> None:
    assert decode_asset_end(peer_pb2.AssetEnd(hash=asset, total=total).SerializeToString()) == msg.AssetEnd(
        asset, total
    )


def test_record_from_meta_refuses_what_the_header_refuses() -> None:
    with pytest.raises(PeerProtocolError, match="where it came from"):
        record_from_meta(meta_pb(hash="nope"), "where it came from")
    with pytest.raises(PeerProtocolError):
        record_from_meta(meta_pb(size=TOO_BIG_SIZE))
    with pytest.raises(PeerProtocolError):
        record_from_meta(meta_pb(description="\x00"))


def test_the_boundary_error_is_a_frame_error() -> None:
    # the session's handlers catch FrameError for every refused frame
    assert issubclass(PeerProtocolError, FrameError)


# ---------------------------------------------------------------------------------------------- hostile input


def _assert_checked(message: object) -> None:
    """What passed the boundary holds only valid ids, sane numbers and bounded texts."""

    def text_ok(value: str, limit: int) -> None:
        assert len(value) <= limit and "\x00" not in value

    if isinstance(message, msg.DigestRequest):
        assert 0 <= message.since <= MAX_CLOCK
    elif isinstance(message, msg.DigestBatch):
        assert len(message.digests) <= MAX_DIGESTS and 0 <= message.watermark <= MAX_CLOCK
        for d in message.digests:
            assert is_asset_id(d.hash) and 0 <= d.size <= MAX_ASSET_SIZE
            assert all(0 <= n <= MAX_CLOCK for n in (d.timestamp, d.meta_updated_ms, d.changed_seq))
    elif isinstance(message, msg.Want):
        assert len(message.items) <= MAX_WANTS
        assert len({i.hash for i in message.items}) == len(message.items)
        for i in message.items:
            assert is_asset_id(i.hash) and 0 <= i.offset <= MAX_ASSET_SIZE and 1 <= i.request_id <= MAX_CLOCK
    elif isinstance(message, msg.Advertise):
        assert len(message.hashes) <= MAX_DIGESTS and all(is_asset_id(h) for h in message.hashes)
    elif isinstance(message, msg.MetaChange):
        value = message.value
        assert is_asset_id(message.hash) and 0 <= value.updated_ms <= MAX_CLOCK
        assert value.origin == "" or is_endpoint_id(value.origin)
        assert len(value.tags) <= MAX_TAGS
        for tag in value.tags:
            text_ok(tag, MAX_TAG_CHARS)
        text_ok(value.description, MAX_DESCRIPTION_CHARS)
    elif isinstance(message, msg.PeerList):
        assert len(message.peers) <= MAX_PEERS
        for peer in message.peers:
            assert is_endpoint_id(peer.endpoint_id) and len(peer.addrs) <= MAX_ADDRS
            for addr in peer.addrs:
                parse_socket_addr(addr)
                text_ok(addr, MAX_URL_CHARS)
            text_ok(peer.relay_url, MAX_URL_CHARS)
            assert peer.relay_url == "" or peer.relay_url.startswith(("http://", "https://"))
    elif isinstance(message, msg.AssetUnavailable):
        assert is_asset_id(message.hash) and 0 <= message.request_id <= MAX_CLOCK
        text_ok(message.reason, MAX_REASON_CHARS)
    elif isinstance(message, msg.Goodbye):
        text_ok(message.reason, MAX_REASON_CHARS)
    elif isinstance(message, msg.AssetHeader):
        assert is_asset_id(message.hash) and 0 <= message.offset <= message.size <= MAX_ASSET_SIZE
        assert 1 <= message.request_id <= MAX_CLOCK
        assert message.record["hash"] == message.hash and message.record["size"] == message.size
    elif isinstance(message, msg.AssetEnd):
        assert is_asset_id(message.hash) and 0 <= message.total <= MAX_ASSET_SIZE
    else:
        assert isinstance(message, msg.KeepAlive)


@settings(max_examples=300)
@given(ftype=st.sampled_from(CONTROL_TYPES), data=st.data())
def test_any_message_of_a_control_type_is_refused_or_comes_out_checked(ftype: FrameType, data: st.DataObject) -> None:
    message = data.draw(messages_of(MESSAGE_CLASSES[ftype]))
    try:
        result = decode_control(ftype, message.SerializeToString())
    except PeerProtocolError:
        return
    _assert_checked(result)


@settings(max_examples=300)
@given(ftype=st.sampled_from(CONTROL_TYPES), payload=st.binary(max_size=120))
def test_random_bytes_on_the_control_stream_are_refused_or_come_out_checked(ftype: FrameType, payload: bytes) -> None:
    try:
        result = decode_control(ftype, payload)
    except PeerProtocolError:
        return
    _assert_checked(result)


@settings(max_examples=300)
@given(message=control_messages, data=st.data())
def test_mutated_valid_frames_are_refused_or_come_out_checked(message: msg.ControlMessage, data: st.DataObject) -> None:
    encoded = encode_control(message)
    payload = data.draw(mutated(encoded.SerializeToString()))
    try:
        result = decode_control(message_type(encoded), payload)
    except PeerProtocolError:
        return
    _assert_checked(result)


@settings(max_examples=200)
@given(data=st.data(), end=st.booleans())
def test_any_transfer_frame_is_refused_or_comes_out_checked(data: st.DataObject, end: bool) -> None:
    cls = peer_pb2.AssetEnd if end else peer_pb2.AssetHeader
    payload = data.draw(st.one_of(messages_of(cls).map(lambda m: m.SerializeToString()), st.binary(max_size=120)))
    decode: Callable[[bytes], object] = decode_asset_end if end else decode_asset_header
    try:
        result = decode(payload)
    except PeerProtocolError:
        return
    _assert_checked(result)
