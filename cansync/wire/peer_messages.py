"""The wire boundary of the peer protocol: frames in, checked core messages out, and back.

Every hash, offset, size, count and text in every message a peer sends is checked here, once, before
the session or the machine sees it. A violation raises PeerProtocolError: the session journals it and
ends, and nothing of the message is acted on. What passes is a `core.messages` value that holds only
valid ids and sane numbers, so nothing further in carries a check of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from cansync.core import messages as msg
from cansync.core.ids import is_asset_id, is_endpoint_id
from cansync.core.metadata import MetaValue
from cansync.wire.addresses import parse_socket_addr
from cansync.wire.frames import FrameError, FrameType, PeerProtocolError, decode_message
from cansync.wire.pb import can_sync_pb2, peer_pb2
from cansync.wire.reconcile_codec import decode_reconcile, encode_reconcile

MAX_DIGESTS = 16_384  # per DigestBatch or Advertise frame
MAX_WANTS = 4_096
MAX_PEERS = 256
MAX_ADDRS = 16
MAX_TAGS = 256
MAX_TAG_CHARS = 256
MAX_NAME_CHARS = 4_096  # file names, paths, application, user
MAX_DESCRIPTION_CHARS = 65_536
MAX_REASON_CHARS = 1_024
MAX_EXTENSION_CHARS = 32
MAX_MIME_CHARS = 255
MAX_URL_CHARS = 2_048
MAX_ASSET_SIZE = 1 << 48  # 256 TiB
MAX_CLOCK = 1 << 62  # watermarks, sequence numbers, times in ms, request ids


# ---------------------------------------------------------------------------------------------- checks


def _fail(what: str) -> PeerProtocolError:
    return PeerProtocolError(what)


def check_asset_id(value: str, where: str) -> str:
    if not is_asset_id(value):
        raise _fail(f"{where}: {value[:80]!r} is not an asset id (64 lower-case hex digits)")
    return value


def _number(value: int, where: str, *, low: int = 0, high: int = MAX_CLOCK) -> int:
    if not low <= value <= high:
        raise _fail(f"{where}: {value} is outside {low}..{high}")
    return value


def _text(value: str, where: str, limit: int) -> str:
    if len(value) > limit:
        raise _fail(f"{where}: {len(value)} characters, more than {limit}")
    if "\x00" in value:
        raise _fail(f"{where}: contains a NUL character")
    return value


def _count(items: Sequence[Any], where: str, limit: int) -> None:
    if len(items) > limit:
        raise _fail(f"{where}: {len(items)} items, more than {limit}")


def _digest(d: can_sync_pb2.AssetDigest, where: str) -> msg.Digest:
    return msg.Digest(
        hash=check_asset_id(d.hash, where),
        timestamp=_number(d.timestamp, f"{where} timestamp"),
        trashed=d.trashed,
        meta_updated_ms=_number(d.meta_updated_ms, f"{where} meta_updated_ms"),
        size=_number(d.size, f"{where} size", high=MAX_ASSET_SIZE),
        changed_seq=_number(d.changed_seq, f"{where} changed_seq"),
    )


def _tags(values: Sequence[str], where: str) -> tuple[str, ...]:
    _count(values, f"{where} tags", MAX_TAGS)
    return tuple(_text(t, f"{where} tag", MAX_TAG_CHARS) for t in values)


def _origin(value: str, where: str) -> str:
    if value and not is_endpoint_id(value):
        raise _fail(f"{where}: origin {value[:80]!r} is not an endpoint id")
    return value


# ---------------------------------------------------------------------------------------------- store records


def record_from_meta(meta: can_sync_pb2.AssetMeta, where: str = "asset record") -> dict[str, Any]:
    """A store record (AssetMeta) as checked plain data: what a transfer header carries to our store."""
    return {
        "hash": check_asset_id(meta.hash, f"{where} hash"),
        "timestamp": _number(meta.timestamp, f"{where} timestamp"),
        "size": _number(meta.size, f"{where} size", high=MAX_ASSET_SIZE),
        "mime_type": _text(meta.mime_type, f"{where} mime_type", MAX_MIME_CHARS),
        "tags": list(_tags(meta.tags, where)),
        "description": _text(meta.description, f"{where} description", MAX_DESCRIPTION_CHARS),
        "human_file_name": _text(meta.human_file_name, f"{where} human_file_name", MAX_NAME_CHARS),
        "human_readable_path": _text(meta.human_readable_path, f"{where} human_readable_path", MAX_NAME_CHARS),
        "application": _text(meta.application, f"{where} application", MAX_NAME_CHARS),
        "user": _text(meta.user, f"{where} user", MAX_NAME_CHARS),
        "trashed": meta.trashed,
        "meta_updated_ms": _number(meta.meta_updated_ms, f"{where} meta_updated_ms"),
        "meta_origin": _origin(meta.meta_origin, f"{where} meta_origin"),
        "extension": _text(meta.extension, f"{where} extension", MAX_EXTENSION_CHARS),
    }


def meta_from_record(record: Mapping[str, Any]) -> can_sync_pb2.AssetMeta:
    """The store message for a record made by `record_from_meta` (kept in the journal while it waits)."""
    fields = {k: v for k, v in record.items() if k in can_sync_pb2.AssetMeta.DESCRIPTOR.fields_by_name}
    return can_sync_pb2.AssetMeta(**fields)


# ---------------------------------------------------------------------------------------------- decoding


def _digest_request(m: peer_pb2.DigestRequest) -> msg.DigestRequest:
    return msg.DigestRequest(_number(m.since, "DigestRequest since"), m.reconcile)


def _reconcile(m: peer_pb2.Reconcile) -> msg.Reconcile:
    return msg.Reconcile(_number(m.watermark, "Reconcile watermark"), decode_reconcile(m.exchange))


def _digest_batch(m: peer_pb2.DigestBatch) -> msg.DigestBatch:
    _count(m.digests, "DigestBatch", MAX_DIGESTS)
    digests = tuple(_digest(d, "DigestBatch digest") for d in m.digests)
    return msg.DigestBatch(digests, _number(m.watermark, "DigestBatch watermark"), m.full, m.last)


def _want(m: peer_pb2.Want) -> msg.Want:
    _count(m.items, "Want", MAX_WANTS)
    items = tuple(
        msg.WantItem(
            check_asset_id(i.hash, "Want item"),
            _number(i.offset, "Want offset", high=MAX_ASSET_SIZE),
            _number(i.request_id, "Want request_id", low=1),
        )
        for i in m.items
    )
    if len({i.hash for i in items}) != len(items):
        raise _fail("Want: names one asset twice")
    return msg.Want(items)


def _advertise(m: peer_pb2.Advertise) -> msg.Advertise:
    _count(m.digests, "Advertise", MAX_DIGESTS)
    return msg.Advertise(tuple(check_asset_id(d.hash, "Advertise digest") for d in m.digests))


def _meta_change(m: peer_pb2.MetaChange) -> msg.MetaChange:
    u = m.update
    value = MetaValue(
        updated_ms=_number(u.updated_ms, "MetaChange updated_ms"),
        origin=_origin(u.origin, "MetaChange"),
        tags=_tags(u.tags, "MetaChange"),
        description=_text(u.description, "MetaChange description", MAX_DESCRIPTION_CHARS),
        trashed=u.trashed,
    )
    return msg.MetaChange(check_asset_id(u.hash, "MetaChange"), value)


def _peer_list(m: peer_pb2.PeerList) -> msg.PeerList:
    _count(m.peers, "PeerList", MAX_PEERS)
    peers = []
    for entry in m.peers:
        if not is_endpoint_id(entry.endpoint_id):
            raise _fail(f"PeerList: {entry.endpoint_id[:80]!r} is not an endpoint id")
        _count(entry.addrs, "PeerList addrs", MAX_ADDRS)
        for addr in entry.addrs:
            try:
                parse_socket_addr(addr)
            except ValueError as exc:
                raise _fail(f"PeerList: {exc}") from None
        relay = _text(entry.relay_url, "PeerList relay_url", MAX_URL_CHARS)
        if relay and not relay.startswith(("https://", "http://")):
            raise _fail(f"PeerList: relay_url {relay[:80]!r} is not an http(s) URL")
        peers.append(msg.PeerInfo(entry.endpoint_id, tuple(entry.addrs), relay))
    return msg.PeerList(tuple(peers))


def _unavailable(m: peer_pb2.AssetUnavailable) -> msg.AssetUnavailable:
    return msg.AssetUnavailable(
        check_asset_id(m.hash, "AssetUnavailable"),
        _text(m.reason, "AssetUnavailable reason", MAX_REASON_CHARS),
        _number(m.request_id, "AssetUnavailable request_id", low=1),
        m.transient,
    )


def _goodbye(m: peer_pb2.Goodbye) -> msg.Goodbye:
    return msg.Goodbye(_text(m.reason, "Goodbye reason", MAX_REASON_CHARS))


def _keepalive(m: peer_pb2.KeepAlive) -> msg.KeepAlive:
    return msg.KeepAlive()


_CONTROL_DECODERS: dict[FrameType, Callable[[Any], msg.ControlMessage]] = {
    FrameType.DIGEST_REQUEST: _digest_request,
    FrameType.RECONCILE: _reconcile,
    FrameType.DIGEST_BATCH: _digest_batch,
    FrameType.WANT: _want,
    FrameType.ADVERTISE: _advertise,
    FrameType.META_CHANGE: _meta_change,
    FrameType.PEER_LIST: _peer_list,
    FrameType.ASSET_UNAVAILABLE: _unavailable,
    FrameType.GOODBYE: _goodbye,
    FrameType.KEEPALIVE: _keepalive,
}


def decode_control(ftype: FrameType, payload: bytes) -> msg.ControlMessage:
    """A control-stream frame after the handshake, checked; PeerProtocolError for anything else."""
    decoder = _CONTROL_DECODERS.get(ftype)
    if decoder is None:
        raise _fail(f"unexpected {ftype.name} frame on the control stream")
    return decoder(_parse(ftype, payload))


def decode_asset_header(payload: bytes) -> msg.AssetHeader:
    m = _parse(FrameType.ASSET_HEADER, payload)
    assert isinstance(m, peer_pb2.AssetHeader)
    record = record_from_meta(m.meta, "AssetHeader")
    size = record["size"]
    offset = _number(m.offset, "AssetHeader offset", high=size)
    return msg.AssetHeader(record["hash"], size, offset, _number(m.request_id, "AssetHeader request_id", low=1), record)


def decode_asset_end(payload: bytes) -> msg.AssetEnd:
    m = _parse(FrameType.ASSET_END, payload)
    assert isinstance(m, peer_pb2.AssetEnd)
    return msg.AssetEnd(check_asset_id(m.hash, "AssetEnd"), _number(m.total, "AssetEnd total", high=MAX_ASSET_SIZE))


def _parse(ftype: FrameType, payload: bytes) -> Message:
    try:
        return decode_message(ftype, payload)
    except FrameError as exc:
        raise _fail(str(exc)) from exc


# ---------------------------------------------------------------------------------------------- encoding


def _digest_pb(d: msg.Digest) -> can_sync_pb2.AssetDigest:
    return can_sync_pb2.AssetDigest(
        hash=d.hash, timestamp=d.timestamp, trashed=d.trashed, meta_updated_ms=d.meta_updated_ms,
        size=d.size, changed_seq=d.changed_seq,
    )  # fmt: skip


def meta_update(asset: str, value: MetaValue) -> can_sync_pb2.MetaUpdate:
    return can_sync_pb2.MetaUpdate(
        hash=asset,
        tags=list(value.tags),
        description=value.description,
        trashed=value.trashed,
        updated_ms=value.updated_ms,
        origin=value.origin,
    )


def encode_control(message: object) -> Message:
    """The protobuf message of a core control message (its frame type follows from the class)."""
    if isinstance(message, msg.DigestRequest):
        return peer_pb2.DigestRequest(since=message.since, reconcile=message.reconcile)
    if isinstance(message, msg.Reconcile):
        return peer_pb2.Reconcile(watermark=message.watermark, exchange=encode_reconcile(message.exchange))
    if isinstance(message, msg.DigestBatch):
        digests = [_digest_pb(d) for d in message.digests]
        return peer_pb2.DigestBatch(digests=digests, watermark=message.watermark, full=message.full, last=message.last)
    if isinstance(message, msg.Want):
        items = [peer_pb2.WantItem(hash=i.hash, offset=i.offset, request_id=i.request_id) for i in message.items]
        return peer_pb2.Want(items=items)
    if isinstance(message, msg.Advertise):
        return peer_pb2.Advertise(digests=[can_sync_pb2.AssetDigest(hash=h) for h in message.hashes])
    if isinstance(message, msg.MetaChange):
        return peer_pb2.MetaChange(update=meta_update(message.hash, message.value))
    if isinstance(message, msg.PeerList):
        peers = [peer_pb2.PeerAddress(endpoint_id=p.endpoint_id, addrs=list(p.addrs), relay_url=p.relay_url)
                 for p in message.peers]  # fmt: skip
        return peer_pb2.PeerList(peers=peers)
    if isinstance(message, msg.AssetUnavailable):
        return peer_pb2.AssetUnavailable(
            hash=message.hash, reason=message.reason, request_id=message.request_id, transient=message.transient
        )
    if isinstance(message, msg.Goodbye):
        return peer_pb2.Goodbye(reason=message.reason)
    if isinstance(message, msg.KeepAlive):
        return peer_pb2.KeepAlive()
    raise TypeError(f"{type(message).__name__} is not a control message")


def encode_asset_header(meta: can_sync_pb2.AssetMeta, offset: int, request_id: int) -> peer_pb2.AssetHeader:
    return peer_pb2.AssetHeader(meta=meta, offset=offset, request_id=request_id)
