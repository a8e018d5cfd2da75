"""Our iroh endpoint: bind with a persisted key, dial and accept cansync connections, open streams.

Everything iroh-specific the agent needs goes through PeerEndpoint and PeerConnection, so the
bindings' quirks (event-loop registration, the per-byte send copy, no connect timeout) are handled
in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import iroh
from iroh.iroh_ffi import uniffi_set_event_loop

from cansync.net import fastwrite, transport
from cansync.net.address import EndpointAddress
from cansync.net.bandwidth import BandwidthLimiter
from cansync.net.error_text import full_error_text, one_line_error
from cansync.net.errors import BindFailed, ConnectFailed, PeerTimeout, StreamClosed
from cansync.net.streams import FramedStream, FrameReader, FrameWriter, TrafficCounter
from cansync.net.transport import LINK_ERRORS
from cansync.portable.timeouts import wait_for
from cansync.wire.frames import DEFAULT_LIMITS, FrameLimits

log = logging.getLogger(__name__)
T = TypeVar("T")

ALPN = b"cansync/2"  # 2: wants, transfer headers and AssetUnavailable carry a request id
INCOMING_HANDSHAKE_TIMEOUT = 10.0
CLOSE_OK = 0


def _relay_options(relays: Sequence[str] | None) -> tuple[iroh.Preset, iroh.RelayMode | None]:
    if relays is None:
        return iroh.preset_n0(), None  # iroh's default relays and address lookup
    if not relays:
        return iroh.preset_minimal(), iroh.RelayMode.disabled()
    return iroh.preset_minimal(), iroh.RelayMode.custom_from_urls(list(relays))


def _register_loop() -> None:
    # The bindings drive every async call (and callback) through one globally registered loop.
    uniffi_set_event_loop(asyncio.get_running_loop())  # type: ignore[arg-type]


class PeerConnection:
    """One authenticated-or-not QUIC connection to a peer, speaking ALPN cansync/2."""

    def __init__(
        self,
        conn: transport.Connection,
        *,
        limits: FrameLimits = DEFAULT_LIMITS,
        send_limiter: BandwidthLimiter | None = None,
        recv_limiter: BandwidthLimiter | None = None,
    ) -> None:
        self._conn = conn
        self.remote_id_hex = str(conn.remote_id())
        self.limits = limits
        # the agent's limiters, shared with every other connection: the limit is per agent, not per peer
        self.send_limiter = send_limiter
        self.recv_limiter = recv_limiter
        self.traffic = TrafficCounter()
        self._streams_opened = 0

    @property
    def bytes_sent(self) -> int:
        return self.traffic.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.traffic.bytes_received

    def _label(self, kind: str) -> str:
        self._streams_opened += 1
        return f"peer {self.remote_id_hex[:10]} {kind} stream #{self._streams_opened}"

    def _reader(self, recv: transport.RecvStream, label: str) -> FrameReader:
        return FrameReader(recv, label=label, counter=self.traffic, limits=self.limits, limiter=self.recv_limiter)

    def _writer(self, send: transport.SendStream, label: str, *, coalesce: bool = False) -> FrameWriter:
        return FrameWriter(
            send, label=label, counter=self.traffic, limits=self.limits, limiter=self.send_limiter, coalesce=coalesce
        )

    async def _await(self, call: Awaitable[T], timeout: float | None, what: str) -> T:
        try:
            return await wait_for(call, timeout)
        except TimeoutError:
            raise PeerTimeout(f"peer {self.remote_id_hex[:10]}: {what} took over {timeout:g} s") from None
        except LINK_ERRORS as exc:
            raise StreamClosed(f"peer {self.remote_id_hex[:10]}: {what} failed: {one_line_error(exc)}") from exc

    async def open_control(self, timeout: float = 10.0) -> FramedStream:
        """Open the control bi-stream (the peer sees it once we write the first frame)."""
        bi: transport.BiStream = await self._await(self._conn.open_bi(), timeout, "opening the control stream")
        label = self._label("control")
        return FramedStream(self._reader(bi.recv(), label), self._writer(bi.send(), label))

    async def accept_control(self, timeout: float | None = 10.0) -> FramedStream:
        bi: transport.BiStream = await self._await(self._conn.accept_bi(), timeout, "waiting for the control stream")
        label = self._label("control")
        return FramedStream(self._reader(bi.recv(), label), self._writer(bi.send(), label))

    async def open_transfer(self, timeout: float = 10.0) -> FrameWriter:
        """A new uni-stream for one asset (blocks while the peer's stream limit is reached)."""
        send: transport.SendStream = await self._await(self._conn.open_uni(), timeout, "opening a transfer stream")
        # a transfer stream's frames may wait to leave together: its assets are journaled as sent only
        # once the stream has finished, and the session flushes after each large one
        return self._writer(send, self._label("transfer"), coalesce=True)

    async def accept_transfer(self, timeout: float | None = None) -> FrameReader | None:
        """The next transfer stream the peer opened, or None once the connection is closed."""
        try:
            recv: transport.RecvStream = await self._await(
                self._conn.accept_uni(), timeout, "waiting for a transfer stream"
            )
        except StreamClosed:
            return None
        return self._reader(recv, self._label("transfer"))

    def close(self, reason: str = "bye", code: int = CLOSE_OK) -> None:
        with contextlib.suppress(*LINK_ERRORS):
            self._conn.close(code, reason.encode()[:100])

    async def closed(self) -> str:
        """Wait until the connection ends; the reason it ended."""
        return await self._conn.closed()

    def close_reason(self) -> str | None:
        return self._conn.close_reason()

    def remote_direct_addrs(self) -> tuple[str, ...]:
        """The peer's IP addresses this connection uses, selected path first: where a dialer can reach
        it (QUIC sends from the socket it listens on)."""
        paths = sorted((p for p in self._conn.paths() if p.is_ip), key=lambda p: not p.is_selected)
        return tuple(dict.fromkeys(p.remote_addr for p in paths))

    def quic_stats(self) -> iroh.ConnectionStats:
        return self._conn.stats()


class PeerEndpoint:
    """Our iroh endpoint. Make one with `open_endpoint`."""

    def __init__(
        self,
        endpoint: transport.Endpoint,
        *,
        limits: FrameLimits = DEFAULT_LIMITS,
        send_limiter: BandwidthLimiter | None = None,
        recv_limiter: BandwidthLimiter | None = None,
    ) -> None:
        self._ep = endpoint
        self.limits = limits
        self.send_limiter = send_limiter
        self.recv_limiter = recv_limiter
        self._incoming: asyncio.Queue[PeerConnection | None] = asyncio.Queue()
        self._accept_task: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def id_hex(self) -> str:
        return str(self._ep.id())

    def addr(self) -> EndpointAddress:
        return EndpointAddress.from_iroh(self._ep.addr())

    def bound_sockets(self) -> list[str]:
        return self._ep.bound_sockets()

    async def connect(self, address: EndpointAddress, timeout: float = 10.0) -> PeerConnection:
        """Dial a peer; ConnectFailed (never a hang: the bindings alone wait 30 s on a dead address)."""
        where = f"peer {address.short_id} at {', '.join(address.direct_addrs) or address.relay_url or 'no address'}"
        try:
            conn = await wait_for(self._ep.connect(address.to_iroh(), ALPN), timeout)
        except TimeoutError:
            raise ConnectFailed(f"connecting to {where} timed out after {timeout:g} s") from None
        except LINK_ERRORS as exc:
            raise ConnectFailed(f"connecting to {where} failed: {one_line_error(exc)}") from exc
        peer = self._peer_connection(conn)
        if peer.remote_id_hex != address.endpoint_id:  # iroh checks this in TLS; belt and braces
            peer.close("wrong identity")
            raise ConnectFailed(f"{where} answered as {peer.remote_id_hex}")
        return peer

    async def accept(self) -> PeerConnection | None:
        """The next incoming cansync connection, or None once the endpoint is closed."""
        if self._closed and self._incoming.empty():
            return None
        conn = await self._incoming.get()
        if conn is None:
            self._incoming.put_nowait(None)  # keep answering None to later callers
        return conn

    def _start_accepting(self) -> None:
        # Handshakes are completed in the background from bind on (a dialer waits for them);
        # finished connections wait in a queue for accept().
        self._accept_task = asyncio.create_task(self._accept_loop(), name="cansync-accept")

    async def _accept_loop(self) -> None:
        try:
            while True:
                try:
                    incoming = await self._ep.accept_next()
                except LINK_ERRORS as exc:
                    log.warning("accepting connections stopped: %s", one_line_error(exc))
                    break
                if incoming is None:
                    break
                task = asyncio.create_task(self._complete_incoming(incoming))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
        finally:
            self._incoming.put_nowait(None)

    async def _complete_incoming(self, incoming: transport.Incoming) -> None:
        """Finish one incoming QUIC handshake in its own task, so a slow dialer blocks nobody."""
        try:
            accepting = await wait_for(incoming.accept(), INCOMING_HANDSHAKE_TIMEOUT)
            alpn = await wait_for(accepting.alpn(), INCOMING_HANDSHAKE_TIMEOUT)
            if alpn != ALPN:
                log.info("refused an incoming connection speaking ALPN %r, not %r", alpn, ALPN)
                return  # dropping `accepting` aborts the handshake
            conn = await wait_for(accepting.connect(), INCOMING_HANDSHAKE_TIMEOUT)
        except TimeoutError:
            log.info("an incoming connection did not finish its handshake in %g s", INCOMING_HANDSHAKE_TIMEOUT)
            return
        except LINK_ERRORS as exc:
            log.info("an incoming connection failed during its handshake: %s", one_line_error(exc))
            log.debug("the handshake's full error chain: %s", full_error_text(exc))
            return
        if conn.alpn() != ALPN:
            conn.close(1, b"wrong protocol")
            return
        self._incoming.put_nowait(self._peer_connection(conn))

    def _peer_connection(self, conn: transport.Connection) -> PeerConnection:
        return PeerConnection(conn, limits=self.limits, send_limiter=self.send_limiter, recv_limiter=self.recv_limiter)

    async def close(self, drain_limit: float | None = None) -> bool:
        """Close every connection and the endpoint. True once iroh says it is closed; False if it was
        still draining after `drain_limit` seconds and we stopped waiting.

        A dial that got no answer keeps the endpoint draining for three probe timeouts (about 3 s
        on loopback) though there is no one to tell. Stopping the wait is only for a process about to
        exit: the endpoint's sockets stay bound until it does. The close frames to live peers were sent
        when the close began, so they learn at once either way.
        """
        if self._closed:
            return True
        self._closed = True
        for task in list(self._handshakes):
            task.cancel()
        drained = True
        with contextlib.suppress(*LINK_ERRORS):
            try:
                await wait_for(self._ep.close(), drain_limit)
            except TimeoutError:
                drained = False
        if self._accept_task is not None:
            if not drained:
                self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        self._incoming.put_nowait(None)
        return drained

    async def __aenter__(self) -> PeerEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def open_endpoint(
    secret_key: bytes,
    *,
    bind_addr: str,
    relays: Sequence[str] | None,
    alpns: list[bytes] | None = None,
    limits: FrameLimits = DEFAULT_LIMITS,
    send_limiter: BandwidthLimiter | None = None,
    recv_limiter: BandwidthLimiter | None = None,
) -> PeerEndpoint:
    """Bind an iroh endpoint. relays: None = iroh's defaults, [] = no relays, else these relay URLs.

    send_limiter / recv_limiter (None = unlimited) hold every stream of every connection to one rate.
    """
    _register_loop()
    status = fastwrite.install()
    if status not in (fastwrite.FastWriteStatus.INSTALLED, fastwrite.FastWriteStatus.ALREADY_INSTALLED):
        log.warning("iroh fast-write patch not active (%s): sends may be slow", status.value)
    try:
        preset, relay_mode = _relay_options(relays)
    except LINK_ERRORS as exc:
        raise BindFailed(f"relays {list(relays or [])} are not usable relay URLs: {one_line_error(exc)}") from exc
    options = iroh.EndpointOptions(
        preset=preset,
        bind_addr=bind_addr,
        secret_key=bytes(secret_key),
        alpns=list(alpns) if alpns is not None else [ALPN],
        relay_mode=relay_mode,
    )
    try:
        endpoint = await iroh.Endpoint.bind(options)
    except LINK_ERRORS as exc:
        raise BindFailed(f"cannot bind the iroh endpoint to {bind_addr}: {one_line_error(exc)}") from exc
    peer_endpoint = PeerEndpoint(endpoint, limits=limits, send_limiter=send_limiter, recv_limiter=recv_limiter)
    peer_endpoint._start_accepting()
    return peer_endpoint
