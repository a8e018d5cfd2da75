"""The agent: wires the journal, the machine, the store client, the endpoint and discovery together.

A byte's way: store SSE -> LocalFeed -> journal -> machine -> Advertise -> session -> peer, and on the
peer: Want -> journal -> machine -> SendAsset -> store pull -> transfer stream -> staging -> journal ->
store push -> journal (received-from-peer mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from cansync.agent.embedded_store import EmbeddedStore, embedded_sync_key
from cansync.agent.ledger import Ledger
from cansync.agent.local_feed import LocalFeed
from cansync.agent.peer_directory import PeerDirectory
from cansync.agent.session import PeerSession
from cansync.agent.staging import StagingArea
from cansync.agent.store_records import meta_update
from cansync.can.client import CanClient
from cansync.can.errors import CanServiceError
from cansync.config import Config, ConfigError
from cansync.core.commands import (
    Advertise,
    ApplyMetadata,
    Command,
    ForwardMetadata,
    RecordSuperseded,
    RequestAsset,
    SendAsset,
)
from cansync.core.events import Event, EventKind
from cansync.core.peer_state import LinkStatus
from cansync.journal.errors import JournalError
from cansync.journal.recorder import Journal
from cansync.net.address import EndpointAddress
from cansync.net.endpoint import ALPN, PeerConnection, PeerEndpoint, open_endpoint
from cansync.net.errors import AuthenticationFailed, TransportError
from cansync.net.handshake import FailureLimiter, HandshakeKey, authenticate
from cansync.net.node_key import NodeIdentity
from cansync.net.tickets import write_ticket_file
from cansync.wire.pb import peer_pb2

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 15.0
STORE_CATCH_UP_WAIT = 30.0
DUPLICATE_CLOSE_GRACE = 1.0
REPLAN_SECS = 5.0


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.passphrase = config.require_passphrase()
        self.identity: NodeIdentity | None = None
        self.journal: Journal | None = None
        self.ledger: Ledger | None = None
        self.store: EmbeddedStore | None = None
        self.can: CanClient | None = None
        self.endpoint: PeerEndpoint | None = None
        self.staging = StagingArea(config.staging_dir)
        self.sessions: dict[str, PeerSession] = {}
        self.directory: PeerDirectory | None = None
        self.feed: LocalFeed | None = None
        self.limiter = FailureLimiter(max_failures=5, window_s=60.0)
        self._key: HandshakeKey | None = None
        self.boot_id = secrets.token_bytes(16)  # tells peers when this process is a new one
        self._tasks: list[asyncio.Task[None]] = []
        self._session_tasks: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()

    @property
    def our_id(self) -> str:
        assert self.identity is not None
        return self.identity.endpoint_id

    @property
    def secret_key(self) -> bytes:
        assert self.identity is not None
        return self.identity.secret_key

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.identity = NodeIdentity.acquire(config.data_dir)
        self.journal = await Journal.open(config.journal_path)
        self.ledger = await Ledger.open(self.journal)
        await self._close_stale_links()
        url = config.can_service_url
        sync_key = config.sync_api_key
        if url is None:
            sync_key = embedded_sync_key(config.data_dir, sync_key)
            self.store = await EmbeddedStore.start(
                config.embedded_store_root, port=config.store_port, sync_key=sync_key
            )
            url = self.store.url
        if not sync_key:
            raise ConfigError("sync_api_key is not set: it must match sync_api_key in the CAN Service's config.yaml")
        self.can = CanClient(url, sync_key)
        self._key = await asyncio.to_thread(HandshakeKey.derive, self.passphrase)
        self.endpoint = await open_endpoint(
            self.identity.secret_key, bind_addr=config.bind_addr, relays=config.relays, alpns=[ALPN]
        )
        self._write_tickets()
        self.directory = PeerDirectory(self)
        self.feed = LocalFeed(
            self.can, self.ledger, self.dispatch, our_id=self.our_id, poll_interval=config.poll_interval_secs
        )
        self._tasks = [
            asyncio.create_task(self.feed.run(), name="local-feed"),
            asyncio.create_task(self._accept_loop(), name="accept"),
            asyncio.create_task(self.directory.run(), name="peer-directory"),
            asyncio.create_task(self._replan(), name="replan"),
        ]
        log.info("agent %s started (store %s, journal %s)", self.our_id[:10], url, config.journal_path)

    async def _close_stale_links(self) -> None:
        """A crash leaves links open in the journal; close them first, so their transfers count as cut off."""
        assert self.ledger is not None
        stale = [
            Event(EventKind.PEER_DISCONNECTED, peer=peer, data={"reason": "agent restarted"})
            for peer, state in sorted(self.ledger.state.peers.items())
            if state.link in (LinkStatus.CONNECTED, LinkStatus.AUTHENTICATED)
        ]
        if stale:
            await self.ledger.record(*stale)

    def _write_tickets(self) -> None:
        assert self.endpoint is not None
        address = self.ticket_address()
        write_ticket_file(self.config.data_dir / "ticket.json", address)
        if self.config.ticket_file is not None:
            write_ticket_file(self.config.ticket_file, address)

    def ticket_address(self) -> EndpointAddress:
        """Our address as peers should dial it: an unspecified bind address is useless to them."""
        assert self.endpoint is not None
        address = self.endpoint.addr()
        addrs = [a for a in address.direct_addrs if not a.startswith(("0.0.0.0:", "[::]:"))]
        if not addrs:
            addrs = [s.replace("0.0.0.0:", "127.0.0.1:") for s in self.endpoint.bound_sockets() if "0.0.0.0:" in s]
        return EndpointAddress(address.endpoint_id, tuple(addrs), address.relay_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in list(self.sessions.values()):
            session.close("agent stopping")
        await asyncio.gather(*self._session_tasks, return_exceptions=True)
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.ledger is not None:
            await self.ledger.close()
        if self.journal is not None:
            await self.journal.close()
        if self.can is not None:
            await self.can.aclose()
        if self.store is not None:
            await self.store.stop()
        if self.identity is not None:
            self.identity.release()
        self.stopped.set()

    # ------------------------------------------------------------------ commands

    async def dispatch(self, commands: Sequence[Command]) -> None:
        """Turn the machine's commands into I/O. Commands for a peer without a session wait for it:
        the machine derives them again when the peer authenticates."""
        assert self.ledger is not None and self.can is not None
        for command in commands:
            if isinstance(command, RequestAsset):
                await self._request(command)
            elif isinstance(command, SendAsset):
                session = self.sessions.get(command.peer)
                if session is not None:
                    session.send_asset(command.hash, command.offset)
            elif isinstance(command, Advertise):
                session = self.sessions.get(command.peer)
                if session is not None:
                    session.advertise(command.hashes)
            elif isinstance(command, ForwardMetadata):
                session = self.sessions.get(command.peer)
                if session is not None:
                    session.send_metadata(command.hash, command.value)
            elif isinstance(command, ApplyMetadata):
                await self._apply_metadata(command)
            elif isinstance(command, RecordSuperseded):
                await self.ledger.record(
                    Event(
                        EventKind.METADATA_SUPERSEDED,
                        hash=command.hash,
                        data={"loser": command.loser.to_data(), "winner": command.winner.to_data()},
                    )
                )

    async def _replan(self) -> None:
        """Every few seconds, act again on what the state says is still wanted from each peer in session.
        Commands are normally acted on as events arrive; this catches what could not be done then (our
        disk was full, our store was down) without a hot retry loop."""
        assert self.ledger is not None
        while True:
            await asyncio.sleep(REPLAN_SECS)
            for peer in list(self.sessions):
                try:
                    await self.dispatch(self.ledger.state.requests_for(peer))
                except JournalError as exc:
                    log.error("cannot plan requests to %s: %s", peer[:10], exc)

    async def _request(self, command: RequestAsset) -> None:
        assert self.ledger is not None
        session = self.sessions.get(command.peer)
        if (
            session is None
            or self.ledger.state.incoming_active(command.hash)
            or command.hash in self.ledger.state.local
        ):
            return
        offset = await asyncio.to_thread(self.staging.resume_point, command.hash, command.offset)
        await self.ledger.record(
            Event(
                EventKind.TRANSFER_REQUESTED,
                peer=command.peer,
                hash=command.hash,
                data={"direction": "in", "offset": offset},
            )
        )
        session.request(command.hash, offset)

    async def _apply_metadata(self, command: ApplyMetadata) -> None:
        assert self.can is not None and self.ledger is not None
        if command.hash not in self.ledger.state.local:
            return  # the asset is still on its way, and it brings its sender's metadata along
        update = meta_update(command.hash, command.value)
        try:
            await self.can.update_meta(update)
        except CanServiceError as exc:
            # the change stays journaled; the next catch-up or reconnect brings it again
            log.error("could not apply a metadata change to %s: %s", command.hash[:12], exc)

    # ------------------------------------------------------------------ sessions

    def peer_addresses(self, exclude: str) -> list[EndpointAddress]:
        assert self.directory is not None
        return [a for p, a in self.directory.addresses.items() if p != exclude and p in self.sessions]

    async def learned_peer(self, address: EndpointAddress, via: str) -> None:
        assert self.directory is not None
        await self.directory.learn(address, via)

    async def _accept_loop(self) -> None:
        assert self.endpoint is not None
        while True:
            conn = await self.endpoint.accept()
            if conn is None:
                return
            self._start_session_task(self._serve(conn, initiator=False))

    def _start_session_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)
        return task

    async def connect(self, address: EndpointAddress) -> None:
        """Dial a peer and serve the session until it ends (raises TransportError if it cannot connect)."""
        assert self.endpoint is not None
        conn = await self.endpoint.connect(address)
        await self._serve(conn, initiator=True, address=address)

    async def _serve(self, conn: PeerConnection, *, initiator: bool, address: EndpointAddress | None = None) -> None:
        assert self.ledger is not None and self.can is not None and self._key is not None
        peer = conn.remote_id_hex
        if not self.limiter.allowed(peer):
            conn.close("too many failed handshakes")
            return
        # A second connection to a peer we already serve must not touch the peer's link in the
        # journal until it is admitted: it could be the duplicate that gets dropped.
        second = peer in self.sessions
        if not second:
            await self.ledger.record(
                Event(
                    EventKind.PEER_CONNECTED,
                    peer=peer,
                    data={
                        "direction": "out" if initiator else "in",
                        "addrs": list(address.direct_addrs) if address else [],
                    },
                )
            )
        try:
            control = await (conn.open_control() if initiator else conn.accept_control(timeout=HANDSHAKE_TIMEOUT))
            handshake = await authenticate(
                control, key=self._key, our_id=self.our_id, their_id=peer, initiator=initiator,
                timeout=HANDSHAKE_TIMEOUT, boot_id=self.boot_id,
            )  # fmt: skip
        except AuthenticationFailed as exc:
            self.limiter.record_failure(peer)
            log.warning("peer %s rejected: %s", peer[:10], exc.reason)
            if not second:  # a session with this very id is up: the link in the journal stays as it is
                await self.ledger.record(Event(EventKind.PEER_REJECTED, peer=peer, data={"reason": exc.reason}))
            conn.close("authentication failed")
            return
        except TransportError as exc:
            log.info("peer %s: handshake did not complete: %s", peer[:10], exc)
            if not second:
                await self.ledger.record(Event(EventKind.PEER_DISCONNECTED, peer=peer, data={"reason": str(exc)}))
            conn.close("handshake failed")
            return
        self.limiter.record_success(peer)
        if address is None:
            assert self.directory is not None
            await self.directory.learn(_observed_address(conn), via="incoming")
        await self._local_store_journaled()
        # No await may come between the admission and the registration below: two connections of one
        # peer admitted side by side would both become sessions.
        if not await self._admit(peer, initiator, handshake.their_boot_id, handshake.link_id):
            log.info("peer %s: dropped a duplicate connection", peer[:10])
            # say why and let the handshake's last frame arrive before closing: the peer reaches the
            # same verdict on its own, and must not mistake the close for a failed handshake
            with contextlib.suppress(TransportError):
                await control.write_message(peer_pb2.Goodbye(reason="duplicate connection"), timeout=2.0)
                await control.finish()
            await asyncio.sleep(DUPLICATE_CLOSE_GRACE)
            conn.close("duplicate connection")
            return
        session = PeerSession(
            peer,
            conn,
            control,
            initiator=initiator,
            ledger=self.ledger,
            can=self.can,
            staging=self.staging,
            host=self,
            stall_timeout=self.config.transfer_stall_secs,
            their_boot=handshake.their_boot_id,
            link_id=handshake.link_id,
        )
        self.sessions[peer] = session
        for other in self.sessions.values():
            if other is not session:
                other.share_peers()  # peer exchange: the others learn of the newcomer at once
        try:
            await session.run()
        finally:
            if self.sessions.get(peer) is session:
                del self.sessions[peer]

    async def _local_store_journaled(self) -> None:
        """Hold a new session until our journal knows what our store holds, so the first comparison of
        digests does not ask a peer for assets we already have. A store that stays unreachable does not
        hold sessions forever: the comparison is then only less exact, never wrong."""
        assert self.feed is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.feed.caught_up.wait(), STORE_CATCH_UP_WAIT)

    async def _admit(self, peer: str, initiator: bool, their_boot: bytes, link_id: bytes) -> bool:
        """Decide between a new connection and an existing session with the same peer; both ends must
        reach the same verdict without talking about it, whatever order they saw the connections in.

        A peer that restarted announces a new boot id: the old session's connection is dead (QUIC
        would only notice at its idle timeout), so the new one replaces it. Two connections dialed in
        opposite directions (both dialed at once): keep the one dialed by the smaller endpoint id. Two
        dialed the same way (a retried dial that got through twice): keep the larger link id."""
        existing = self.sessions.get(peer)
        if existing is None:
            return True
        restarted = existing.their_boot != their_boot
        if not restarted:
            if existing.initiator != initiator:
                dialer_of_new = self.our_id if initiator else peer
                if dialer_of_new != min(self.our_id, peer):
                    return False
            elif link_id <= existing.link_id:
                return False
        # the old session journals its disconnect (cutting off its transfers) before the new one starts
        existing.close("peer restarted" if restarted else "replaced by the connection both ends keep")
        await existing.ended.wait()
        # judge again against whatever holds the peer now (another new connection may have won meanwhile)
        return await self._admit(peer, initiator, their_boot, link_id)


def _observed_address(conn: PeerConnection) -> EndpointAddress:
    try:
        return EndpointAddress(conn.remote_id_hex, conn.remote_direct_addrs())
    except ValueError:
        return EndpointAddress(conn.remote_id_hex)


async def run_agent(config: Config, *, ready_file: Path | None = None) -> None:
    """Run until cancelled (SIGINT/SIGTERM in the CLI)."""
    agent = Agent(config)
    try:
        await agent.start()
        if ready_file is not None:
            ready_file.write_text(agent.our_id + "\n")
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(Exception):
            await agent.stop()
