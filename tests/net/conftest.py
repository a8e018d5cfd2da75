"""Real iroh endpoints on 127.0.0.1 with relays off (run inside tests/isolate.sh)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
from iroh.iroh_ffi import uniffi_set_event_loop

from cansync.net.endpoint import PeerConnection, PeerEndpoint, open_endpoint


@pytest.fixture(autouse=True)
async def _iroh_event_loop() -> AsyncIterator[None]:
    # The bindings keep one global loop: register this test's, and drop it afterwards.
    uniffi_set_event_loop(asyncio.get_running_loop())
    yield
    uniffi_set_event_loop(None)


async def new_endpoint(secret_key: bytes | None = None) -> PeerEndpoint:
    return await open_endpoint(secret_key or secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=[])


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[PeerEndpoint, PeerEndpoint]]:
    a, b = await new_endpoint(), await new_endpoint()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def connect_pair(dialer: PeerEndpoint, listener: PeerEndpoint) -> tuple[PeerConnection, PeerConnection]:
    """Dial `listener` from `dialer`; both ends of the new connection."""
    outgoing, incoming = await asyncio.wait_for(asyncio.gather(dialer.connect(listener.addr()), listener.accept()), 15)
    assert incoming is not None
    return outgoing, incoming


@pytest.fixture
async def connection(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> tuple[PeerConnection, PeerConnection]:
    return await connect_pair(*endpoints)
