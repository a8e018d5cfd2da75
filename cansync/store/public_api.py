"""The public CAN Service routes under /api/v1/can/{can_id} (can_id must be 0)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from cansync.store.assets import AssetStore
from cansync.store.changes import ChangeKind
from cansync.store.errors import BadRequest
from cansync.store.hashing import is_asset_hash
from cansync.store.naming import parse_tags, validate_extension, validate_file_name, validate_text
from cansync.store.records import NewAssetFields
from cansync.store.settings import StoreSettings
from cansync.store.sse import since_from_request, stream_changes

API_PREFIX = "/api/v1/can/{can_id}"
STORE_KEY = web.AppKey("asset_store", AssetStore)
SETTINGS_KEY = web.AppKey("store_settings", StoreSettings)
PART_CHUNK_BYTES = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024
TEXT_FIELDS = ("tags", "application", "user", "description", "mime_type", "human_file_name", "human_readable_path")


def check_can_id(request: web.Request) -> AssetStore:
    can_id = request.match_info.get("can_id")
    if can_id != "0":
        raise web.HTTPNotFound(text=f"unknown container {can_id!r}: this store serves can_id 0 only")
    return request.app[STORE_KEY]


def _asset_hash(request: web.Request) -> str:
    asset_hash = request.match_info["hash"]
    if not is_asset_hash(asset_hash):
        raise BadRequest(f"{asset_hash!r} is not an asset hash (64 lower-case hex digits)")
    return asset_hash


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A multipart part's content in bounded chunks; a body cut off before the boundary is an error."""
    try:
        while not part.at_eof():
            chunk = await part.read_chunk(PART_CHUNK_BYTES)
            if chunk:
                yield chunk
    except (ValueError, AssertionError) as exc:  # aiohttp: "Reading after EOF" on a truncated body
        raise BadRequest("the multipart body was cut off before the file part ended") from exc
    except BadHttpMessage as exc:
        raise BadRequest(f"malformed multipart part: {exc.message}") from exc


