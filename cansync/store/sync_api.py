"""The sync API at the root (/sync/*): protobuf bodies, guarded by the sync key.

Disabled (404) when the store has no sync key; a request without X-Sync-Key gets 401, a wrong one 403
(compared in constant time). /sync/events also takes the key as `?key=`, since browsers' EventSource
cannot send headers.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web
from google.protobuf.message import Message

from cansync.store.assets import AssetStore
from cansync.store.changes import ChangeKind, parse_change_seq
from cansync.store.delimited import encode_delimited, parse_message, read_delimited, read_next_delimited
from cansync.store.envelope import Handler, failure
from cansync.store.errors import BadRequest, PayloadTooLarge
from cansync.store.hashing import is_asset_hash
from cansync.store.naming import InvalidName, parse_tags, validate_extension, validate_file_name, validate_text
from cansync.store.public_api import SETTINGS_KEY, STORE_KEY
from cansync.store.push_batch import MAX_BATCH_ASSETS, MAX_BATCH_BYTES, PushOutcome, PushVerdict
from cansync.store.records import MetaChange, NewAssetFields
from cansync.store.sse import since_from_request, stream_changes
from cansync.wire.pb import can_sync_pb2

PROTOBUF = "application/x-protobuf"
SYNC_KEY_HEADER = "X-Sync-Key"
SYNC_KEY_QUERY = "key"
MAX_REQUEST_MESSAGE_BYTES = 64 * 1024 * 1024
PUSH_CHUNK_BYTES = 256 * 1024
MAX_HASHES_PAGE = 100_000  # a larger limit is cut to this (the answer says `more`): bounds one answer

log = logging.getLogger("cansync.store")


@web.middleware
async def sync_key_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/sync/"):
        return await handler(request)
    expected = request.app[SETTINGS_KEY].sync_key
    if not expected:
        return failure("sync API disabled: set sync_api_key", 404)
    given = request.headers.get(SYNC_KEY_HEADER)
    if given is None and request.path == "/sync/events":
        given = request.query.get(SYNC_KEY_QUERY)
    if not given:
        return failure(f"missing sync key: send the {SYNC_KEY_HEADER} header", 401)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return failure("wrong sync key", 403)
    return await handler(request)


def _protobuf(message: Message) -> web.Response:
    return web.Response(body=message.SerializeToString(), content_type=PROTOBUF)


async def _whole_body(request: web.Request, what: str) -> bytes:
    """A small protobuf request body, read whole (bounded)."""
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_REQUEST_MESSAGE_BYTES:
            raise BadRequest(f"{what}: body larger than {MAX_REQUEST_MESSAGE_BYTES} bytes")
    return bytes(data)


def _since(request: web.Request, body_since: int) -> int:
    raw = request.query.get("since")
    if raw is None:
        return body_since  # a protobuf int64: any value is a valid query (negative means everything)
    try:
        return parse_change_seq(raw)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def require_hash(value: str, what: str) -> str:
    """`value`, if it is an asset hash; else the 400 that names `what` and shows the value."""
    if not is_asset_hash(value):
        shown = repr(value[:80]) + ("..." if len(value) > 80 else "")
        raise BadRequest(f"{what}: {shown} is not an asset hash (64 lower-case hex digits)")
    return value


def _limit(request: web.Request, body_limit: int) -> int | None:
    """The page size asked for (None: no limit), capped at MAX_HASHES_PAGE."""
    raw = request.query.get("limit")
    if raw is None:
        limit = body_limit
        if limit < 0:
            raise BadRequest(f"/sync/hashes: limit must be 0 (no limit) or more, got {limit}")
    else:
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest(f"/sync/hashes: limit must be a whole number, got {raw[:40]!r}") from None
        if limit < 0:
            raise BadRequest(f"/sync/hashes: limit must be 0 (no limit) or more, got {raw[:40]}")
    return min(limit, MAX_HASHES_PAGE) if limit else None


async def sync_hashes(request: web.Request) -> web.Response:
    store: AssetStore = request.app[STORE_KEY]
    body = await _whole_body(request, "/sync/hashes")
    hashes_request = parse_message(body, can_sync_pb2.HashesRequest, "/sync/hashes")
    since = _since(request, hashes_request.since)
    page = await store.digests_since(since, _limit(request, hashes_request.limit))
    digest = can_sync_pb2.AssetDigest
    assets = [
        digest(hash=h, timestamp=ts, trashed=bool(trashed), meta_updated_ms=meta_ms, size=size, changed_seq=seq)
        for h, ts, trashed, meta_ms, size, seq in page.rows
    ]
    return _protobuf(can_sync_pb2.HashesResponse(assets=assets, watermark=page.watermark, more=page.more))


async def sync_pull(request: web.Request) -> web.StreamResponse:
    store: AssetStore = request.app[STORE_KEY]
    body = await _whole_body(request, "/sync/pull")
    pull = parse_message(body, can_sync_pb2.PullRequest, "/sync/pull")
    hashes = [require_hash(h, "/sync/pull") for h in pull.hashes]
    response = web.StreamResponse(headers={"Content-Type": PROTOBUF})
    await response.prepare(request)
    try:
        for asset_hash in hashes:
            if pull.meta_only:
                await _write_pull_record(response, store, asset_hash)
            else:
                await _write_pull_item(response, store, asset_hash, pull.offset)
        await response.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    except Exception:  # noqa: BLE001  (headers are out: all we can do is cut the stream)
        log.exception("/sync/pull failed mid-stream; closing the connection")
        if request.transport is not None:
            request.transport.abort()
    return response


async def _write_pull_record(response: web.StreamResponse, store: AssetStore, asset_hash: str) -> None:
    record = await store.get(asset_hash)
    if record is None:
        await response.write(encode_delimited(can_sync_pb2.PullItem(hash=asset_hash, found=False)))
        return
    item = can_sync_pb2.PullItem(hash=asset_hash, found=True, meta=record.to_proto(), offset=record.size)
    await response.write(encode_delimited(item))


async def _write_pull_item(response: web.StreamResponse, store: AssetStore, asset_hash: str, offset: int) -> None:
    record = await store.get(asset_hash)
    if record is None:
        await response.write(encode_delimited(can_sync_pb2.PullItem(hash=asset_hash, found=False)))
        return
    record, chunks = await store.read_content(asset_hash, offset)
    start = min(offset, record.size)
    item = can_sync_pb2.PullItem(hash=asset_hash, found=True, meta=record.to_proto(), offset=start)
    await response.write(encode_delimited(item))
    sent = 0
    async for chunk in chunks:
        await response.write(chunk)
        sent += len(chunk)
    if sent != record.size - start:
        # the file on disk is not what the index says: the caller cuts the stream so the client sees it
        raise RuntimeError(f"asset {asset_hash}: file holds {sent + start} bytes, index says {record.size}")


def fields_from_meta(meta: can_sync_pb2.AssetMeta) -> NewAssetFields:
    """What a pushed AssetMeta says of its asset, checked by the store's naming rules."""
    for name in ("description", "human_readable_path", "application", "user", "meta_origin", "mime_type"):
        validate_text(getattr(meta, name), name)
    return NewAssetFields(
        mime_type=meta.mime_type[:255],
        tags=tuple(parse_tags(list(meta.tags))),
        description=meta.description,
        human_file_name=validate_file_name(meta.human_file_name),
        human_readable_path=meta.human_readable_path,
        application=meta.application,
        user=meta.user,
        extension=validate_extension(meta.extension),
        timestamp=meta.timestamp if meta.timestamp > 0 else None,
        trashed=meta.trashed,
        meta_updated_ms=meta.meta_updated_ms,
        meta_origin=meta.meta_origin,
    )


