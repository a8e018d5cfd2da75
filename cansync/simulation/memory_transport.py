"""An in-memory stand-in for iroh, for running several real agents in one event loop.

`MemoryNetwork.bind` has the shape of `AgentEnvironment.bind`: it returns a `PeerEndpoint` around a
`MemoryEndpoint`, so everything above the transport Protocols (`cansync.net.transport`) runs unchanged.
The behaviour copies what cansync sees of iroh 1.2 (tests/net/test_transport_contract.py holds both to
one contract):

- a dial needs a direct address (or an earlier connection to that peer); the endpoint bound there must
  have the dialled id and accept the ALPN; a dead address fails only after DIAL_TIMEOUT, like a lost
  QUIC handshake;
- a stream is announced to the peer by its first write, finish or reset, and announcing one also
  announces the streams opened before it; at most MAX_STREAMS of each kind are open per opener;
- each stream direction carries at most STREAM_WINDOW unread bytes: `write_all` waits for the reader;
- a reset discards what the reader has not read; a stop makes the writer fail; data already received
  stays readable after the connection closes;
- every effect on the far side travels on one ordered "wire" per connection direction, delayed by a
  latency drawn from the seeded rng, and held while the two endpoints are partitioned.

Failures raise `TransportFault` with texts close to iroh's. No threads, sockets or wall clock: waits
are asyncio futures and `asyncio.sleep`, so a simulation loop with virtual time drives all of it.
Fault methods (`cut`, `partition`, `heal`, `unbind`) are plain calls made from inside the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import iroh

from cansync.config import Config
from cansync.net.address import EndpointAddress
from cansync.net.bandwidth import BandwidthLimiter
from cansync.net.endpoint import ALPN, PeerEndpoint
from cansync.net.errors import BindFailed
from cansync.net.node_key import endpoint_id_of
from cansync.net.transport import TransportFault

STREAM_WINDOW = 1024 * 1024  # unread bytes one stream direction may hold (iroh's is about 1.2 MiB)
MAX_STREAMS = 100  # concurrent streams of one kind one side may open (iroh's default)
DIAL_TIMEOUT = 30.0  # how long iroh keeps trying an address nobody answers at
IDLE_TIMEOUT = 30.0  # how long a partitioned connection lives on before it times out
TIMED_OUT = "timed out"  # what iroh says of a connection whose peer went silent
ADDRESS_PORT_BASE = 40000


class _Signal:
    """Wakes every waiter when something changed; a waiter re-checks what it waits for."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def register(self) -> asyncio.Future[None]:
        """A future the next notify() resolves, registered now: a wake-up between a check and the
        wait cannot be lost."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def discard(self, waiter: asyncio.Future[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    async def wait(self) -> None:
        waiter = self.register()
        try:
            await waiter
        finally:
            self.discard(waiter)

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def _wait_until(signal: _Signal, ready: Callable[[], bool], deadline: float | None = None) -> bool:
    """Wait until ready() holds (True) or the loop's clock passes deadline (False)."""
    loop = asyncio.get_running_loop()
    while not ready():
        if deadline is None:
            await signal.wait()
            continue
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        waiter = signal.register()
        try:
            # a future, not a coroutine: wait_for would run a coroutine as a task that registers late
            await asyncio.wait_for(waiter, remaining)
        except TimeoutError:
            return ready()
        finally:
            signal.discard(waiter)
    return True


class _Wire:
    """One direction of a connection: effects on the far side arrive in order, after their latency."""

    def __init__(self, link: _Link, to_side: int) -> None:
        self._link = link
        self._to_side = to_side
        self._queue: deque[tuple[float, Callable[[], None]]] = deque()
        self._last_at = 0.0
        self._pump: asyncio.Task[None] | None = None

    def send(self, effect: Callable[[], None]) -> None:
        link = self._link
        if not link.sides[self._to_side].alive:
            return  # nobody is listening at the far end any more
        network = link.network
        delay = network.draw_latency()
        if delay == 0 and not self._queue and not link.partitioned():
            effect()
            return
        loop = asyncio.get_running_loop()
        self._last_at = max(loop.time() + delay, self._last_at)
        self._queue.append((self._last_at, effect))
        if self._pump is None or self._pump.done():
            self._pump = network.spawn(self._deliver_queued(), "memory-wire")

    async def _deliver_queued(self) -> None:
        loop = asyncio.get_running_loop()
        link = self._link
        receiver = link.sides[self._to_side]
        while self._queue and receiver.alive:
            at, effect = self._queue[0]
            if at > loop.time():
                await asyncio.sleep(at - loop.time())
                continue
            if link.partitioned():
                await _wait_until(link.network.changed, lambda: not link.partitioned() or not receiver.alive)
                continue
            self._queue.popleft()
            effect()
        self._queue.clear()

    def drop(self) -> None:
        self._queue.clear()


