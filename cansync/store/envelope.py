"""The JSON envelope every API answer uses, and the middleware that turns errors into it."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from cansync.store.errors import StoreError
from cansync.store.naming import InvalidName

log = logging.getLogger("cansync.store")


def success(data: Any, status: int = 200) -> web.Response:
    return web.json_response({"status": "success", "data": data}, status=status)


def failure(message: str, status: int) -> web.Response:
    return web.json_response({"status": "error", "error": message}, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def envelope_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StoreError as exc:
        return failure(str(exc), exc.status)
    except InvalidName as exc:
        return failure(str(exc), 400)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return failure(exc.reason if exc.text is None else _plain(exc), exc.status)
        raise
    except (asyncio.IncompleteReadError, aiohttp.ClientPayloadError, ConnectionResetError) as exc:
        # the client went away or sent a body that ends early; usually nobody reads this answer
        return failure(f"the request body was cut off: {exc}", 400)
    except asyncio.CancelledError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            log.exception("internal error on %s %s", request.method, request.path)
            return failure(f"internal error: {type(exc).__name__}: {exc}", 500)
        # the half-written temp file is already gone (IncomingBlob.discard); nothing partial is visible
        log.error("storage_root is full: %s %s refused", request.method, request.path)
        return failure("no space left in the store's storage_root: free some space and send it again", 507)
    except Exception as exc:  # noqa: BLE001  (last resort: answer 500 and keep serving)
        log.exception("internal error on %s %s", request.method, request.path)
        return failure(f"internal error: {type(exc).__name__}: {exc}", 500)


def _plain(exc: web.HTTPException) -> str:
    text = exc.text or exc.reason
    # aiohttp's default bodies read "404: Not Found"; keep just the words
    return text.split(": ", 1)[-1] if text.startswith(str(exc.status)) else text
