"""Transport errors are one line: the bindings' Rust error chains never reach a message whole."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import iroh
import pytest

from cansync.net.address import EndpointAddress
from cansync.net.errors import ConnectFailed
from tests.net.conftest import new_endpoint


async def test_a_refused_dial_is_a_one_line_connect_failed() -> None:
    other = await iroh.Endpoint.bind(
        iroh.EndpointOptions(
            preset=iroh.preset_minimal(), relay_mode=iroh.RelayMode.disabled(), bind_addr="127.0.0.1:0",
            secret_key=secrets.token_bytes(32), alpns=[b"not-cansync/1"],
        )
    )  # fmt: skip
    ours = await new_endpoint()

    async def refuse_one() -> None:  # the other side finishes its half of the handshake, which fails
        incoming = await other.accept_next()
        assert incoming is not None
        with contextlib.suppress(iroh.IrohError):
            await (await incoming.accept()).connect()

    refusing = asyncio.create_task(refuse_one())
    try:
        with pytest.raises(ConnectFailed) as caught:
            await ours.connect(EndpointAddress.from_iroh(other.addr()), timeout=10)
        message = str(caught.value)
        assert "\n" not in message and ".rs:" not in message and "Caused by" not in message
        assert message.startswith("connecting to peer ") and "protocol" in message
    finally:
        refusing.cancel()
        await ours.close()
        await other.close()
