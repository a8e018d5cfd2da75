"""Two real endpoints: connect, authenticate, control frames, large transfers, both directions at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets

import iroh
import pytest

from cansync.net.endpoint import ALPN, PeerConnection, PeerEndpoint, open_endpoint
from cansync.net.errors import BindFailed, ConnectFailed
from cansync.net.handshake import HandshakeKey, authenticate
from cansync.net.streams import FrameReader, FrameWriter
from cansync.wire.frames import FrameType
from cansync.wire.pb import can_sync_pb2, peer_pb2

from .conftest import connect_pair, new_endpoint

MiB = 1024 * 1024
CHUNK = 1 * MiB


async def send_blob(writer: FrameWriter, data: bytes) -> None:
    view = memoryview(data)
    await writer.write_message(
        peer_pb2.AssetHeader(meta=can_sync_pb2.AssetMeta(hash=hashlib.sha256(data).hexdigest(), size=len(data)))
    )
    for start in range(0, len(data), CHUNK):
        await writer.write_chunk(bytes(view[start : start + CHUNK]))
    await writer.write_message(peer_pb2.AssetEnd(hash=hashlib.sha256(data).hexdigest(), total=len(data)))
    await writer.finish()


async def receive_blob(reader: FrameReader) -> tuple[str, str, int]:
    """(hash announced, hash of what arrived, bytes) for one asset stream."""
    header = await reader.expect(FrameType.ASSET_HEADER)
    assert isinstance(header, peer_pb2.AssetHeader)
    digest = hashlib.sha256()
    total = 0
    while True:
        frame = await reader.read_message()
        assert frame is not None, "stream ended before AssetEnd"
        ftype, payload = frame
        if ftype is FrameType.CHUNK:
            assert isinstance(payload, bytes)
            digest.update(payload)
            total += len(payload)
            continue
        assert ftype is FrameType.ASSET_END and isinstance(payload, peer_pb2.AssetEnd)
        assert payload.total == total
        break
    assert await reader.read_frame() is None  # clean end after AssetEnd
    return header.meta.hash, digest.hexdigest(), total


async def authenticated_pair(
    endpoints: tuple[PeerEndpoint, PeerEndpoint], passphrase: str = "correct horse"
) -> tuple[PeerConnection, PeerConnection]:
    a, b = endpoints
    ca, cb = await connect_pair(a, b)
    key = HandshakeKey.derive(passphrase)
    ctl_a = await ca.open_control()

    async def responder() -> None:
        ctl_b = await cb.accept_control()
        await authenticate(ctl_b, key=key, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)

    await asyncio.gather(
        authenticate(ctl_a, key=key, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True), responder()
    )
    return ca, cb


async def test_connect_authenticate_control_frames_and_64_mib_transfer(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    a, b = endpoints
    ca, cb = await connect_pair(a, b)
    assert ca.remote_id_hex == b.id_hex and cb.remote_id_hex == a.id_hex
    key = HandshakeKey.derive("correct horse")
    ctl_a = await ca.open_control()
    ctl_b_task = asyncio.ensure_future(cb.accept_control())
    auth_a = asyncio.ensure_future(
        authenticate(ctl_a, key=key, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True)
    )
    ctl_b = await ctl_b_task
    await asyncio.gather(
        auth_a, authenticate(ctl_b, key=key, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
    )

    # control frames both ways on the same stream
    await ctl_a.write_message(peer_pb2.DigestRequest(since=0))
    assert await ctl_b.expect(FrameType.DIGEST_REQUEST) == peer_pb2.DigestRequest(since=0)
    batch = peer_pb2.DigestBatch(
        digests=[can_sync_pb2.AssetDigest(hash="ab" * 32, size=5)], watermark=3, full=True, last=True
    )
    await ctl_b.write_message(batch)
    assert await ctl_a.expect(FrameType.DIGEST_BATCH) == batch

    data = os.urandom(64 * MiB)
    sent_before, received_before = ca.bytes_sent, cb.bytes_received
    writer = await ca.open_transfer()

    async def receive() -> tuple[str, str, int]:
        reader = await cb.accept_transfer(timeout=30)
        assert reader is not None
        return await receive_blob(reader)

    _, (announced, arrived, total) = await asyncio.wait_for(asyncio.gather(send_blob(writer, data), receive()), 120)
    assert total == len(data) and arrived == announced == hashlib.sha256(data).hexdigest()
    # both counters saw the same frame bytes: the 64 MiB of content plus headers and small messages
    assert ca.bytes_sent - sent_before == cb.bytes_received - received_before
    assert len(data) < ca.bytes_sent - sent_before < len(data) + 4096
    assert ca.traffic.chunk_bytes_sent == cb.traffic.chunk_bytes_received == len(data)

    await ctl_a.write_message(peer_pb2.Goodbye(reason="done"))
    assert await ctl_b.expect(FrameType.GOODBYE) == peer_pb2.Goodbye(reason="done")
    ca.close("done")
    assert "done" in await asyncio.wait_for(cb.closed(), 10)
    assert await cb.accept_transfer(timeout=5) is None  # a closed connection yields no more streams


async def test_both_directions_at_once_do_not_deadlock(endpoints: tuple[PeerEndpoint, PeerEndpoint]) -> None:
    ca, cb = await authenticated_pair(endpoints)
    data_a, data_b = os.urandom(32 * MiB), os.urandom(32 * MiB)

    async def side(conn: PeerConnection, outgoing: bytes) -> tuple[str, str, int]:
        # send and receive concurrently: each side's receive must not wait for its own send
        writer = await conn.open_transfer()

        async def receive() -> tuple[str, str, int]:
            reader = await conn.accept_transfer(timeout=60)
            assert reader is not None
            return await receive_blob(reader)

        _, received = await asyncio.gather(send_blob(writer, outgoing), receive())
        return received

    got_at_a, got_at_b = await asyncio.wait_for(asyncio.gather(side(ca, data_a), side(cb, data_b)), 120)
    assert got_at_a[1] == got_at_a[0] == hashlib.sha256(data_b).hexdigest()
    assert got_at_b[1] == got_at_b[0] == hashlib.sha256(data_a).hexdigest()
    assert ca.traffic.chunk_bytes_sent == cb.traffic.chunk_bytes_received == len(data_a)
    assert cb.traffic.chunk_bytes_sent == ca.traffic.chunk_bytes_received == len(data_b)


async def test_dial_to_a_dead_address_fails_within_the_timeout() -> None:
    a, gone = await new_endpoint(), await new_endpoint()
    address = gone.addr()
    await gone.close()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectFailed, match=address.short_id):
            await a.connect(address, timeout=1.0)
        assert loop.time() - started < 5  # the bindings alone would wait 30 s
    finally:
        await a.close()


async def test_a_close_with_a_drain_limit_stops_waiting_on_a_dial_nobody_answered() -> None:
    # the unanswered dial keeps iroh's endpoint draining for about 3 s; a stopping process need not wait
    a, gone = await new_endpoint(), await new_endpoint()
    address = gone.addr()
    await gone.close()
    with pytest.raises(ConnectFailed):
        await a.connect(address, timeout=0.5)
    assert await a.close(drain_limit=0.2) is False
    assert await asyncio.wait_for(a.accept(), 5) is None  # the accept loop ended with it
    assert await a.close(drain_limit=0.2) is True  # closing again is a no-op


async def test_a_close_with_a_drain_limit_finishes_when_there_is_nothing_to_drain(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    a, b = endpoints
    ca, cb = await connect_pair(a, b)
    assert await a.close(drain_limit=10) is True
    assert "closed" in (await asyncio.wait_for(cb.closed(), 10)).lower()  # the peer was told


async def test_foreign_alpn_is_refused_and_the_endpoint_keeps_serving(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    a, b = endpoints
    stranger = await iroh.Endpoint.bind(
        iroh.EndpointOptions(
            preset=iroh.preset_minimal(), relay_mode=iroh.RelayMode.disabled(), bind_addr="127.0.0.1:0"
        )
    )
    try:
        with pytest.raises(iroh.IrohError):
            await asyncio.wait_for(stranger.connect(b.addr().to_iroh(), b"other/1"), 10)
        ca, cb = await connect_pair(a, b)  # ours still gets through, and it is the first one queued
        assert cb.remote_id_hex == a.id_hex
        assert ALPN == b"cansync/2"
    finally:
        await stranger.close()


async def test_accept_returns_none_once_closed() -> None:
    ep = await new_endpoint()
    waiter = asyncio.ensure_future(ep.accept())
    await asyncio.sleep(0.05)
    await ep.close()
    assert await asyncio.wait_for(waiter, 5) is None
    assert await asyncio.wait_for(ep.accept(), 5) is None


@pytest.mark.parametrize("relays", [None, ["https://relay.example.test/"], []], ids=["default", "custom", "off"])
async def test_every_relay_mode_binds_offline_and_connects_directly(relays: list[str] | None) -> None:
    a = await open_endpoint(secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=relays)
    b = await open_endpoint(secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=relays)
    try:
        outgoing, incoming = await connect_pair(a, b)
        assert outgoing.remote_id_hex == b.id_hex and incoming.remote_id_hex == a.id_hex
        assert any(addr.startswith("127.0.0.1:") for addr in b.addr().direct_addrs)
    finally:
        await a.close()
        await b.close()


async def test_unusable_relay_url_is_refused_at_bind() -> None:
    with pytest.raises(BindFailed, match="not-a-url"):
        await open_endpoint(secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=["not-a-url"])


async def test_bind_to_a_port_in_use_names_the_address() -> None:
    a = await new_endpoint()
    port = a.addr().direct_addrs[0].rsplit(":", 1)[1]
    try:
        with pytest.raises(BindFailed, match=f"127.0.0.1:{port}"):
            await open_endpoint(secrets.token_bytes(32), bind_addr=f"127.0.0.1:{port}", relays=[])
    finally:
        await a.close()