async def sync_push(request: web.Request) -> web.Response:
    store: AssetStore = request.app[STORE_KEY]
    meta = await read_delimited(request.content, can_sync_pb2.AssetMeta, "/sync/push")
    require_hash(meta.hash, "/sync/push meta.hash")
    fields = fields_from_meta(meta)

    async def content() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(PUSH_CHUNK_BYTES):
            yield chunk

    record, created = await store.push(fields, meta.hash, meta.size, content())
    return _protobuf(can_sync_pb2.PushResult(hash=record.hash, created=created, meta=record.to_proto()))


async def _content_of(stream: StreamReader, size: int, what: str) -> AsyncIterator[bytes]:
    """Exactly `size` bytes of a body, in chunks; BadRequest when the body ends first."""
    remaining = size
    while remaining:
        chunk = await stream.read(min(remaining, PUSH_CHUNK_BYTES))
        if not chunk:
            raise BadRequest(f"{what}: the body ends {remaining} bytes before the end of the content")
        remaining -= len(chunk)
        yield chunk


_OUTCOMES = {
    PushOutcome.CREATED: can_sync_pb2.PUSH_CREATED,
    PushOutcome.ALREADY_HELD: can_sync_pb2.PUSH_ALREADY_HELD,
    PushOutcome.REFUSED: can_sync_pb2.PUSH_REFUSED,
}


