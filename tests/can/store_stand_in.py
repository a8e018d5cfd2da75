"""An HTTP front for a real store that makes it answer like another CAN store: one that predates
/sync/push_batch and paged /sync/hashes (as the original CAN Service may), or one with smaller batch
bounds. Everything it does not change is forwarded to the real store process behind it, so the client
under test talks HTTP to a real store either way; the front only takes features away, the way such a
store would (404 for the route, the limit ignored, 413 for a batch over its bound).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from cansync.wire.pb import can_sync_pb2

_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class StoreStandIn:
    def __init__(self, store_url: str, *, batch_route: bool = True, paging: bool = True, max_batch_bytes: int = 0):
        self.store_url = store_url
        # called with the count of /sync/hashes answers so far, before each is handed on: a test can
        # change the store between the pages a client asks for
        self.between_pages: Callable[[int], Awaitable[None]] | None = None
        self.batch_route = batch_route
        self.paging = paging
        self.max_batch_bytes = max_batch_bytes  # 0: the real store's bounds
        self.requests: Counter[str] = Counter()  # route -> requests received
        self.answers: Counter[tuple[str, int]] = Counter()  # (route, status) -> answers given
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> StoreStandIn:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> StoreStandIn:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _refuse(self, route: str, status: int, message: str) -> web.Response:
        self.answers[(route, status)] += 1
        return web.json_response({"status": "error", "error": message}, status=status)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = request.path
        self.requests[route] += 1
        body = await request.read()
        query = dict(request.query)
        if route == "/sync/push_batch":
            if not self.batch_route:
                return self._refuse(route, 404, "Not Found")
            if self.max_batch_bytes and len(body) > self.max_batch_bytes:
                return self._refuse(route, 413, f"batch over {self.max_batch_bytes} bytes")
        if route == "/sync/hashes" and not self.paging:
            query.pop("limit", None)  # a store without paging knows no limit: it answers everything
            asked = can_sync_pb2.HashesRequest.FromString(body)
            body = can_sync_pb2.HashesRequest(since=asked.since).SerializeToString()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method, f"{self.store_url}{route}", params=query, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            status, content_type = upstream.status, upstream.content_type or "application/octet-stream"
        self.answers[(route, status)] += 1
        if route == "/sync/hashes" and self.between_pages is not None:
            await self.between_pages(self.requests[route])
        return web.Response(body=payload, status=status, content_type=content_type)