async def _field_text(part: BodyPartReader) -> str:
    data = bytearray()
    async for chunk in _part_chunks(part):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise BadRequest(f"multipart field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode(part.get_charset(default="utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise BadRequest(f"multipart field {part.name!r} is not valid text: {exc}") from exc


def new_asset_fields(values: dict[str, Any], upload_name: str = "") -> NewAssetFields:
    """Validate what a client says about a new asset (form fields or JSON)."""
    text = {name: values.get(name) or "" for name in TEXT_FIELDS if name != "tags"}
    for name, value in text.items():
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string, got {type(value).__name__}")
        validate_text(value, name)
    human_file_name = validate_file_name(text["human_file_name"] or validate_file_name(upload_name, "filename"))
    return NewAssetFields(
        mime_type=text["mime_type"][:255],
        tags=tuple(parse_tags(values.get("tags"))),
        description=text["description"],
        human_file_name=human_file_name,
        human_readable_path=text["human_readable_path"],
        application=text["application"],
        user=text["user"],
        extension=validate_extension(str(values.get("extension") or "")),
    )


async def ingest(request: web.Request) -> web.Response:
    store = check_can_id(request)
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise BadRequest(f"ingest needs a multipart/form-data body with a `file` field ({exc})") from exc
    values: dict[str, str] = {}
    incoming = None
    upload_name = ""
    try:
        while True:
            try:
                part = await reader.next()
            except (ValueError, AssertionError) as exc:
                raise BadRequest(f"malformed multipart body: {exc}") from exc
            except BadHttpMessage as exc:  # a part header that is not a header
                raise BadRequest(f"malformed multipart part header: {exc.message}") from exc
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            if part.name == "file":
                if incoming is not None:
                    raise BadRequest("send one `file` field per ingest")
                upload_name = part.filename or ""
                incoming = await store.receive(_part_chunks(part))
            elif part.name in TEXT_FIELDS:
                values[part.name] = await _field_text(part)
            else:
                async for _ in _part_chunks(part):  # an unknown field: skip it
                    pass
        if incoming is None:
            raise BadRequest("the multipart field `file` is required")
        fields = new_asset_fields(values, upload_name)
    except BaseException:
        if incoming is not None:
            await store.discard(incoming)
        raise
    record, _created = await store.ingest(incoming, fields)
    return success_record(record)


async def _json_body(request: web.Request, expected: str) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{expected}: {exc}") from exc
    except RecursionError:
        raise BadRequest(f"{expected}: the JSON is nested too deeply") from None


def success_record(record: Any) -> web.Response:
    return web.json_response({"status": "success", "data": record.to_json()})


async def ingest_data(request: web.Request) -> web.Response:
    store = check_can_id(request)
    body = await _json_body(request, 'ingest/data needs a JSON body like {"data": ..., "tags": "a,b"}')
    if not isinstance(body, dict) or "data" not in body:
        raise BadRequest('ingest/data needs a JSON object with a "data" key')
    try:
        content = json.dumps(body["data"], ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError as exc:  # a lone surrogate escape such as "\ud800" is not text
        raise BadRequest(f"ingest/data: data holds a string that is not valid Unicode ({exc.reason})") from exc
    fields = new_asset_fields({**body, "mime_type": body.get("mime_type") or "application/json"})
    if not fields.extension:
        fields = NewAssetFields(**{**fields.__dict__, "extension": "json"})

    async def one_chunk() -> AsyncIterator[bytes]:
        yield content

    incoming = await store.receive(one_chunk())
    record, _created = await store.ingest(incoming, fields)
    return success_record(record)


async def get_asset(request: web.Request) -> web.StreamResponse:
    store = check_can_id(request)
    record, chunks = await store.read_content(_asset_hash(request))
    response = web.StreamResponse(headers={"Content-Type": record.mime_type})
    response.content_length = record.size
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


async def list_assets(request: web.Request) -> web.Response:
    store = check_can_id(request)
    records = await store.records(include_trashed=_flag(request, "include_trashed"))
    return web.json_response({"status": "success", "data": [r.to_json() for r in records]})


async def search_assets(request: web.Request) -> web.Response:
    store = check_can_id(request)
    tags = parse_tags(request.query.get("tags"))
    if not tags:
        raise BadRequest("search needs ?tags=a,b (assets carrying every listed tag are returned)")
    records = await store.search(tags, include_trashed=_flag(request, "include_trashed"))
    return web.json_response({"status": "success", "data": [r.to_json() for r in records]})


async def trash_asset(request: web.Request) -> web.Response:
    store = check_can_id(request)
    return success_record(await store.edit_locally(_asset_hash(request), trashed=True))


async def restore_asset(request: web.Request) -> web.Response:
    store = check_can_id(request)
    return success_record(await store.edit_locally(_asset_hash(request), trashed=False))


async def update_asset(request: web.Request) -> web.Response:
    store = check_can_id(request)
    asset_hash = _asset_hash(request)
    body = await _json_body(request, 'metadata update needs a JSON body like {"tags": "a,b"}')
    if not isinstance(body, dict):
        raise BadRequest("metadata update needs a JSON object")
    unknown = sorted(set(body) - {"tags", "description", "trashed"})
    if unknown:
        raise BadRequest(f"cannot update {', '.join(unknown)}: only tags, description and trashed change")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest("description must be a string")
    trashed = body.get("trashed")
    if trashed is not None and not isinstance(trashed, bool):
        raise BadRequest("trashed must be true or false")
    record = await store.edit_locally(
        asset_hash,
        tags=parse_tags(body["tags"]) if "tags" in body else None,
        description=validate_text(description, "description") if description is not None else None,
        trashed=trashed,
    )
    return success_record(record)


async def public_events(request: web.Request) -> web.StreamResponse:
    store = check_can_id(request)
    return await stream_changes(
        request,
        store,
        since=since_from_request(request),
        kinds={ChangeKind.NEW_ASSET},
        keepalive_secs=request.app[SETTINGS_KEY].sse_keepalive_secs,
    )


def add_public_routes(app: web.Application) -> None:
    app.router.add_post(f"{API_PREFIX}/ingest", ingest)
    app.router.add_post(f"{API_PREFIX}/ingest/data", ingest_data)
    app.router.add_get(f"{API_PREFIX}/asset/{{hash}}", get_asset)
    app.router.add_patch(f"{API_PREFIX}/asset/{{hash}}", update_asset)
    app.router.add_post(f"{API_PREFIX}/asset/{{hash}}/trash", trash_asset)
    app.router.add_post(f"{API_PREFIX}/asset/{{hash}}/restore", restore_asset)
    app.router.add_get(f"{API_PREFIX}/list", list_assets)
    app.router.add_get(f"{API_PREFIX}/search", search_assets)
    app.router.add_get(f"{API_PREFIX}/events", public_events)
