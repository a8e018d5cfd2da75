"""The loopback TcpProxy (tests/can/tcp_proxy.py) run on its own event loop thread, so synchronous
harness code can put it between an agent and its store and cut it at any moment."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.can.tcp_proxy import TcpProxy

T = TypeVar("T")


class CuttableLink:
    """A TCP proxy to 127.0.0.1:target_port that keeps its own port across cuts."""

    def __init__(self, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{target_port}", daemon=True)
        self._thread.start()
        self._proxy = TcpProxy(target_port)
        self._run(self._proxy.start())

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def url(self) -> str:
        return self._proxy.url

    @property
    def connections(self) -> int:
        return self._proxy.connections

    def cut(self) -> None:
        """Abort every open connection (the agent's SSE stream among them) and refuse new ones."""
        self._run(self._proxy.stop())

    def restore(self) -> None:
        """Listen again on the same port."""
        self._run(self._proxy.start())

    def close(self) -> None:
        self._run(self._proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()
