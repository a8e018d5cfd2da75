"""CanClient: the agent's HTTP client of a CAN Service sync API (/sync/* at the store's root).

Every call names the store and route in its errors. While the store cannot be reached, calls retry with
backoff for up to retry_for seconds (reads, and push, which is idempotent by hash), then raise
CanServiceUnavailable. Bodies stream both ways: push sends from a file or an async iterator in bounded
chunks, pull hands out content chunk by chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from google.protobuf.message import DecodeError, Message
from httpx_sse import SSEError, aconnect_sse

from cansync.can.byte_stream import ByteStream
from cansync.can.errors import CanServiceAuthError, CanServiceError, CanServiceUnavailable
from cansync.can.events import META_CHANGED, NEW_ASSET, StoreEvent
from cansync.can.pull import PulledAsset, decode_pull_records, read_pulled_assets
from cansync.wire.pb import can_sync_pb2

SYNC_KEY_HEADER = "X-Sync-Key"
PROTOBUF = "application/x-protobuf"
PUSH_CHUNK_BYTES = 256 * 1024
HASHES_PAGE = 50_000  # digests per /sync/hashes answer (about 4 MB): no answer holds a whole big store
# /sync/push_batch's bounds (proto/can_sync.proto); a store with smaller ones answers 413 and is sent halves
PUSH_BATCH_MAX_ASSETS = 1024
PUSH_BATCH_MAX_BYTES = 64 * 1024 * 1024
_NO_BATCH_ROUTE = frozenset({404, 405})  # a store that predates /sync/push_batch
FIRST_RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0
SSE_READ_TIMEOUT = 45.0  # the store sends a keep-alive every 15 s: three missed means a dead link
_LENGTH_PREFIX = struct.Struct(">I")
_EVENT_KINDS = frozenset({NEW_ASSET, META_CHANGED})
# Failures that mean "the store is not there (yet)": nothing of the request reached it.
_NOT_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Failures mid-exchange: worth a retry only when the request can be sent again unchanged.
_CUT_OFF = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)
_RETRY_STATUSES = frozenset({502, 503, 504})
_AUTH_STATUSES = frozenset({401, 403})  # the key is missing or wrong: a person must fix the config

M = TypeVar("M", bound=Message)
T = TypeVar("T")
PushItemResult = can_sync_pb2.PushBatchItemResult
BatchItem = tuple[int, can_sync_pb2.AssetMeta, bytes | Path]  # (index in the caller's list, meta, content)


log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A whole answer of the store, read off its response."""

    status: int
    reason: str
    body: bytes


class _RetryableStatus(Exception):
    def __init__(self, error: CanServiceError) -> None:
        self.error = error


