"""The agent's web server: the dashboard page, its JSON API and /metrics, on web_addr.

    server = await start_web(view, "127.0.0.1:3290", token=None)
    ...
    await server.close()

Routes: `/` (the page), `GET /api/status`, `GET /api/journal?hash=&peer=&kind=&limit=`,
`POST /api/peers/{id}/pause` and `/resume`, `GET /metrics` (Prometheus text).

Guards, in order:
- with a token configured, every route needs `Authorization: Bearer <token>` or `?token=<token>`;
- without one (loopback only, config enforces it), the Host header must name a loopback address, so a
  web page elsewhere cannot reach the API through DNS rebinding;
- a POST must carry the `X-Cansync-Request: 1` header, which a cross-site form cannot send.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from cansync.config import is_loopback_host
from cansync.web.metrics import CONTENT_TYPE_LATEST, metrics_registry, render_metrics
from cansync.web.view import AgentView

log = logging.getLogger(__name__)

REQUEST_HEADER = "X-Cansync-Request"
DEFAULT_JOURNAL_LIMIT = 50
_VIEW_KEY = web.AppKey("view", AgentView)
_REGISTRY_KEY: web.AppKey[Any] = web.AppKey("registry")
_PAGE_KEY = web.AppKey("page", bytes)


class WebConfigError(ValueError):
    """An address the web server cannot listen on."""


@dataclass
class WebServer:
    """The running server: its base URL (with the port actually bound) and how to stop it."""

    url: str
    _runner: web.AppRunner

    async def close(self) -> None:
        await self._runner.cleanup()


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _guard(token: str | None) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            given = request.query.get("token", "")
            authorization = request.headers.get("Authorization", "")
            if authorization.startswith("Bearer "):
                given = authorization[len("Bearer ") :]
            if not hmac.compare_digest(given.encode(), token.encode()):
                log.debug("refused %s %s: no valid token", request.method, request.path)
                return _error(
                    401,
                    "this agent's dashboard needs its web_token: open /?token=<web_token>",
                    **{"WWW-Authenticate": "Bearer"},
                )
        elif not is_loopback_host(request.url.host or ""):
            return _error(403, "without a web_token this dashboard answers only to a loopback address")
        if request.method == "POST" and request.headers.get(REQUEST_HEADER) != "1":
            return _error(403, f"a POST needs the {REQUEST_HEADER}: 1 header (the dashboard page sends it)")
        return await handler(request)

    return guard


async def _page(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[_PAGE_KEY], content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[_VIEW_KEY].status())


async def _journal(request: web.Request) -> web.Response:
    query = request.query
    try:
        limit = int(query.get("limit") or DEFAULT_JOURNAL_LIMIT)
    except ValueError:
        return _error(400, f"limit must be a whole number, got {query.get('limit')!r}")
    try:
        rows = await request.app[_VIEW_KEY].journal_rows(
            hash_prefix=query.get("hash") or None,
            peer=query.get("peer") or None,
            kind=query.get("kind") or None,
            limit=limit,
        )
    except ValueError as exc:
        return _error(400, str(exc))
    return _json({"rows": rows})


async def _pause(request: web.Request) -> web.Response:
    return await _set_paused(request, True)


async def _resume(request: web.Request) -> web.Response:
    return await _set_paused(request, False)


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    peer = request.match_info["peer"]
    try:
        await request.app[_VIEW_KEY].set_paused(peer, paused)
    except KeyError:
        return _error(404, f"no peer {peer[:16]} is known to this agent")
    log.info("peer %s %s from the dashboard", peer[:10], "paused" if paused else "resumed")
    return _json({"peer": peer, "paused": paused})


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=render_metrics(request.app[_REGISTRY_KEY]), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json", headers={"Cache-Control": "no-store"})


def build_web_app(view: AgentView, token: str | None) -> web.Application:
    app = web.Application(middlewares=[_guard(token)])
    app[_VIEW_KEY] = view
    app[_REGISTRY_KEY] = metrics_registry(view)
    app[_PAGE_KEY] = resources.files("cansync.web").joinpath("dashboard.html").read_bytes()
    app.router.add_get("/", _page)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/journal", _journal)
    app.router.add_post("/api/peers/{peer}/pause", _pause)
    app.router.add_post("/api/peers/{peer}/resume", _resume)
    app.router.add_get("/metrics", _metrics)
    return app


async def start_web(view: AgentView, addr: str, token: str | None) -> WebServer:
    """Serve the dashboard on `addr` (host:port; port 0 picks one). The config has checked the address."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise WebConfigError(f"web_addr must look like 127.0.0.1:3290, got {addr!r}")
    host = host.removeprefix("[").removesuffix("]")
    runner = web.AppRunner(build_web_app(view, token), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, int(port)).start()
    except OSError as exc:
        await runner.cleanup()
        raise WebConfigError(f"cannot serve the dashboard on web_addr {addr}: {exc.strerror or exc}") from exc
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    log.info("dashboard at %s/%s", url, "?token=<web_token>" if token else "")
    return WebServer(url, runner)
