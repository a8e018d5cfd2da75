"""`wait_for` as Python 3.12 has it, on 3.11 too.

Python 3.11's `asyncio.wait_for` swallows a cancellation that arrives in the same loop iteration as the
awaited work finishes (it returns the result instead of raising CancelledError; CPython gh-86296, fixed
in 3.12). A task so cancelled runs on: a TaskGroup that cancelled it then waits for it forever. This
one is built on `asyncio.timeout`, which hands every cancellation on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
    """Await `awaitable`, raising TimeoutError after `timeout` seconds (None: no limit)."""
    async with asyncio.timeout(timeout):
        return await awaitable