@dataclass(eq=False)
class _Pipe:
    """One direction of a stream, shared by its writer and its reader."""

    link: _Link
    writer_side: int
    stream: _StreamSlot
    unread: bytearray = field(default_factory=bytearray)
    sent: int = 0  # bytes the writer put on the wire
    consumed: int = 0  # bytes the reader took (or dropped): the window moves with this
    finished: bool = False  # the writer called finish
    reset_by_writer: int | None = None
    fin_received: bool = False
    reset_received: int | None = None
    stopped_by_reader: int | None = None
    stop_received: int | None = None  # the writer learned of the stop
    eof_read: bool = False

    @property
    def reader_side(self) -> int:
        return 1 - self.writer_side

    @property
    def done_for_reader(self) -> bool:
        return self.eof_read or self.reset_received is not None or self.stopped_by_reader is not None

    def wire_to_reader(self, effect: Callable[[], None]) -> None:
        self.link.wires[self.reader_side].send(effect)

    def wire_to_writer(self, effect: Callable[[], None]) -> None:
        self.link.wires[self.writer_side].send(effect)


class _StreamSlot:
    """A stream as its opener's stream limit counts it: freed once each direction is done."""

    def __init__(self, link: _Link, opener: int, bidirectional: bool, index: int) -> None:
        self.link = link
        self.opener = opener
        self.bidirectional = bidirectional
        self.index = index
        self.announced = False
        self.freed = False
        self.pipes: list[_Pipe] = []

    def check_freed(self) -> None:
        if not self.freed and all(pipe.done_for_reader for pipe in self.pipes):
            self.freed = True
            self.link.sides[self.opener].release_slot(self.bidirectional)


class MemorySendStream:
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def _check_writable(self) -> None:
        pipe = self._pipe
        pipe.link.sides[pipe.writer_side].raise_if_dead("ConnectionLost")
        if pipe.stop_received is not None:
            raise TransportFault(f"Stopped({pipe.stop_received})")
        if pipe.finished or pipe.reset_by_writer is not None:
            raise TransportFault("ClosedStream")

    async def write_all(self, buf: bytes) -> None:
        pipe, link = self._pipe, self._pipe.link
        data = bytes(buf)
        offset = 0
        while True:
            self._check_writable()
            if offset >= len(data):
                return  # (an empty write sends nothing, so it announces nothing either)
            room = STREAM_WINDOW - (pipe.sent - pipe.consumed)
            if room <= 0:
                await link.signal.wait()
                continue
            piece = data[offset : offset + room]
            offset += len(piece)
            pipe.sent += len(piece)
            link.sides[pipe.writer_side].bytes_sent += len(piece)
            link.sides[pipe.writer_side].announce(pipe.stream)
            if piece:
                pipe.wire_to_reader(functools.partial(self._arrive, piece))

    def _arrive(self, piece: bytes) -> None:
        pipe, link = self._pipe, self._pipe.link
        link.sides[pipe.reader_side].bytes_received += len(piece)
        if pipe.stopped_by_reader is not None or pipe.reset_received is not None:
            pipe.consumed += len(piece)  # nobody will read it: give the window back
        else:
            pipe.unread += piece
        link.signal.notify()

    async def finish(self) -> None:
        pipe = self._pipe
        pipe.link.sides[pipe.writer_side].raise_if_dead("ConnectionLost")
        if pipe.finished or pipe.reset_by_writer is not None:
            raise TransportFault("ClosedStream")
        pipe.finished = True
        pipe.link.sides[pipe.writer_side].announce(pipe.stream)
        pipe.wire_to_reader(self._fin_arrives)

    def _fin_arrives(self) -> None:
        self._pipe.fin_received = True
        self._pipe.link.signal.notify()

    async def reset(self, error_code: int) -> None:
        pipe = self._pipe
        pipe.link.sides[pipe.writer_side].raise_if_dead("ConnectionLost")
        if pipe.reset_by_writer is not None:
            raise TransportFault("ClosedStream")
        pipe.reset_by_writer = error_code
        pipe.link.sides[pipe.writer_side].announce(pipe.stream)
        pipe.wire_to_reader(lambda: self._reset_arrives(error_code))

    def _reset_arrives(self, error_code: int) -> None:
        pipe = self._pipe
        if pipe.eof_read or pipe.stopped_by_reader is not None:
            return  # the reader already saw the end; iroh drops a late reset the same way
        pipe.reset_received = error_code
        pipe.consumed += len(pipe.unread)  # a reset throws away what was not read
        pipe.unread.clear()
        pipe.stream.check_freed()
        pipe.link.signal.notify()


