"""The agent: the journal, the machine, the store client, the endpoint and discovery, wired together.

A byte's way: store SSE -> LocalFeed -> journal -> machine -> Advertise -> session -> peer, and on the
peer: Want -> journal -> machine -> SendAsset -> store pull -> transfer stream -> staging -> journal ->
machine -> StoreAsset -> intake -> store push -> journal (the received-from-peer mark).

`Agent.open(config)` builds the whole agent (every part exists once it returns) and `run()` serves until
cancelled; every task it starts belongs to a TaskGroup inside `run()`. `close()` releases what `open`
took, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cansync.agent.asset_intake import AssetIntake
from cansync.agent.dispatch import Dispatcher
from cansync.agent.embedded_store import EmbeddedStore, embedded_sync_key
from cansync.agent.internet_discovery import InternetDiscovery
from cansync.agent.ledger import Ledger
from cansync.agent.local_feed import LocalFeed
from cansync.agent.metadata_writer import MetadataWriter
from cansync.agent.own_digests import OwnDigestSet
from cansync.agent.peer_directory import PeerDirectory
from cansync.agent.session import PeerSession
from cansync.agent.staging import StagingArea
from cansync.can.client import CanClient
from cansync.can.errors import CanServiceAuthError, CanServiceError
from cansync.can.store_client import StoreClient
from cansync.config import Config, ConfigError
from cansync.core import messages as msg
from cansync.core.events import (
    Direction,
    Event,
    PeerConnected,
    PeerDisconnected,
    PeerPaused,
    PeerRejected,
    PeerResumed,
)
from cansync.core.links import Link, keep_new_link
from cansync.core.machine import SyncState
from cansync.core.peer_state import LinkStatus
from cansync.core.reconcile import DigestSet
from cansync.core.recovery import CutOffTransfer, cut_off_transfers, receipt_after_restart
from cansync.discovery.lan import LanDiscovery
from cansync.journal.recorder import Journal, wall_ms
from cansync.net.address import EndpointAddress
from cansync.net.bandwidth import limiter_for
from cansync.net.endpoint import ALPN, PeerConnection, PeerEndpoint, open_endpoint
from cansync.net.errors import AuthenticationFailed, TransportError
from cansync.net.handshake import FailureLimiter, HandshakeKey, authenticate
from cansync.net.node_key import NodeIdentity
from cansync.net.tickets import write_ticket_file
from cansync.portable.heap import release_free_memory
from cansync.portable.timeouts import wait_for
from cansync.wire.pb import peer_pb2

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 15.0
RATE_WINDOW_SECS = 10.0
STORE_CATCH_UP_WAIT = 30.0
DUPLICATE_CLOSE_GRACE = 1.0
SESSION_END_WAIT = 10.0  # a session asked to end that has not after this long is reported (with where it waits)
TICK_SECS = 2.0
SUMMARY_SECS = 60.0
MiB = 1024 * 1024
PROBE_SINCE = 1 << 62  # a change-clock value no store reaches: an answer with nothing in it


Bind = Callable[[bytes, Config], Awaitable[PeerEndpoint]]


async def bind_iroh(secret_key: bytes, config: Config) -> PeerEndpoint:
    """The iroh endpoint of a real agent, with the configured bandwidth limits on every stream."""
    return await open_endpoint(
        secret_key,
        bind_addr=config.bind_addr,
        relays=config.relays,
        alpns=[ALPN],
        send_limiter=limiter_for(config.max_send_kbps),
        recv_limiter=limiter_for(config.max_recv_kbps),
    )


@dataclass(frozen=True)
class AgentEnvironment:
    """What an agent takes from the world around it. A real agent takes the defaults; the deterministic
    simulation passes its own clock, randomness, transport and store."""

    clock: Callable[[], int] = wall_ms  # ms since the epoch: journal times, deferrals, keepalives
    random_bytes: Callable[[int], bytes] = secrets.token_bytes  # boot id, handshake nonces
    bind: Bind = bind_iroh
    store: StoreClient | None = None  # None: the configured store (embedded, or can_service_url)
    open_journal: Callable[[Path, Callable[[], int]], Awaitable[Journal]] = lambda path, clock: Journal.open(
        path, clock=clock
    )


class Agent:
    def __init__(
        self,
        *,
        config: Config,
        identity: NodeIdentity,
        journal: Journal,
        ledger: Ledger,
        dispatcher: Dispatcher,
        can: StoreClient,
        store_url: str,
        endpoint: PeerEndpoint,
        handshake_key: HandshakeKey,
        staging: StagingArea,
        environment: AgentEnvironment,
        resources: AsyncExitStack,
    ) -> None:
        self.config = config
        self.passphrase = config.require_passphrase()
        self.identity = identity
        self.journal = journal
        self.ledger = ledger
        self.dispatcher = dispatcher
        self.can = can
        self.store_url = store_url
        self.endpoint = endpoint
        self.staging = staging
        self.environment = environment
        self.clock = environment.clock
        self._key = handshake_key
        self._resources = resources
        self.boot_id = environment.random_bytes(16)  # tells peers when this process is a new one
        self.started_ms = self.clock()
        self.limiter = FailureLimiter(max_failures=5, window_s=60.0, clock=lambda: self.clock() / 1000)
        self._traffic: list[tuple[int, int, int]] = []  # (ms, bytes in, bytes out): samples for the rates
        self.feed = LocalFeed(can, ledger, our_id=self.our_id, poll_interval=config.poll_interval_secs)
        self.intake = AssetIntake(can, staging, ledger, dispatcher.pushes)
        self.metadata_writer = MetadataWriter(can, dispatcher.metadata)
        self.directory = PeerDirectory(
            self, ledger, id_is_enough=config.relays != (), connect_ticket_file=config.connect_ticket_file
        )
        self._own_digests = OwnDigestSet()
        self.stopped = asyncio.Event()

    # ------------------------------------------------------------------ building and releasing

    @classmethod
    async def open(cls, config: Config, environment: AgentEnvironment | None = None) -> Agent:
        """Take the node key, open the journal and the ledger, start or reach the store, bind the endpoint."""
        env = environment or AgentEnvironment()
        clock = env.clock
        passphrase = config.require_passphrase()
        resources = AsyncExitStack()
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            identity = NodeIdentity.acquire(config.data_dir)
            resources.callback(identity.release)
            journal = await env.open_journal(config.journal_path, clock)
            resources.push_async_callback(journal.close)
            dispatcher = Dispatcher()
            ledger = await Ledger.open(journal, dispatch=dispatcher.dispatch, clock=clock)
            resources.push_async_callback(ledger.close)
            await _close_stale_links(ledger)
            staging = StagingArea(config.staging_dir)
            await asyncio.to_thread(staging.prune, ledger.state.may_be_staged())
            can: StoreClient
            if env.store is not None:
                can = env.store
            else:
                can = await _reach_store(config, resources)
            await _settle_cut_off_transfers(ledger, staging, can)
            key = await asyncio.to_thread(HandshakeKey.derive, passphrase)
            endpoint = await env.bind(identity.secret_key, config)
            resources.push_async_callback(endpoint.close)
        except BaseException:
            await resources.aclose()
            raise
        agent = cls(
            config=config, identity=identity, journal=journal, ledger=ledger, dispatcher=dispatcher, can=can,
            store_url=can.base_url, endpoint=endpoint, handshake_key=key, staging=staging, environment=env,
            resources=resources,
        )  # fmt: skip
        log.info("agent %s started (store %s, journal %s)", agent.our_id[:10], can.base_url, config.journal_path)
        return agent

    async def close(self, *, endpoint_drain_limit: float | None = None) -> None:
        """Release what open() took: the endpoint, the store, the ledger and journal, the node key.

        endpoint_drain_limit: for a process about to exit, how long to wait for the endpoint to finish
        closing (PeerEndpoint.close); None waits for it.
        """
        if not await self.endpoint.close(endpoint_drain_limit):
            log.debug("stopped waiting for the endpoint to finish closing after %g s", endpoint_drain_limit)
        await self._resources.aclose()
        self.stopped.set()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def our_id(self) -> str:
        return self.identity.endpoint_id

    @property
    def sessions(self) -> dict[str, PeerSession]:
        return self.dispatcher.sessions

    def clock_ms(self) -> int:
        return self.clock()

    # ------------------------------------------------------------------ serving

    async def run(self) -> None:
        """Serve until cancelled. Every task below lives in this TaskGroup (and theirs in their own)."""
        self._write_tickets()
        self.dispatcher.dispatch(self.ledger.state.pending_stores())  # pushes a crash cut off
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.feed.run(), name="local-feed")
                group.create_task(self.intake.run(), name="asset-intake")
                group.create_task(self.metadata_writer.run(), name="metadata-writer")
                group.create_task(self._accept_loop(), name="accept")
                group.create_task(self.directory.run(*self._discovery_sources()), name="peer-directory")
                group.create_task(self._keep_time(), name="ticks")
                group.create_task(self._summarize(), name="summaries")
                group.create_task(self._warm_own_digests(), name="own-digests")
        finally:
            self.stopped.set()

    def _discovery_sources(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        config = self.config
        sources: list[Callable[[], Coroutine[Any, Any, None]]] = []
        if config.pkarr_relays:
            internet = InternetDiscovery(
                passphrase=self.passphrase,
                our_id=self.our_id,
                secret_key=self.identity.secret_key,
                pkarr_relays=config.pkarr_relays,
                our_address=self.ticket_address,
                learn=self.directory.learn,
                id_is_enough=config.relays != (),
                publish_interval=config.rendezvous_publish_secs,
                scan_interval=config.rendezvous_scan_secs,
            )
            sources.append(internet.run)
        if config.lan_discovery:
            lan = LanDiscovery(
                self.passphrase, self.our_id, lambda: list(self.ticket_address().direct_addrs), self._lan_peer
            )
            sources.append(lan.run)
        return sources

    async def _lan_peer(self, endpoint_id: str, addrs: list[str]) -> None:
        try:
            address = EndpointAddress(endpoint_id, tuple(addrs))
        except ValueError as exc:
            log.info("ignored a LAN beacon with an unusable address: %s", exc)
            return
        await self.directory.learn(address, via="lan")

    async def _keep_time(self) -> None:
        """Requests deferred after a failure of ours, and pushes our store could not take, wait on the clock;
        the traffic rates are sampled here too."""
        while True:
            await asyncio.sleep(TICK_SECS)
            self._sample_traffic()
            with contextlib.suppress(Exception):  # a failing journal is reported by the ledger itself
                await self.ledger.tick()
            if self._moved_since_last_tick():
                # transfer chunks fragment the heap: while a 4 GiB asset synced, the agents' median RSS was
                # 144-150 MB without this and 138-140 MB with it (bench/memory_bench.py)
                await asyncio.to_thread(release_free_memory)

    def _moved_since_last_tick(self) -> bool:
        return len(self._traffic) >= 2 and self._traffic[-1][1:] != self._traffic[-2][1:]

    def _sample_traffic(self) -> None:
        moved_in = sum(s.conn.traffic.chunk_bytes_received for s in self.sessions.values())
        moved_out = sum(s.conn.traffic.chunk_bytes_sent for s in self.sessions.values())
        now = self.clock()
        self._traffic.append((now, moved_in, moved_out))
        while self._traffic and now - self._traffic[0][0] > RATE_WINDOW_SECS * 1000:
            self._traffic.pop(0)

    def rates(self) -> dict[str, float]:
        """Content bytes a second, each way, over the last RATE_WINDOW_SECS (sessions that ended drop out)."""
        if len(self._traffic) < 2:
            return {"bytes_in_per_s": 0.0, "bytes_out_per_s": 0.0}
        (t0, in0, out0), (t1, in1, out1) = self._traffic[0], self._traffic[-1]
        seconds = max((t1 - t0) / 1000, 0.001)
        return {"bytes_in_per_s": max(0, in1 - in0) / seconds, "bytes_out_per_s": max(0, out1 - out0) / seconds}

    async def _summarize(self) -> None:
        """One line a minute while assets move (an idle agent says nothing)."""
        last = self.progress()
        while True:
            await asyncio.sleep(SUMMARY_SECS)
            now = self.progress()
            received, sent = now[0] - last[0], now[1] - last[1]
            if received or sent:
                log.info(
                    "last minute: received %d asset(s) (%.1f MiB), sent %d (%.1f MiB); %d still wanted, %d owed",
                    received, (now[2] - last[2]) / MiB, sent, (now[3] - last[3]) / MiB, now[4], now[5],
                )  # fmt: skip
            last = now

    def progress(self) -> tuple[int, int, int, int, int, int]:
        """Assets received and sent, bytes received and sent, assets still wanted and owed (in session)."""
        state = self.ledger.state
        received = sum(len(p.received_from) for p in state.peers.values())
        sent = sum(p.sent_count for p in state.peers.values())
        bytes_in = sum(p.bytes_in for p in state.peers.values())
        bytes_out = sum(p.bytes_out for p in state.peers.values())
        in_session = [p for p in self.sessions if p in state.peers]
        wanted = len(set().union(*(state.wanted(p) for p in in_session))) if in_session else 0
        owed = sum(len(state.owed(p)) for p in in_session)
        return received, sent, bytes_in, bytes_out, wanted, owed

    # ------------------------------------------------------------------ pausing peers

    def paused_peers(self) -> set[str]:
        return {p for p, s in self.ledger.state.peers.items() if s.paused}

    async def set_paused(self, peer: str, paused: bool) -> None:
        """Pause syncing with a peer (its session ends, none starts until resumed) or resume it; journaled,
        so a restart keeps it. KeyError for a peer the journal does not know."""
        if peer not in self.ledger.state.peers:
            raise KeyError(peer)
        if paused:
            await self.ledger.record(Event.of(PeerPaused(), peer=peer))
            session = self.sessions.get(peer)
            if session is not None:
                session.close("paused by user")
            log.info("peer %s: paused", peer[:10])
        else:
            await self.ledger.record(Event.of(PeerResumed(), peer=peer))
            self.directory.wake(peer)
            log.info("peer %s: resumed", peer[:10])

    def _write_tickets(self) -> None:
        address = self.ticket_address()
        write_ticket_file(self.config.data_dir / "ticket.json", address)
        if self.config.ticket_file is not None:
            write_ticket_file(self.config.ticket_file, address)

    def ticket_address(self) -> EndpointAddress:
        """Our address as peers should dial it: an unspecified bind address is useless to them."""
        address = self.endpoint.addr()
        addrs = [a for a in address.direct_addrs if not a.startswith(("0.0.0.0:", "[::]:"))]
        if not addrs:
            addrs = [s.replace("0.0.0.0:", "127.0.0.1:") for s in self.endpoint.bound_sockets() if "0.0.0.0:" in s]
        return EndpointAddress(address.endpoint_id, tuple(addrs), address.relay_url)

    # ------------------------------------------------------------------ for sessions and the directory

    def peer_infos(self, exclude: str) -> list[msg.PeerInfo]:
        """Peers in session with us (but `exclude`), as peer exchange passes them on."""
        infos = []
        for peer in sorted(self.sessions):
            address = self.directory.addresses.get(peer)
            if peer != exclude and address is not None:
                infos.append(msg.PeerInfo(peer, address.direct_addrs, address.relay_url or ""))
        return infos

    async def learned_peers(self, peers: Sequence[msg.PeerInfo]) -> None:
        for info in peers:
            if info.endpoint_id != self.our_id:
                address = EndpointAddress(info.endpoint_id, info.addrs, info.relay_url or None)
                await self.directory.learn(address, via="exchange")

    async def own_digests(self, state: SyncState) -> tuple[DigestSet, int, int]:
        return await self._own_digests.get(state)

    async def journal_local_store(self) -> None:
        try:
            await self.feed.catch_up()
        except CanServiceError as exc:  # the feed retries on its own; the answer goes out as it stands
            log.info("could not journal our store's latest changes: %s", exc)

    async def _warm_own_digests(self) -> None:
        """Once our store is journaled, build the set a first meeting needs, before any peer asks."""
        await self.feed.caught_up.wait()
        await self._own_digests.get(self.ledger.state)
        # the snapshot's load, the store's first catch-up and this build were the agent's big bursts of
        # allocation: hand what they freed back to the system
        await asyncio.to_thread(release_free_memory)

    def session_ended(self, peer: str) -> asyncio.Event | None:
        session = self.sessions.get(peer)
        return session.ended if session is not None else None

    async def connect(self, address: EndpointAddress) -> None:
        """Dial a peer and serve the session until it ends (raises TransportError if it cannot connect)."""
        conn = await self.endpoint.connect(address)
        await self._serve(conn, initiator=True, address=address)

    async def _accept_loop(self) -> None:
        async with asyncio.TaskGroup() as sessions:
            while (conn := await self.endpoint.accept()) is not None:
                sessions.create_task(self._serve_incoming(conn), name=f"incoming-{conn.remote_id_hex[:10]}")

    async def _serve_incoming(self, conn: PeerConnection) -> None:
        try:
            await self._serve(conn, initiator=False)
        except Exception as exc:  # noqa: BLE001 - one connection's failure must not end the accept loop
            log.error("peer %s: incoming connection failed: %s", conn.remote_id_hex[:10], exc)
            conn.close("internal error")

    async def _serve(self, conn: PeerConnection, *, initiator: bool, address: EndpointAddress | None = None) -> None:
        peer = conn.remote_id_hex
        if not self.limiter.allowed(peer):
            conn.close("too many failed handshakes")
            return
        # A second connection to a peer we already serve must not touch the peer's link in the
        # journal until it is admitted: it could be the duplicate that gets dropped.
        second = peer in self.sessions
        if not second:
            direction = Direction.OUT if initiator else Direction.IN
            addrs = address.direct_addrs if address else ()
            await self.ledger.record(Event.of(PeerConnected(direction, addrs), peer=peer))
        try:
            control = await (conn.open_control() if initiator else conn.accept_control(timeout=HANDSHAKE_TIMEOUT))
            handshake = await authenticate(
                control, key=self._key, our_id=self.our_id, their_id=peer, initiator=initiator,
                timeout=HANDSHAKE_TIMEOUT, boot_id=self.boot_id, random_bytes=self.environment.random_bytes,
            )  # fmt: skip
        except AuthenticationFailed as exc:
            self.limiter.record_failure(peer)
            log.warning("peer %s rejected: %s", peer[:10], exc.reason)
            if not second:  # a session with this very id is up: the link in the journal stays as it is
                await self.ledger.record(Event.of(PeerRejected(exc.reason), peer=peer))
            conn.close("authentication failed")
            return
        except TransportError as exc:
            log.info("peer %s: handshake did not complete: %s", peer[:10], exc)
            if not second:
                await self.ledger.record(Event.of(PeerDisconnected(str(exc)), peer=peer))
            conn.close("handshake failed")
            return
        self.limiter.record_success(peer)
        if self.ledger.state.peer(peer).paused:
            with contextlib.suppress(TransportError):
                await control.write_message(peer_pb2.Goodbye(reason="paused"), timeout=2.0)
                await control.finish()
            conn.close("paused")
            return
        await self._local_store_journaled()
        link = Link(dialer=self.our_id if initiator else peer, peer_boot=handshake.their_boot_id,
                    link_id=handshake.link_id)  # fmt: skip
        if not await self._admit(peer, link):
            log.info("peer %s: dropped a duplicate connection", peer[:10])
            # say why and let the handshake's last frame arrive before closing: the peer reaches the
            # same verdict on its own, and must not mistake the close for a failed handshake
            with contextlib.suppress(TransportError):
                await control.write_message(peer_pb2.Goodbye(reason="duplicate connection"), timeout=2.0)
                await control.finish()
            await asyncio.sleep(DUPLICATE_CLOSE_GRACE)
            conn.close("duplicate connection")
            return
        # No await between the admission above and the registration here: two connections of one peer
        # admitted side by side would both become sessions.
        session = PeerSession(
            peer, conn, control, link=link, initiator=initiator, ledger=self.ledger, can=self.can,
            staging=self.staging, host=self, stall_timeout=self.config.transfer_stall_secs,
        )  # fmt: skip
        self.sessions[peer] = session
        for other in self.sessions.values():
            if other is not session:
                other.share_peers()  # peer exchange: the others learn of the newcomer at once
        log.info("peer %s: in session (%s)", peer[:10], "dialed" if initiator else "incoming")
        try:
            if address is None:
                # learned only now that the session is registered: the dial loop this starts must see it,
                # or it dials a second connection at once
                await self.directory.learn(_observed_address(conn), via="incoming")
            await session.run()
        finally:
            if self.sessions.get(peer) is session:
                del self.sessions[peer]

    async def _local_store_journaled(self) -> None:
        """Hold a new session until our journal knows what our store holds, so the first comparison of
        digests does not ask a peer for assets we already have. A store that stays unreachable does not
        hold sessions forever: the comparison is then only less exact, never wrong."""
        with contextlib.suppress(TimeoutError):
            await wait_for(self.feed.caught_up.wait(), STORE_CATCH_UP_WAIT)

    async def _admit(self, peer: str, link: Link) -> bool:
        """Keep the new link or the session we have, as `core.links` decides (both ends decide alike)."""
        while (existing := self.sessions.get(peer)) is not None:
            if not keep_new_link(self.our_id, peer, existing.link, link):
                return False
            restarted = existing.link.peer_boot != link.peer_boot
            # the old session journals its disconnect (cutting off its transfers) before the new one starts
            existing.close("peer restarted" if restarted else "replaced by the connection both ends keep")
            try:
                await wait_for(asyncio.shield(existing.ended.wait()), SESSION_END_WAIT)
            except TimeoutError:
                log.warning("peer %s: the session being replaced is slow to end: %s", peer[:10], existing.stuck())
                await existing.ended.wait()
        return True


async def _reach_store(config: Config, resources: AsyncExitStack) -> CanClient:
    """The configured store, or the embedded one started now; a wrong sync_api_key ends the start here,
    where a person reads it: nothing could work with it."""
    url, sync_key = config.can_service_url, config.sync_api_key
    if url is None:
        sync_key = embedded_sync_key(config.data_dir, sync_key)
        store = await EmbeddedStore.start(config.embedded_store_root, port=config.store_port, sync_key=sync_key)
        resources.push_async_callback(store.stop)
        url = store.url
    if not sync_key:
        raise ConfigError("sync_api_key is not set: it must match sync_api_key in the CAN Service's config.yaml")
    can = CanClient(url, sync_key)
    resources.push_async_callback(can.aclose)
    try:
        await can.hashes(since=PROBE_SINCE)  # asks for nothing: only whether the store takes our key
    except CanServiceAuthError:
        raise
    except CanServiceError as exc:
        log.warning("the local store does not answer yet (%s); the agent waits for it", exc)
    return can


async def _settle_cut_off_transfers(ledger: Ledger, staging: StagingArea, can: StoreClient) -> None:
    """A crash after our store took a streamed asset but before the journal said so: give the journal the
    completion and the received-from-peer mark it missed, when the facts show the peer's bytes arrived
    whole (core.recovery decides). A store that does not answer now leaves it for the next start."""
    cut_off = cut_off_transfers(ledger.state)
    if not cut_off:
        return
    try:
        held = {meta.hash for meta in await can.metadata([cut.asset for cut in cut_off])}
    except CanServiceError as exc:
        log.debug("transfers cut off by the last stop are looked at next start: the store said %s", exc)
        return
    for cut in cut_off:
        # only a staged copy whose asset our store holds is worth reading (it may be gigabytes)
        size, digest = await asyncio.to_thread(staging.measure, cut.asset) if cut.asset in held else (0, None)

        def receipt(
            state: SyncState, cut: CutOffTransfer = cut, size: int = size, digest: str | None = digest
        ) -> tuple[list[Event], bool]:
            events = receipt_after_restart(
                cut, state, staged_size=size, staged_digest=digest, store_holds=cut.asset in held
            )
            return events, bool(events)

        if await ledger.decide(receipt):
            await asyncio.to_thread(staging.discard, cut.asset)
            log.info("recorded %s as received from %s: the last stop cut off its record", cut.asset[:12], cut.peer[:10])


async def _close_stale_links(ledger: Ledger) -> None:
    """A crash leaves links open in the journal; close them first, so their transfers count as cut off."""
    stale = [
        Event.of(PeerDisconnected("agent restarted"), peer=peer)
        for peer, state in sorted(ledger.state.peers.items())
        if state.link in (LinkStatus.CONNECTED, LinkStatus.AUTHENTICATED)
    ]
    if stale:
        await ledger.record(*stale)


def _observed_address(conn: PeerConnection) -> EndpointAddress:
    try:
        return EndpointAddress(conn.remote_id_hex, conn.remote_direct_addrs())
    except ValueError:
        return EndpointAddress(conn.remote_id_hex)


async def run_agent(config: Config, *, ready_file: Path | None = None) -> None:
    """Run until cancelled (SIGINT/SIGTERM in the CLI)."""
    agent = await Agent.open(config)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(), name="agent")
            if ready_file is not None:
                ready_file.write_text(agent.our_id + "\n")
    finally:
        await agent.close()
