"""One contract for both transports: real iroh endpoints on loopback and the simulation's MemoryNetwork.

Each behaviour cansync relies on (dialling, identities, stream ordering and flow control, how streams and
connections end, how dials fail) is asserted once and run against both, at the PeerEndpoint /
PeerConnection level and on the raw transport Protocol objects beneath them. The faults only the memory
network can script (cut, partition, heal, unbind) are tested at the end, on it alone.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator

import pytest

from cansync.config import Config
from cansync.net import transport
from cansync.net.address import EndpointAddress
from cansync.net.endpoint import ALPN, PeerConnection, PeerEndpoint
from cansync.net.errors import BindFailed, ConnectFailed, StreamClosed
from cansync.net.node_key import endpoint_id_of
from cansync.net.transport import LINK_ERRORS
from cansync.simulation.loop import SimulatedLoop, run_simulated
from cansync.simulation.memory_transport import MAX_STREAMS, STREAM_WINDOW, MemoryNetwork
from cansync.wire.addresses import parse_socket_addr
from cansync.wire.frames import FrameType
from cansync.wire.pb import peer_pb2
from tests.net.conftest import connect_pair, new_endpoint

MiB = 1024 * 1024
WAIT = 10.0  # an upper bound on anything that should happen at once; a hang fails instead of stalling CI


class Transport:
    """Binds endpoints on one transport and closes them all at the end of a test."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.network = MemoryNetwork()
        self._endpoints: list[PeerEndpoint] = []

    async def endpoint(self, secret_key: bytes | None = None) -> PeerEndpoint:
        key = secret_key or secrets.token_bytes(32)
        if self.kind == "iroh":
            endpoint = await new_endpoint(key)
        else:
            endpoint = await self.network.bind(key, Config())
        self._endpoints.append(endpoint)
        return endpoint

    async def pair(self) -> tuple[PeerConnection, PeerConnection]:
        return await connect_pair(await self.endpoint(), await self.endpoint())

    async def close_all(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.close()


@pytest.fixture(params=["iroh", "memory"])
async def net(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    transport_under_test = Transport(request.param)
    try:
        yield transport_under_test
    finally:
        await transport_under_test.close_all()


@pytest.fixture
async def memory() -> AsyncIterator[Transport]:
    transport_under_test = Transport("memory")
    try:
        yield transport_under_test
    finally:
        await transport_under_test.close_all()


def raw(conn: PeerConnection) -> transport.Connection:
    return conn._conn


async def read_to_end(recv: transport.RecvStream, limit: int = 64 * 1024) -> bytes:
    parts = []
    while piece := await asyncio.wait_for(recv.read(limit), WAIT):
        parts.append(piece)
    return b"".join(parts)


def error_text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return message() if callable(message) else str(exc)


async def assert_pending(call: asyncio.Future[object] | asyncio.Task[object], seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
    assert not call.done(), f"expected {call} to still wait"


# --------------------------------------------------------------------------- dialling and identity


async def test_dial_and_accept_know_each_other(net: Transport) -> None:
    a, b = await net.endpoint(), await net.endpoint()
    assert len(a.id_hex) == 64 and a.id_hex != b.id_hex
    assert a.addr().endpoint_id == a.id_hex and a.addr().direct_addrs
    outgoing, incoming = await connect_pair(a, b)
    assert outgoing.remote_id_hex == b.id_hex
    assert incoming.remote_id_hex == a.id_hex
    assert raw(outgoing).alpn() == raw(incoming).alpn() == ALPN
    assert str(raw(incoming).remote_id()) == a.id_hex
    # what the agent learns of a dialer's address: a parseable ip:port, on the selected path
    addrs = incoming.remote_direct_addrs()
    assert addrs and all(parse_socket_addr(addr) for addr in addrs)
    paths = raw(incoming).paths()
    assert any(p.is_selected and p.is_ip for p in paths)
    stats = outgoing.quic_stats()
    assert stats.udp_tx_bytes >= 0 and stats.lost_packets >= 0


async def test_endpoint_id_follows_the_secret_key(net: Transport) -> None:
    key = secrets.token_bytes(32)
    endpoint = await net.endpoint(key)
    assert endpoint.id_hex == endpoint_id_of(key)


async def test_crossing_dials_both_come_up(net: Transport) -> None:
    a, b = await net.endpoint(), await net.endpoint()
    a_out, b_out, b_in, a_in = await asyncio.wait_for(
        asyncio.gather(a.connect(b.addr()), b.connect(a.addr()), b.accept(), a.accept()), WAIT
    )
    assert a_in is not None and b_in is not None
    assert {a_out.remote_id_hex, a_in.remote_id_hex} == {b.id_hex}
    assert {b_out.remote_id_hex, b_in.remote_id_hex} == {a.id_hex}
    for sender, receiver in ((a_out, b_in), (b_out, a_in)):  # two separate, working connections
        send = await raw(sender).open_uni()
        await send.write_all(sender.remote_id_hex.encode())
        await send.finish()
        recv = await asyncio.wait_for(raw(receiver).accept_uni(), WAIT)
        assert await read_to_end(recv) == sender.remote_id_hex.encode()


async def test_dial_to_a_closed_endpoint_fails(net: Transport) -> None:
    a, gone = await net.endpoint(), await net.endpoint()
    address = gone.addr()
    await gone.close()
    with pytest.raises(ConnectFailed):
        await a.connect(address, timeout=0.5)


async def test_dial_to_an_unknown_id_fails_at_once(net: Transport) -> None:
    a = await net.endpoint()
    nowhere = EndpointAddress(endpoint_id_of(secrets.token_bytes(32)))  # no address, never met
    with pytest.raises(ConnectFailed):
        await a.connect(nowhere, timeout=WAIT)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(a._ep.connect(nowhere.to_iroh(), ALPN), WAIT)


async def test_dial_with_the_wrong_id_or_alpn_fails(net: Transport) -> None:
    a, b, c = await net.endpoint(), await net.endpoint(), await net.endpoint()
    impostor = EndpointAddress(c.id_hex, b.addr().direct_addrs)  # c's id at b's address
    with pytest.raises(ConnectFailed):
        await a.connect(impostor, timeout=WAIT)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(a._ep.connect(b.addr().to_iroh(), b"not-cansync/1"), WAIT)
    # neither attempt reached b's accept queue, and b still takes a proper dial
    outgoing, incoming = await connect_pair(a, b)
    assert incoming.remote_id_hex == a.id_hex


# --------------------------------------------------------------------------- streams


async def test_bi_stream_round_trip(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    bi = await raw(outgoing).open_bi()
    await bi.send().write_all(b"ping")
    await bi.send().finish()
    peer_bi = await asyncio.wait_for(raw(incoming).accept_bi(), WAIT)
    assert await read_to_end(peer_bi.recv()) == b"ping"
    await peer_bi.send().write_all(b"pong")
    await peer_bi.send().finish()
    assert await read_to_end(bi.recv()) == b"pong"


async def test_control_stream_and_transfer_stream_carry_frames(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    control = await outgoing.open_control()
    await control.write_message(peer_pb2.Goodbye(reason="hello there"))  # the first frame announces it
    peer_control = await incoming.accept_control(timeout=WAIT)
    assert await peer_control.expect(FrameType.GOODBYE) == peer_pb2.Goodbye(reason="hello there")

    writer = await incoming.open_transfer()
    await writer.write_chunk(b"c" * 100_000)
    await writer.finish()
    reader = await outgoing.accept_transfer(timeout=WAIT)
    assert reader is not None
    assert await reader.read_frame(timeout=WAIT) == (FrameType.CHUNK, b"c" * 100_000)
    assert await reader.read_frame(timeout=WAIT) is None
    assert outgoing.bytes_received == incoming.bytes_sent > 100_000


async def test_a_stream_is_seen_once_written_and_in_the_order_opened(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    first = await raw(outgoing).open_bi()
    second = await raw(outgoing).open_bi()
    accepting = asyncio.ensure_future(raw(incoming).accept_bi())
    await assert_pending(accepting)  # opening alone sends nothing
    await second.send().write_all(b"second")
    got_first = await asyncio.wait_for(accepting, WAIT)  # writing to the second announces the first too
    got_second = await asyncio.wait_for(raw(incoming).accept_bi(), WAIT)
    assert await asyncio.wait_for(got_second.recv().read(100), WAIT) == b"second"
    await first.send().write_all(b"first")
    assert await asyncio.wait_for(got_first.recv().read(100), WAIT) == b"first"


async def test_finish_alone_announces_an_empty_stream(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.finish()
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    assert await asyncio.wait_for(recv.read(10), WAIT) == b""


async def test_several_mib_arrive_in_order_past_a_slow_reader(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    payload = b"".join(i.to_bytes(4, "big") for i in range(6 * MiB // 4))
    send = await raw(outgoing).open_uni()
    writing = asyncio.ensure_future(send.write_all(payload))
    # flow control: with nobody reading, the writer stops after about one stream window
    await assert_pending(writing)
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    received = bytearray()
    while len(received) < len(payload):
        received += await asyncio.wait_for(recv.read(256 * 1024), WAIT)
        await asyncio.sleep(0.001)  # a reader slower than the writer
    await asyncio.wait_for(writing, WAIT)
    await send.finish()
    assert await asyncio.wait_for(recv.read(10), WAIT) == b""
    assert received == payload


async def test_finish_gives_end_of_stream_and_keeps_giving_it(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"abc")
    await send.finish()
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    assert await asyncio.wait_for(recv.read(10), WAIT) == b"abc"
    assert await asyncio.wait_for(recv.read(10), WAIT) == b""
    assert await asyncio.wait_for(recv.read(10), WAIT) == b""
    with pytest.raises(LINK_ERRORS):  # a finished stream takes no more writes
        await send.write_all(b"more")


async def test_read_exact_raises_when_the_stream_ends_early(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"abc")
    await send.finish()
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(recv.read_exact(5), WAIT)


async def test_read_exact_waits_for_the_bytes_it_needs(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"ab")
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    reading = asyncio.ensure_future(recv.read_exact(5))
    await assert_pending(reading, 0.1)
    await send.write_all(b"cdefg")
    assert await asyncio.wait_for(reading, WAIT) == b"abcde"


async def test_reset_makes_the_reader_raise(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"abc")
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    await send.reset(7)
    with pytest.raises(LINK_ERRORS) as caught:
        for _ in range(10):  # what arrived before the reset may or may not still be read first
            await asyncio.wait_for(recv.read(10), WAIT)
    assert "7" in error_text(caught.value)
    with pytest.raises(LINK_ERRORS):
        await send.write_all(b"after reset")


async def test_stop_makes_the_writer_raise(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"abc")
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    await recv.stop(5)
    with pytest.raises(LINK_ERRORS) as caught:
        for _ in range(100):
            await asyncio.wait_for(send.write_all(b"x" * 65536), WAIT)
            await asyncio.sleep(0.01)
    assert "5" in error_text(caught.value)


async def test_a_stopped_frame_reader_fails_the_frame_writer(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    writer = await outgoing.open_transfer()
    await writer.write_chunk(b"first")
    await writer.flush()  # a transfer writer holds small frames until asked
    reader = await incoming.accept_transfer(timeout=WAIT)
    assert reader is not None
    await reader.stop()
    with pytest.raises(StreamClosed):
        for _ in range(100):
            await writer.write_chunk(b"x" * 65536, timeout=WAIT)
            await asyncio.sleep(0.01)


async def test_opening_streams_waits_at_the_stream_limit(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    opened = 0
    while opened < MAX_STREAMS + 10:
        try:
            send = await asyncio.wait_for(raw(outgoing).open_uni(), 0.3)
        except TimeoutError:
            break
        await send.write_all(b"x")
        await send.finish()
        opened += 1
    assert MAX_STREAMS - 5 <= opened <= MAX_STREAMS  # nobody accepted: the opener is held at the limit


# --------------------------------------------------------------------------- how connections end


async def test_close_with_a_reason_reaches_the_other_side(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    send = await raw(outgoing).open_uni()
    await send.write_all(b"said before closing")
    await send.finish()
    recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
    await asyncio.sleep(0.2)  # let it land: data still in flight at the close may be lost
    waiting = asyncio.ensure_future(raw(incoming).accept_bi())
    await assert_pending(waiting, 0.05)
    outgoing.close("going away", code=9)

    reason = await asyncio.wait_for(incoming.closed(), WAIT)
    assert "going away" in reason and "9" in reason
    assert incoming.close_reason() == reason
    with pytest.raises(LINK_ERRORS):  # the peer's pending and later operations fail
        await asyncio.wait_for(waiting, WAIT)
    with pytest.raises(LINK_ERRORS):
        await raw(incoming).open_uni()
    assert await read_to_end(recv) == b"said before closing"  # what arrived stays readable

    assert await asyncio.wait_for(outgoing.closed(), WAIT)  # our side is closed too
    with pytest.raises(LINK_ERRORS):
        await raw(outgoing).open_bi()
    with pytest.raises(StreamClosed):
        await outgoing.open_control()
    assert await incoming.accept_transfer(timeout=WAIT) is None


async def test_close_reason_is_none_while_open(net: Transport) -> None:
    outgoing, incoming = await net.pair()
    assert outgoing.close_reason() is None and incoming.close_reason() is None


async def test_closing_an_endpoint_closes_its_connections_for_the_peer(net: Transport) -> None:
    a, b = await net.endpoint(), await net.endpoint()
    outgoing, incoming = await connect_pair(a, b)
    recv_waiting = asyncio.ensure_future(raw(incoming).accept_uni())
    await a.close()
    assert await asyncio.wait_for(incoming.closed(), WAIT)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(recv_waiting, WAIT)
    assert await asyncio.wait_for(a.accept(), WAIT) is None  # a closed endpoint accepts nothing more


# --------------------------------------------------------------------------- memory network only


async def test_memory_endpoint_has_a_stable_simulated_address(memory: Transport) -> None:
    key = secrets.token_bytes(32)
    first = await memory.endpoint(key)
    address = memory.network.address_of(first.id_hex)
    assert address == first.addr()
    assert address.direct_addrs[0].startswith("10.77.0.") and first.bound_sockets() == list(address.direct_addrs)
    with pytest.raises(BindFailed):
        await memory.endpoint(key)  # one identity, one live endpoint
    memory.network.unbind(first.id_hex)
    again = await memory.endpoint(key)  # a restart binds the same address again
    assert again.addr() == address


async def test_memory_cut_kills_both_sides_at_once(memory: Transport) -> None:
    a, b = await memory.endpoint(), await memory.endpoint()
    outgoing, incoming = await connect_pair(a, b)
    send = await raw(outgoing).open_uni()
    await send.write_all(b"x")
    recv = await raw(incoming).accept_uni()
    assert await recv.read(10) == b"x"
    reading = asyncio.ensure_future(recv.read(10))  # waits: nothing more was sent on this stream
    unread = await raw(outgoing).open_uni()
    writing = asyncio.ensure_future(unread.write_all(b"y" * (STREAM_WINDOW + 1)))  # nobody reads: it waits
    await assert_pending(writing, 0.05)
    assert not reading.done()
    memory.network.cut(a.id_hex, b.id_hex)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(reading, WAIT)
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(writing, WAIT)
    assert await asyncio.wait_for(outgoing.closed(), WAIT) == await asyncio.wait_for(incoming.closed(), WAIT)
    with pytest.raises(LINK_ERRORS):
        await send.write_all(b"z")
    # the endpoints themselves are fine: a new dial works
    again, _ = await connect_pair(a, b)
    assert again.remote_id_hex == b.id_hex


async def test_memory_partition_fails_dials_and_stalls_links_until_healed(memory: Transport) -> None:
    a, b = await memory.endpoint(), await memory.endpoint()
    outgoing, incoming = await connect_pair(a, b)
    send = await raw(outgoing).open_uni()
    await send.write_all(b"before")
    recv = await raw(incoming).accept_uni()
    assert await recv.read(100) == b"before"

    memory.network.partition(a.id_hex, b.id_hex)
    with pytest.raises(ConnectFailed):
        await a.connect(b.addr(), timeout=0.2)
    await send.write_all(b"during")
    with pytest.raises(TimeoutError):  # held on the wire, not lost
        await asyncio.wait_for(recv.read(100), 0.2)

    memory.network.heal(a.id_hex, b.id_hex)
    assert await asyncio.wait_for(recv.read(100), WAIT) == b"during"
    again, _ = await connect_pair(a, b)
    assert again.remote_id_hex == b.id_hex
    assert outgoing.close_reason() is None


async def test_memory_dial_waiting_in_a_partition_connects_once_healed(memory: Transport) -> None:
    a, b = await memory.endpoint(), await memory.endpoint()
    memory.network.partition(a.id_hex, b.id_hex)
    dialling = asyncio.ensure_future(a.connect(b.addr(), timeout=WAIT))
    await assert_pending(dialling, 0.1)
    memory.network.heal(a.id_hex, b.id_hex)
    conn = await asyncio.wait_for(dialling, WAIT)
    assert conn.remote_id_hex == b.id_hex


async def test_memory_unbind_is_a_crash(memory: Transport) -> None:
    key = secrets.token_bytes(32)
    a, b = await memory.endpoint(), await memory.endpoint(key)
    outgoing, incoming = await connect_pair(a, b)
    waiting = asyncio.ensure_future(raw(outgoing).accept_uni())
    memory.network.unbind(b.id_hex)
    assert await asyncio.wait_for(outgoing.closed(), WAIT) == "timed out"
    with pytest.raises(LINK_ERRORS):
        await asyncio.wait_for(waiting, WAIT)
    assert await asyncio.wait_for(b.accept(), WAIT) is None
    with pytest.raises(ConnectFailed):
        await a.connect(memory.network.address_of(b.id_hex), timeout=0.2)
    # a dial already under way gets through once the peer is back
    dialling = asyncio.ensure_future(a.connect(memory.network.address_of(b.id_hex), timeout=WAIT))
    await asyncio.sleep(0.05)
    restarted = await memory.endpoint(key)
    conn = await asyncio.wait_for(dialling, WAIT)
    assert conn.remote_id_hex == restarted.id_hex
    assert (await asyncio.wait_for(restarted.accept(), WAIT)) is not None


async def test_memory_latency_delays_but_keeps_order() -> None:
    network = MemoryNetwork(random.Random(7), latency_ms=(1, 30))
    a, b = await network.bind(secrets.token_bytes(32), Config()), await network.bind(secrets.token_bytes(32), Config())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outgoing, incoming = await connect_pair(a, b)
        assert loop.time() - started >= 0.002  # a handshake is at least two flights
        send = await raw(outgoing).open_uni()
        for i in range(50):
            await send.write_all(i.to_bytes(2, "big"))
        await send.finish()
        recv = await asyncio.wait_for(raw(incoming).accept_uni(), WAIT)
        assert await read_to_end(recv) == b"".join(i.to_bytes(2, "big") for i in range(50))
        outgoing.close("bye")
        assert "bye" in await asyncio.wait_for(incoming.closed(), WAIT)
    finally:
        await a.close()
        await b.close()


def test_memory_network_replays_exactly_under_the_simulated_loop() -> None:
    """Same seeds, same run: every delivery, timeout and fault lands at the same virtual instant."""

    async def exchange(loop: SimulatedLoop) -> tuple[list[tuple[int, int, float]], str]:
        keys = random.Random("keys")
        network = MemoryNetwork(random.Random("network"), latency_ms=(1, 40))
        a, b, c = [await network.bind(keys.randbytes(32), Config()) for _ in range(3)]
        arrivals: list[tuple[int, int, float]] = []

        async def send_and_receive(dialer: PeerEndpoint, listener: PeerEndpoint, tag: int) -> None:
            outgoing, incoming = await connect_pair(dialer, listener)
            for size in (10, 300_000, 2 * MiB):
                send = await raw(outgoing).open_uni()

                async def write(send: transport.SendStream = send, size: int = size) -> None:
                    await send.write_all(bytes([tag]) * size)  # 2 MiB waits for the reader: the window
                    await send.finish()

                writing = asyncio.ensure_future(write())
                recv = await raw(incoming).accept_uni()
                arrivals.append((tag, len(await read_to_end(recv, 70_000)), loop.time()))
                await writing

        await asyncio.gather(send_and_receive(a, b, 1), send_and_receive(b, c, 2), send_and_receive(c, a, 3))
        network.partition(a.id_hex, b.id_hex)
        with pytest.raises(ConnectFailed):
            await a.connect(b.addr(), timeout=5)
        await asyncio.sleep(40)  # past the idle timeout of the partitioned connection
        network.unbind(c.id_hex)
        for endpoint in (a, b):
            await endpoint.close()
        return arrivals, loop.trace_digest()

    first, again = run_simulated(11, exchange), run_simulated(11, exchange)
    assert first == again
    assert sorted(length for _, length, _ in first[0]) == sorted([10, 300_000, 2 * MiB] * 3)