class CanClient:
    def __init__(self, base_url: str, sync_key: str, *, timeout: float = 30.0, retry_for: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_for = retry_for
        self._timeout = timeout
        self._batch_route = True  # until the store answers that it has no /sync/push_batch
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={SYNC_KEY_HEADER: sync_key},
            timeout=httpx.Timeout(timeout),
            trust_env=False,  # a local store: never go through a proxy from the environment
        )

    async def __aenter__(self) -> CanClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # --- plumbing -----------------------------------------------------------------------------

    def _error(self, route: str, message: str, status: int | None = None) -> CanServiceError:
        return CanServiceError(self.base_url, route, message, status)

    def _error_from(self, route: str, answer: _Answer) -> CanServiceError:
        try:
            message = str(json.loads(answer.body)["error"])
        except (ValueError, KeyError, TypeError):
            message = answer.body[:200].decode(errors="replace") or answer.reason
        if answer.status in _AUTH_STATUSES:
            return CanServiceAuthError(self.base_url, route, message, answer.status)
        return self._error(route, message, answer.status)

    def _refused(self, route: str, answer: _Answer) -> Exception:
        """The error to raise for an answer other than 200 (wrapped for a retry where the store may
        recover)."""
        error = self._error_from(route, answer)
        return _RetryableStatus(error) if answer.status in _RETRY_STATUSES else error

    @staticmethod
    async def _answer_of(response: httpx.Response) -> _Answer:
        return _Answer(response.status_code, response.reason_phrase, await response.aread())

    async def _post(self, route: str, content: bytes | AsyncIterable[bytes]) -> _Answer:
        """POST and read the whole answer. The body is read off a stream so that it is ours alone:
        httpx's Response and its stream wrapper point at each other (encode/httpx#3733), so a body kept
        on the Response lives until the cycle collector runs. On an agent holding millions of objects
        that can be many requests later: a million-asset store's hash pages held about 40 MB that way.
        The request is in that cycle too, so a body in bytes is handed over once, sized, not kept on it."""
        headers = {"Content-Type": PROTOBUF}
        if isinstance(content, bytes):
            headers["Content-Length"] = str(len(content))  # sized: not sent chunked
            content = _bytes_once(content)
        async with self._client.stream("POST", route, content=content, headers=headers) as response:
            body = b"".join([part async for part in response.aiter_bytes()])
            return _Answer(response.status_code, response.reason_phrase, body)

    async def _with_retries(self, route: str, replayable: bool, attempt: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = FIRST_RETRY_DELAY
        while True:
            try:
                return await attempt()
            except _RetryableStatus as exc:
                if not replayable or time.monotonic() + delay > deadline:
                    raise exc.error from None
            except httpx.TransportError as exc:
                retryable = isinstance(exc, _NOT_REACHED) or (replayable and isinstance(exc, _CUT_OFF))
                if not retryable:
                    raise self._error(route, f"{type(exc).__name__}: {exc}") from exc
                if delay == FIRST_RETRY_DELAY:  # say it once per outage, not once per attempt
                    log.warning(
                        "store %s unreachable on %s (%s); retrying for up to %g s",
                        self.base_url, route, type(exc).__name__, self.retry_for,
                    )  # fmt: skip
                if time.monotonic() + delay > deadline:
                    raise CanServiceUnavailable(
                        self.base_url,
                        route,
                        f"store unreachable for {self.retry_for:g} s ({type(exc).__name__}: {exc or 'no answer'}); "
                        "is CAN Service running at this URL?",
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    async def _call(self, route: str, request: Message, answer_type: type[M]) -> M:
        """POST a small protobuf message and read a protobuf answer (idempotent routes)."""
        body = request.SerializeToString()

        async def attempt() -> M:
            return self._parse(route, await self._post(route, body), answer_type)

        return await self._with_retries(route, True, attempt)

    def _body(self, route: str, answer: _Answer) -> bytes:
        """The body of a 200 answer; for any other, raise what its status means."""
        if answer.status != 200:
            raise self._refused(route, answer)
        return answer.body

    def _parse(self, route: str, answer: _Answer, answer_type: type[M]) -> M:
        body = self._body(route, answer)
        message = answer_type()
        try:
            message.ParseFromString(body)
        except DecodeError as exc:
            raise self._error(route, f"answer is not a valid {answer_type.__name__}: {exc}") from exc
        return message

    # --- the sync API -------------------------------------------------------------------------

    async def hashes(self, since: int = 0, page_size: int = HASHES_PAGE) -> can_sync_pb2.HashesResponse:
        """Digests of every asset whose changed_seq > since (trashed ones too) and the watermark, as one
        answer: the pages gathered, each asset once, under its latest change (what one answer at the
        time of the last page would have held)."""
        return await gather_hash_pages(self.hashes_pages(since, page_size), since)

    async def hashes_pages(
        self, since: int = 0, page_size: int = HASHES_PAGE
    ) -> AsyncIterator[can_sync_pb2.HashesResponse]:
        """The same, page by page (at most page_size digests each), the change clock as the cursor:
        each page's watermark is the next one's since, and the last page (more = False) carries the
        store's clock. A store without paging answers everything at once: that is then the one page."""
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        route = "/sync/hashes"
        cursor = int(since)
        while True:
            page = await self._call(
                f"{route}?since={cursor}&limit={page_size}",
                can_sync_pb2.HashesRequest(since=cursor, limit=page_size),
                can_sync_pb2.HashesResponse,
            )
            yield page
            if not page.more:
                return
            if page.watermark <= cursor:  # "more" without moving on would ask the same page forever
                raise self._error(route, f"answered more = true with watermark {page.watermark}, not past {cursor}")
            cursor = page.watermark

    @asynccontextmanager
    async def pull(self, hashes: Sequence[str], offset: int = 0) -> AsyncIterator[AsyncIterator[PulledAsset]]:
        """Stream these assets: `async with client.pull(hs) as assets: async for asset in assets: ...`;
        read each asset's `content()` in order. Unknown hashes come back with found = False."""
        route = "/sync/pull"
        body = can_sync_pb2.PullRequest(hashes=list(hashes), offset=offset).SerializeToString()

        async def attempt() -> httpx.Response:
            request = self._client.build_request("POST", route, content=body, headers={"Content-Type": PROTOBUF})
            response = await self._client.send(request, stream=True)
            if response.status_code != 200:
                try:
                    raise self._refused(route, await self._answer_of(response))
                finally:
                    await response.aclose()
            return response

        response = await self._with_retries(route, True, attempt)
        try:
            stream = ByteStream(self._body_chunks(route, response))
            yield read_pulled_assets(stream, lambda message: self._error(route, message))
        finally:
            await response.aclose()

    async def metadata(self, hashes: Sequence[str]) -> list[can_sync_pb2.AssetMeta]:
        """The records (no content) of these assets; unknown hashes are left out."""
        route = "/sync/pull"
        body = can_sync_pb2.PullRequest(hashes=list(hashes), meta_only=True).SerializeToString()

        async def attempt() -> bytes:
            return self._body(route, await self._post(route, body))

        payload = await self._with_retries(route, True, attempt)
        return [item.meta for item in decode_pull_records(payload, lambda message: self._error(route, message))]

    async def _body_chunks(self, route: str, response: httpx.Response) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            raise self._error(route, f"answer cut off: {type(exc).__name__}: {exc}") from exc

    async def push(self, meta: can_sync_pb2.AssetMeta, content: AsyncIterable[bytes] | Path) -> can_sync_pb2.PushResult:
        """Store an asset in the store, keeping meta.timestamp; the store re-hashes the content and
        refuses (CanServiceError, status 400) a content that does not hash to meta.hash."""
        route = "/sync/push"
        header = meta.SerializeToString()
        header = _LENGTH_PREFIX.pack(len(header)) + header
        replayable = isinstance(content, Path)

        async def body() -> AsyncIterator[bytes]:
            yield header
            if isinstance(content, Path):
                async for chunk in _file_chunks(content):
                    yield chunk
            else:
                async for chunk in content:
                    yield chunk

        async def attempt() -> can_sync_pb2.PushResult:
            return self._parse(route, await self._post(route, body()), can_sync_pb2.PushResult)

        return await self._with_retries(route, replayable, attempt)

    async def push_batch(self, items: Sequence[tuple[can_sync_pb2.AssetMeta, bytes | Path]]) -> list[PushItemResult]:
        """Store many assets, in as few /sync/push_batch requests as the store's bounds allow; one result
        per item, in order: PUSH_CREATED, PUSH_ALREADY_HELD, or PUSH_REFUSED with the store's reason (a
        content that does not hash to meta.hash is refused alone). meta.size 0 means "the content's
        size". Against a store without the batch route (404/405) it pushes one asset per request, and
        remembers that for the next call."""
        results: list[PushItemResult | None] = [None] * len(items)
        batchable: list[tuple[int, can_sync_pb2.AssetMeta, bytes | Path]] = []
        for index, (meta, content) in enumerate(items):
            size = len(content) if isinstance(content, bytes) else (await asyncio.to_thread(content.stat)).st_size
            if meta.size and meta.size != size:
                results[index] = refused_item(meta.hash, f"content is {size} bytes, meta.size says {meta.size}")
                continue
            if not meta.size:
                meta = with_size(meta, size)
            batchable.append((index, meta, content))
        for group in batch_groups(batchable):
            for (index, _, _), result in zip(group, await self._push_group(group), strict=True):
                results[index] = result
        return [result for result in results if result is not None]

    async def _push_group(self, group: Sequence[BatchItem]) -> list[PushItemResult]:
        if self._batch_route and len(group) > 1:
            try:
                return await self._push_batch_request(group)
            except CanServiceError as exc:
                if exc.status in _NO_BATCH_ROUTE:
                    self._batch_route = False
                    log.info("store %s has no /sync/push_batch (HTTP %s): pushing one asset per request",
                             self.base_url, exc.status)  # fmt: skip
                elif exc.status == 413:  # a store with smaller bounds than ours: halve until it fits
                    half = len(group) // 2
                    return await self._push_group(group[:half]) + await self._push_group(group[half:])
                else:
                    raise
        return [await self._push_one(meta, content) for _, meta, content in group]

    async def _push_one(self, meta: can_sync_pb2.AssetMeta, content: bytes | Path) -> PushItemResult:
        try:
            pushed = await self.push(meta, _bytes_once(content) if isinstance(content, bytes) else content)
        except CanServiceError as exc:
            if exc.status != 400:
                raise
            return refused_item(meta.hash, exc.message)
        outcome = can_sync_pb2.PUSH_CREATED if pushed.created else can_sync_pb2.PUSH_ALREADY_HELD
        return can_sync_pb2.PushBatchItemResult(hash=meta.hash, outcome=outcome, meta=pushed.meta)

    async def _push_batch_request(self, group: Sequence[BatchItem]) -> list[PushItemResult]:
        route = "/sync/push_batch"

        async def body() -> AsyncIterator[bytes]:
            buffer = bytearray()
            for _, meta, content in group:
                header = meta.SerializeToString()
                buffer += _LENGTH_PREFIX.pack(len(header)) + header
                if isinstance(content, bytes) and len(content) >= PUSH_CHUNK_BYTES:
                    yield bytes(buffer)  # a large content goes as it is, not copied into the buffer
                    buffer.clear()
                    yield content
                elif isinstance(content, bytes):
                    buffer += content
                else:
                    async for chunk in _file_chunks(content, limit=meta.size):
                        buffer += chunk
                        if len(buffer) >= PUSH_CHUNK_BYTES:
                            yield bytes(buffer)
                            buffer.clear()
                if len(buffer) >= PUSH_CHUNK_BYTES:  # small assets travel many to a write
                    yield bytes(buffer)
                    buffer.clear()
            if buffer:
                yield bytes(buffer)

        async def attempt() -> can_sync_pb2.PushBatchResult:
            return self._parse(route, await self._post(route, body()), can_sync_pb2.PushBatchResult)

        answer = await self._with_retries(route, True, attempt)  # bytes and files can be sent again
        if len(answer.results) != len(group):
            raise self._error(route, f"answered {len(answer.results)} results for {len(group)} assets")
        return list(answer.results)

    async def update_meta(self, update: can_sync_pb2.MetaUpdate) -> can_sync_pb2.MetaResult:
        """Apply a metadata change; applied = False when the store already held a later one."""
        return await self._call("/sync/meta", update, can_sync_pb2.MetaResult)

    async def events(self, since: int = 0) -> AsyncIterator[StoreEvent]:
        """Every change after `since` (0: from the first), then live ones, forever. Reconnects on a drop
        and resumes after the last event seen, so none is lost or repeated."""
        route = "/sync/events"
        last = since
        delay = FIRST_RETRY_DELAY
        timeout = httpx.Timeout(self._timeout, read=max(SSE_READ_TIMEOUT, self._timeout))
        while True:
            try:
                async with aconnect_sse(
                    self._client, "GET", route, params={"since": str(last)}, timeout=timeout
                ) as source:
                    if source.response.status_code != 200:
                        error = self._error_from(route, await self._answer_of(source.response))
                        if source.response.status_code not in _RETRY_STATUSES:
                            raise error
                    else:
                        delay = FIRST_RETRY_DELAY
                        async for sse in source.aiter_sse():
                            event = self._store_event(route, sse.event, sse.data, sse.id)
                            if event is None or event.changed_seq <= last:
                                continue
                            last = event.changed_seq
                            yield event
            except (httpx.TransportError, SSEError) as exc:
                # dropped or not reachable: reconnect below, catching up from the last seen change
                if delay == FIRST_RETRY_DELAY:
                    log.warning("store %s event stream lost (%s); reconnecting", self.base_url, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    def _store_event(self, route: str, kind: str, data: str, event_id: str) -> StoreEvent | None:
        if kind not in _EVENT_KINDS:
            return None
        try:
            payload = json.loads(data)
            seq = int(event_id) if event_id else int(payload["changed_seq"])
            timestamp = payload.get("timestamp")
            return StoreEvent(
                kind=kind,
                hash=str(payload["hash"]),
                changed_seq=seq,
                timestamp=int(timestamp) if timestamp is not None else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error(route, f"unreadable {kind} event {data!r}: {exc}") from exc


async def _file_chunks(path: Path, chunk_size: int = PUSH_CHUNK_BYTES, limit: int = -1) -> AsyncIterator[bytes]:
    """A file's bytes; with a limit, exactly that many (a batch's framing depends on it) or an error."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        remaining = limit
        while remaining:
            chunk = await asyncio.to_thread(handle.read, chunk_size if remaining < 0 else min(chunk_size, remaining))
            if not chunk:
                break
            remaining -= len(chunk) if remaining > 0 else 0
            yield chunk
        if remaining > 0:
            raise OSError(f"{path} shrank while it was being sent: {remaining} bytes short")
    finally:
        handle.close()


async def _bytes_once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def refused_item(asset_hash: str, reason: str) -> PushItemResult:
    """A batch result refusing one asset, with the reason."""
    return can_sync_pb2.PushBatchItemResult(hash=asset_hash, outcome=can_sync_pb2.PUSH_REFUSED, reason=reason)


def with_size(meta: can_sync_pb2.AssetMeta, size: int) -> can_sync_pb2.AssetMeta:
    """A copy of `meta` that states the content's size."""
    sized = can_sync_pb2.AssetMeta()
    sized.CopyFrom(meta)
    sized.size = size
    return sized


def batch_groups(items: Sequence[BatchItem]) -> Iterator[list[BatchItem]]:
    """Consecutive groups within the store's bounds; an asset too large for any batch goes alone."""
    group: list[BatchItem] = []
    group_bytes = 0
    for item in items:
        size = item[1].size
        if group and (len(group) >= PUSH_BATCH_MAX_ASSETS or group_bytes + size > PUSH_BATCH_MAX_BYTES):
            yield group
            group, group_bytes = [], 0
        group.append(item)
        group_bytes += size
    if group:
        yield group


async def gather_hash_pages(
    pages: AsyncIterator[can_sync_pb2.HashesResponse], since: int
) -> can_sync_pb2.HashesResponse:
    """Every page of a paged /sync/hashes answer as one answer with the last page's watermark."""
    gathered: dict[str, can_sync_pb2.AssetDigest] = {}
    watermark = since
    async for page in pages:
        for digest in page.assets:
            gathered.pop(digest.hash, None)  # changed again while we paged: keep it in its new place
            gathered[digest.hash] = digest
        watermark = page.watermark
    return can_sync_pb2.HashesResponse(assets=gathered.values(), watermark=watermark)
