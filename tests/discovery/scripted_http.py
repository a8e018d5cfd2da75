"""A tiny real HTTP/1.1 server on 127.0.0.1 whose answers a test scripts: any status, any body, or silence.

Used for the relay behaviours the npm relay cannot show (409, 428, 429, empty 200, garbage, a relay that
never answers). It speaks just enough HTTP for httpx: one request per connection, Content-Length bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    body: bytes


SILENCE = None  # a handler returning this keeps the connection open and never answers

Handler = Callable[[SeenRequest], Reply | None]


class ScriptedHttpServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[SeenRequest] = []
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> ScriptedHttpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _version = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = SeenRequest(method, path, body)
            self.requests.append(request)
            reply = self.handler(request)
            if reply is SILENCE:
                await asyncio.Event().wait()  # until the test ends and cancels us
                return
            reason = {200: "OK", 204: "No Content", 404: "Not Found"}.get(reply.status, "Scripted")
            out = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Length: {len(reply.body)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in reply.headers.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