class MemoryRecvStream:
    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def _take(self, limit: int) -> bytes:
        pipe = self._pipe
        piece = bytes(pipe.unread[:limit])
        del pipe.unread[:limit]
        pipe.consumed += len(piece)
        pipe.link.signal.notify()  # the writer may have room again
        return piece

    def _at_end(self) -> bool:
        pipe = self._pipe
        if not pipe.eof_read:
            pipe.eof_read = True
            pipe.stream.check_freed()
        return True

    async def read(self, size_limit: int) -> bytes:
        pipe, link = self._pipe, self._pipe.link
        while True:
            if pipe.reset_received is not None:
                raise TransportFault(f"Reset({pipe.reset_received})")
            if pipe.unread and size_limit > 0:
                return self._take(size_limit)
            if pipe.fin_received or pipe.stopped_by_reader is not None:
                self._at_end()
                return b""
            link.sides[pipe.reader_side].raise_if_dead("ConnectionLost")
            if size_limit <= 0:
                return b""
            await link.signal.wait()

    async def read_exact(self, size: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while got < size:
            piece = await self.read(size - got)
            if not piece:
                raise TransportFault(f"FinishedEarly({got})")
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    async def stop(self, error_code: int) -> None:
        pipe = self._pipe
        pipe.link.sides[pipe.reader_side].raise_if_dead("ConnectionLost")
        if pipe.stopped_by_reader is not None or pipe.eof_read or pipe.reset_received is not None:
            raise TransportFault("ClosedStream")
        pipe.stopped_by_reader = error_code
        pipe.consumed += len(pipe.unread)
        pipe.unread.clear()
        pipe.stream.check_freed()
        pipe.link.signal.notify()
        pipe.wire_to_writer(lambda: self._stop_arrives(error_code))

    def _stop_arrives(self, error_code: int) -> None:
        self._pipe.stop_received = error_code
        self._pipe.link.signal.notify()


class MemoryBiStream:
    def __init__(self, send: MemorySendStream, recv: MemoryRecvStream) -> None:
        self._send = send
        self._recv = recv

    def send(self) -> MemorySendStream:
        return self._send

    def recv(self) -> MemoryRecvStream:
        return self._recv


DATAGRAM_PAYLOAD = 1200  # to turn stream bytes into a plausible datagram count


class MemoryConnection:
    """One side of a connection between two memory endpoints."""

    def __init__(self, link: _Link, side: int) -> None:
        self._link = link
        self._side = side
        self.alive = True
        self._failure: str | None = None  # what a failing op says, once dead
        self._reason: str | None = None  # what closed() returns, once dead
        self._incoming_bi: deque[MemoryBiStream] = deque()
        self._incoming_uni: deque[MemoryRecvStream] = deque()
        self._next_index = {True: 0, False: 0}  # by bidirectional: the stream ids of each kind
        self._unannounced: dict[bool, list[tuple[_StreamSlot, object]]] = {True: [], False: []}
        self._live_slots = {True: 0, False: 0}
        self.bytes_sent = 0
        self.bytes_received = 0

    # --- what the rest of this module uses

    def raise_if_dead(self, what: str = "") -> None:
        if not self.alive:
            raise TransportFault(f"{what}({self._failure})" if what else str(self._failure))

    def die(self, failure: str, reason: str) -> None:
        if not self.alive:
            return
        self.alive = False
        self._failure, self._reason = failure, reason
        self._link.wires[self._side].drop()
        self._link.signal.notify()
        self._link.network.changed.notify()  # a wire held by a partition stops waiting for the heal
        self._link.on_side_died()

    def announce(self, slot: _StreamSlot) -> None:
        """The peer learns of this stream, and of every stream of its kind opened before it."""
        if slot.announced:
            return
        pending = self._unannounced[slot.bidirectional]
        while pending and pending[0][0].index <= slot.index:
            earlier, far_end = pending.pop(0)
            earlier.announced = True
            self._link.wires[1 - self._side].send(functools.partial(self._link.sides[1 - self._side].arrive, far_end))

    def arrive(self, far_end: object) -> None:
        if isinstance(far_end, MemoryBiStream):
            self._incoming_bi.append(far_end)
        elif isinstance(far_end, MemoryRecvStream):
            self._incoming_uni.append(far_end)
        self._link.signal.notify()

    def release_slot(self, bidirectional: bool) -> None:
        self._live_slots[bidirectional] -= 1
        self._link.signal.notify()

    # --- the transport.Connection Protocol

    def remote_id(self) -> iroh.EndpointId:
        return self._link.endpoints[1 - self._side].iroh_id

    def alpn(self) -> bytes:
        return self._link.alpn

    async def _new_slot(self, bidirectional: bool) -> _StreamSlot:
        await _wait_until(self._link.signal, lambda: not self.alive or self._live_slots[bidirectional] < MAX_STREAMS)
        self.raise_if_dead()
        self._live_slots[bidirectional] += 1
        slot = _StreamSlot(self._link, self._side, bidirectional, self._next_index[bidirectional])
        self._next_index[bidirectional] += 1
        return slot

    async def open_bi(self) -> MemoryBiStream:
        slot = await self._new_slot(True)
        outgoing = _Pipe(self._link, self._side, slot)
        incoming = _Pipe(self._link, 1 - self._side, slot)
        slot.pipes = [outgoing, incoming]
        far_end = MemoryBiStream(MemorySendStream(incoming), MemoryRecvStream(outgoing))
        self._unannounced[True].append((slot, far_end))
        return MemoryBiStream(MemorySendStream(outgoing), MemoryRecvStream(incoming))

    async def open_uni(self) -> MemorySendStream:
        slot = await self._new_slot(False)
        pipe = _Pipe(self._link, self._side, slot)
        slot.pipes = [pipe]
        self._unannounced[False].append((slot, MemoryRecvStream(pipe)))
        return MemorySendStream(pipe)

    async def accept_bi(self) -> MemoryBiStream:
        await _wait_until(self._link.signal, lambda: not self.alive or bool(self._incoming_bi))
        self.raise_if_dead()
        return self._incoming_bi.popleft()

    async def accept_uni(self) -> MemoryRecvStream:
        await _wait_until(self._link.signal, lambda: not self.alive or bool(self._incoming_uni))
        self.raise_if_dead()
        return self._incoming_uni.popleft()

    def close(self, error_code: int, reason: bytes) -> None:
        self.close_telling_peer(error_code, reason, "closed")

    def close_telling_peer(self, error_code: int, reason: bytes, local_reason: str) -> None:
        """Die here at once; the peer hears the code and reason after the wire's latency."""
        if not self.alive:
            return
        text = bytes(reason).decode("utf-8", "replace")
        peer = self._link.sides[1 - self._side]
        said = f"closed by peer: {text} (code {error_code})" if text else f"closed by peer: {error_code}"
        failure = f"ApplicationClosed(code {error_code}: {text!r})"
        self._link.wires[1 - self._side].send(lambda: peer.die(failure, said))
        self.die("LocallyClosed", local_reason)

    async def closed(self) -> str:
        await _wait_until(self._link.signal, lambda: not self.alive)
        assert self._reason is not None
        return self._reason

    def close_reason(self) -> str | None:
        return self._reason

    def paths(self) -> list[iroh.PathSnapshot]:
        rtt_ms = 2 * self._link.network.latency_ms[0]
        record = iroh.PathStatsRecord(
            rtt_ms=rtt_ms,
            udp_tx_datagrams=-(-self.bytes_sent // DATAGRAM_PAYLOAD),
            udp_tx_bytes=self.bytes_sent,
            udp_rx_datagrams=-(-self.bytes_received // DATAGRAM_PAYLOAD),
            udp_rx_bytes=self.bytes_received,
            cwnd=STREAM_WINDOW,
            congestion_events=0,
            lost_packets=0,
            lost_bytes=0,
            current_mtu=DATAGRAM_PAYLOAD,
        )
        remote = self._link.endpoints[1 - self._side].address
        return [
            iroh.PathSnapshot(
                id="0", is_selected=True, remote_addr=remote, is_ip=True, is_relay=False, rtt_ms=rtt_ms, stats=record
            )
        ]

    def stats(self) -> iroh.ConnectionStats:
        """iroh's counters, made from stream bytes (no headers, no losses)."""
        return iroh.ConnectionStats(
            udp_tx_datagrams=-(-self.bytes_sent // DATAGRAM_PAYLOAD),
            udp_tx_bytes=self.bytes_sent,
            udp_rx_datagrams=-(-self.bytes_received // DATAGRAM_PAYLOAD),
            udp_rx_bytes=self.bytes_received,
            lost_packets=0,
            lost_bytes=0,
        )


class _Link:
    """Both sides of one connection: side 0 dialled, side 1 accepted."""

    def __init__(self, network: MemoryNetwork, dialer: MemoryEndpoint, listener: MemoryEndpoint, alpn: bytes) -> None:
        self.network = network
        self.endpoints = (dialer, listener)
        self.alpn = alpn
        self.signal = _Signal()
        self.sides = (MemoryConnection(self, 0), MemoryConnection(self, 1))
        self.wires = (_Wire(self, 0), _Wire(self, 1))
        self.serial = network.next_link_serial()  # links are walked in this order, never in set order

    def joins(self, a: str, b: str) -> bool:
        ids = {self.endpoints[0].endpoint_id, self.endpoints[1].endpoint_id}
        return ids == {a, b}

    def partitioned(self) -> bool:
        return self.network.is_partitioned(self.endpoints[0].endpoint_id, self.endpoints[1].endpoint_id)

    def kill(self, reason: str) -> None:
        """Both sides die at once, as when the path between them is gone."""
        for side in self.sides:
            side.die(reason, reason)

    def on_side_died(self) -> None:
        if not any(side.alive for side in self.sides):
            for endpoint in self.endpoints:
                endpoint.links.discard(self)


class MemoryIncoming:
    def __init__(self, link: _Link, answered: asyncio.Future[None]) -> None:
        self._link = link
        self._answered = answered

    async def accept(self) -> MemoryAccepting:
        if self._answered.done() or not self._link.sides[0].alive:
            raise TransportFault("ConnectionLost(the dialer gave up)")
        self._answered.set_result(None)
        self._link.endpoints[1].wake()  # the dialer waits on the listener's signal
        return MemoryAccepting(self._link)


class MemoryAccepting:
    def __init__(self, link: _Link) -> None:
        self._link = link

    async def alpn(self) -> bytes:
        return self._link.alpn

    async def connect(self) -> MemoryConnection:
        side = self._link.sides[1]
        side.raise_if_dead("ConnectionLost")
        return side


class MemoryEndpoint:
    """An endpoint on a MemoryNetwork: dials by direct address, accepts what others dial."""

    def __init__(self, network: MemoryNetwork, endpoint_id: str, address: str, alpns: Iterable[bytes]) -> None:
        self.network = network
        self.endpoint_id = endpoint_id
        self.iroh_id = iroh.EndpointId.from_string(endpoint_id)
        self.address = address
        self.alpns = frozenset(alpns)
        self.links: set[_Link] = set()
        self.known_peers: set[str] = set()  # iroh's address cache: peers it can dial by id alone
        self._incoming: deque[MemoryIncoming] = deque()
        self._signal = _Signal()
        self.closed = False

    def id(self) -> iroh.EndpointId:
        return self.iroh_id

    def addr(self) -> iroh.EndpointAddr:
        return iroh.EndpointAddr(self.iroh_id, None, [self.address])

    def bound_sockets(self) -> list[str]:
        return [self.address]

    async def connect(self, addr: iroh.EndpointAddr, alpn: bytes) -> MemoryConnection:
        if self.closed:
            raise TransportFault("Endpoint is closed")
        target_id = str(addr.id())
        if target_id == self.endpoint_id:
            raise TransportFault("Connecting to ourself is not supported")
        addresses = list(addr.direct_addresses())
        if target_id in self.known_peers:
            addresses.append(self.network.address_of(target_id).direct_addrs[0])
        if not addresses:
            raise TransportFault("No address lookup configured")
        network = self.network
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DIAL_TIMEOUT
        while True:
            listener = await self._reach(addresses, deadline)
            await asyncio.sleep(network.draw_latency())  # the first flight of the handshake
            if self.closed:
                raise TransportFault("Endpoint is closed")
            if listener.closed or network.is_partitioned(self.endpoint_id, listener.endpoint_id):
                continue  # lost on the way: keep trying until the deadline, as QUIC does
            if listener.endpoint_id != target_id:
                raise TransportFault("the cryptographic handshake failed: invalid peer certificate: UnknownIssuer")
            if alpn not in listener.alpns:
                raise TransportFault("aborted by peer: peer doesn't support any known protocol")
            return await self._handshake(listener, alpn, deadline)

    async def _reach(self, addresses: list[str], deadline: float) -> MemoryEndpoint:
        """The endpoint bound at one of `addresses` that we are not partitioned from, once there is one."""
        found: list[MemoryEndpoint] = []

        def reachable() -> bool:
            found.clear()
            for address in addresses:
                listener = self.network.bound_at(address)
                if listener is not None and not self.network.is_partitioned(self.endpoint_id, listener.endpoint_id):
                    found.append(listener)
                    return True
            return self.closed

        if not await _wait_until(self.network.changed, reachable, deadline):
            raise TransportFault(f"ConnectError: {TIMED_OUT}")
        if self.closed:
            raise TransportFault("Endpoint is closed")
        return found[0]

    async def _handshake(self, listener: MemoryEndpoint, alpn: bytes, deadline: float) -> MemoryConnection:
        link = _Link(self.network, self, listener, alpn)
        answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            listener.offer(MemoryIncoming(link, answered))
            if not await _wait_until(listener._signal, lambda: answered.done() or listener.closed, deadline):
                raise TransportFault(f"ConnectError: {TIMED_OUT}")
            if not answered.done():
                raise TransportFault("ConnectError: the peer closed its endpoint")
            await asyncio.sleep(self.network.draw_latency())  # the answer's flight back
            link.sides[0].raise_if_dead("ConnectError: ConnectionLost")
        except BaseException:
            link.kill("aborted by peer")
            raise
        self.links.add(link)
        listener.links.add(link)
        self.known_peers.add(listener.endpoint_id)
        listener.known_peers.add(self.endpoint_id)
        return link.sides[0]

    def wake(self) -> None:
        self._signal.notify()

    def offer(self, incoming: MemoryIncoming) -> None:
        self._incoming.append(incoming)
        self._signal.notify()

    async def accept_next(self) -> MemoryIncoming | None:
        await _wait_until(self._signal, lambda: self.closed or bool(self._incoming))
        if self.closed:
            return None
        return self._incoming.popleft()

    async def close(self) -> None:
        """A clean shutdown: peers hear "closed by peer: 0" (after their latency)."""
        for link in sorted(self.links, key=self.network.link_order):
            link.sides[link.endpoints.index(self)].close_telling_peer(0, b"", "endpoint closed")
        self._leave()

    def crash(self) -> None:
        """The process died: every connection to it is gone at once, nothing said."""
        for link in sorted(self.links, key=self.network.link_order):
            link.kill(TIMED_OUT)
        self._leave()

    def _leave(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._incoming.clear()
        self._signal.notify()
        self.network.forget(self)


class MemoryNetwork:
    """Endpoints that reach each other in memory, with seeded latency and scripted faults."""

    def __init__(self, rng: random.Random | None = None, latency_ms: tuple[int, int] = (0, 0)) -> None:
        low, high = latency_ms
        if not 0 <= low <= high:
            raise ValueError(f"latency_ms must be (low, high) with 0 <= low <= high, got {latency_ms}")
        self.rng = rng if rng is not None else random.Random(0)
        self.latency_ms = latency_ms
        self.changed = _Signal()  # binds, unbinds and heals: what a waiting dial re-checks
        self._numbers: dict[str, int] = {}  # endpoint id -> its host number, kept across restarts
        self._bound: dict[str, MemoryEndpoint] = {}
        self._partitions: dict[frozenset[str], int] = {}  # pair -> the partition's generation
        self._generation = 0
        self._link_serial = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # the network's own tasks (wires, partition timers) run in the context it was made in, so a
        # simulation that stops one agent's callbacks does not stop deliveries between the others
        self._context = contextvars.copy_context()

    # --- the interface the simulation uses

    async def bind(self, secret_key: bytes, config: Config) -> PeerEndpoint:
        """Like bind_iroh (the configured bandwidth limits included, on the loop's clock)."""
        endpoint_id = endpoint_id_of(secret_key)
        if endpoint_id in self._bound:
            raise BindFailed(f"endpoint {endpoint_id[:10]} is already bound on this memory network")
        number = self._numbers.setdefault(endpoint_id, len(self._numbers) + 1)
        endpoint = MemoryEndpoint(self, endpoint_id, _address_for(number), [ALPN])
        self._bound[endpoint_id] = endpoint
        self.changed.notify()
        clock = asyncio.get_running_loop().time
        peer = PeerEndpoint(
            endpoint,
            send_limiter=_limiter(config.max_send_kbps, clock),
            recv_limiter=_limiter(config.max_recv_kbps, clock),
        )
        peer._start_accepting()
        return peer

    def address_of(self, endpoint_id: str) -> EndpointAddress:
        """Where endpoint_id is (or was last) bound: what a peer dials."""
        number = self._numbers.get(endpoint_id)
        if number is None:
            raise KeyError(f"endpoint {endpoint_id[:10]} was never bound on this memory network")
        return EndpointAddress(endpoint_id, (_address_for(number),))

    def cut(self, a: str, b: str) -> None:
        """Every connection between a and b dies now, on both sides."""
        for link in self._links_between(a, b):
            link.kill(TIMED_OUT)

    def partition(self, a: str, b: str) -> None:
        """Dials between a and b stop getting through, and their connections stall (and time out
        after IDLE_TIMEOUT) until heal(a, b)."""
        pair = frozenset((a, b))
        if pair in self._partitions:
            return
        self._generation += 1
        self._partitions[pair] = self._generation
        links = self._links_between(a, b)
        if links:
            self.spawn(self._time_out_if_partitioned(pair, self._generation, links), "memory-partition")

    def heal(self, a: str, b: str) -> None:
        if self._partitions.pop(frozenset((a, b)), None) is not None:
            self.changed.notify()

    def unbind(self, endpoint_id: str) -> None:
        """What a crash does: the endpoint vanishes and its connections die (peers see a timeout)."""
        endpoint = self._bound.get(endpoint_id)
        if endpoint is not None:
            endpoint.crash()

    # --- for the endpoints and wires

    def draw_latency(self) -> float:
        low, high = self.latency_ms
        if high == 0:
            return 0.0
        return self.rng.randint(low, high) / 1000

    def is_partitioned(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._partitions

    def bound_at(self, address: str) -> MemoryEndpoint | None:
        for endpoint in self._bound.values():
            if endpoint.address == address:
                return endpoint
        return None

    def forget(self, endpoint: MemoryEndpoint) -> None:
        if self._bound.get(endpoint.endpoint_id) is endpoint:
            del self._bound[endpoint.endpoint_id]
        self.changed.notify()

    @staticmethod
    def link_order(link: _Link) -> int:
        return link.serial

    def next_link_serial(self) -> int:
        self._link_serial += 1
        return self._link_serial

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name, context=self._context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _links_between(self, a: str, b: str) -> list[_Link]:
        endpoint = self._bound.get(a) or self._bound.get(b)
        if endpoint is None:
            return []
        return sorted((link for link in endpoint.links if link.joins(a, b)), key=self.link_order)

    async def _time_out_if_partitioned(self, pair: frozenset[str], generation: int, links: list[_Link]) -> None:
        await asyncio.sleep(IDLE_TIMEOUT)
        if self._partitions.get(pair) == generation:
            for link in links:
                link.kill(TIMED_OUT)


def _address_for(number: int) -> str:
    return f"10.77.{number >> 8}.{number & 0xFF}:{ADDRESS_PORT_BASE + number}"


def _limiter(kib_per_s: int, clock: Callable[[], float]) -> BandwidthLimiter | None:
    return BandwidthLimiter(kib_per_s, clock=clock) if kib_per_s > 0 else None