def _verdict_proto(verdict: PushVerdict) -> can_sync_pb2.PushBatchItemResult:
    result = can_sync_pb2.PushBatchItemResult(hash=verdict.hash, outcome=_OUTCOMES[verdict.outcome])
    if verdict.reason:
        result.reason = verdict.reason
    if verdict.record is not None:
        result.meta.CopyFrom(verdict.record.to_proto())
    return result


async def sync_push_batch(request: web.Request) -> web.Response:
    """A sequence of (delimited AssetMeta, meta.size content bytes): each asset judged alone, all stored
    with one index transaction; over a bound, cut off or unreadable, the whole batch is refused."""
    store: AssetStore = request.app[STORE_KEY]
    content_bytes = 0
    async with store.push_batch() as batch:
        while True:
            what = f"/sync/push_batch asset {len(batch) + 1}"
            meta = await read_next_delimited(request.content, can_sync_pb2.AssetMeta, what)
            if meta is None:
                break
            if len(batch) >= MAX_BATCH_ASSETS:
                raise PayloadTooLarge(f"{what}: at most {MAX_BATCH_ASSETS} assets per batch; nothing was stored")
            content_bytes += meta.size
            if content_bytes > MAX_BATCH_BYTES:
                raise PayloadTooLarge(
                    f"{what}: at most {MAX_BATCH_BYTES} content bytes per batch (send a large asset by "
                    "/sync/push); nothing was stored"
                )
            content = _content_of(request.content, meta.size, what)
            try:
                fields = fields_from_meta(meta)
                require_hash(meta.hash, "meta.hash")
            except (BadRequest, InvalidName) as exc:
                batch.refuse(meta.hash, str(exc))
                async for _ in content:  # skip it: the next asset follows
                    pass
                continue
            await batch.add(meta.hash, fields, content)
        verdicts = await batch.commit()
    return _protobuf(can_sync_pb2.PushBatchResult(results=[_verdict_proto(v) for v in verdicts]))


def meta_change_from_update(update: can_sync_pb2.MetaUpdate) -> MetaChange:
    """A peer's metadata change, its hash and fields checked by the store's rules."""
    require_hash(update.hash, "/sync/meta")
    return MetaChange(
        tags=tuple(parse_tags(list(update.tags))),
        description=validate_text(update.description, "description"),
        trashed=update.trashed,
        updated_ms=update.updated_ms,
        origin=validate_text(update.origin, "origin"),
    )


async def sync_meta(request: web.Request) -> web.Response:
    store: AssetStore = request.app[STORE_KEY]
    body = await _whole_body(request, "/sync/meta")
    update = parse_message(body, can_sync_pb2.MetaUpdate, "/sync/meta")
    change = meta_change_from_update(update)
    applied, record = await store.apply_meta(update.hash, change)
    return _protobuf(can_sync_pb2.MetaResult(applied=applied, meta=record.to_proto()))


async def sync_events(request: web.Request) -> web.StreamResponse:
    return await stream_changes(
        request,
        request.app[STORE_KEY],
        since=since_from_request(request),
        kinds={ChangeKind.NEW_ASSET, ChangeKind.META_CHANGED},
        keepalive_secs=request.app[SETTINGS_KEY].sse_keepalive_secs,
    )


def add_sync_routes(app: web.Application) -> None:
    app.router.add_post("/sync/hashes", sync_hashes)
    app.router.add_post("/sync/pull", sync_pull)
    app.router.add_post("/sync/push", sync_push)
    app.router.add_post("/sync/push_batch", sync_push_batch)
    app.router.add_post("/sync/meta", sync_meta)
    app.router.add_get("/sync/events", sync_events)
