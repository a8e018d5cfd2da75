"""Where peers come from and how we keep dialing them.

Every way a peer is found (ticket file, pkarr rendezvous, LAN beacon, another peer's list, an
incoming connection) becomes a `peer_discovered` journal event, then a dial loop for that peer that
backs off while it cannot connect and rests while a session is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from cansync.agent.internet_discovery import InternetDiscovery
from cansync.core.events import Event, EventKind
from cansync.core.peer_state import LinkStatus
from cansync.discovery.lan import LanDiscovery
from cansync.journal.errors import JournalError
from cansync.net.address import EndpointAddress
from cansync.net.errors import TransportError
from cansync.net.tickets import TicketError, read_ticket_file

if TYPE_CHECKING:
    from cansync.agent.runtime import Agent

log = logging.getLogger(__name__)

DIAL_BACKOFF_START = 0.5
DIAL_BACKOFF_MAX = 10.0
JOURNAL_RETRY = 2.0
MAX_ADDRS_PER_PEER = 8
FIRST_HAND = frozenset({"ticket", "lan", "pkarr"})
"""Sources that speak for the peer as it is now: a new address from one of them is dialed at once."""
TICKET_POLL = 0.5


class PeerDirectory:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.addresses: dict[str, EndpointAddress] = {}
        self._via: dict[str, set[str]] = {}
        self._dialers: dict[str, asyncio.Task[None]] = {}
        self._moved: dict[str, asyncio.Event] = {}  # set when a peer's address changes
        self._sources: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        config = self.agent.config
        await self._recall_known_peers()
        if config.connect_ticket_file is not None:
            self._sources.append(asyncio.create_task(self._watch_ticket_file(), name="ticket-file"))
        if config.pkarr_relays:
            internet = InternetDiscovery(
                passphrase=self.agent.passphrase,
                our_id=self.agent.our_id,
                secret_key=self.agent.secret_key,
                pkarr_relays=config.pkarr_relays,
                our_address=self.agent.ticket_address,
                learn=self.learn,
                id_is_enough=self._id_is_enough,
                publish_interval=config.rendezvous_publish_secs,
                scan_interval=config.rendezvous_scan_secs,
            )
            self._sources.append(asyncio.create_task(internet.run(), name="rendezvous"))
        if config.lan_discovery:
            lan = LanDiscovery(
                self.agent.passphrase,
                self.agent.our_id,
                lambda: list(self.agent.ticket_address().direct_addrs),
                self._lan_peer,
            )
            self._sources.append(asyncio.create_task(lan.run(), name="lan-discovery"))
        try:
            await asyncio.gather(*self._sources)
            await asyncio.Event().wait()
        finally:
            for task in [*self._sources, *self._dialers.values()]:
                task.cancel()
            await asyncio.gather(*self._sources, *self._dialers.values(), return_exceptions=True)

    async def _recall_known_peers(self) -> None:
        """After a restart, dial the peers the journal knows an address for: a peer that only ever dialed
        us would otherwise wait for its own retries to find us again."""
        assert self.agent.ledger is not None
        for peer, state in sorted(self.agent.ledger.state.peers.items()):
            if state.addrs and state.link is not LinkStatus.REJECTED:
                try:
                    address = EndpointAddress(peer, state.addrs)
                except ValueError:
                    continue
                await self.learn(address, via="journal")

    @property
    def _id_is_enough(self) -> bool:
        # with iroh's relays on, iroh can reach a peer by its id alone
        return self.agent.config.relays != ()

    async def _lan_peer(self, endpoint_id: str, addrs: list[str]) -> None:
        try:
            address = EndpointAddress(endpoint_id, tuple(addrs))
        except ValueError as exc:
            log.info("ignored a LAN beacon with an unusable address: %s", exc)
            return
        await self.learn(address, via="lan")

    async def learn(self, address: EndpointAddress, via: str) -> None:
        """A peer was found: journal how, remember its address, and keep dialing it."""
        peer = address.endpoint_id
        if peer == self.agent.our_id:
            return
        known = self.addresses.get(peer)
        merged = address
        if known is not None:
            # Merge, newest first, rather than replace: news about a peer can be stale (another peer
            # passing on where it met it before a restart), and iroh tries every address it is given.
            addrs = tuple(dict.fromkeys((*address.direct_addrs, *known.direct_addrs)))[:MAX_ADDRS_PER_PEER]
            merged = EndpointAddress(peer, addrs, address.relay_url or known.relay_url)
        changed = known is not None and set(merged.direct_addrs) != set(known.direct_addrs)
        vias = self._via.setdefault(peer, set())
        if changed or known is None or via not in vias:
            vias.add(via)
            self.addresses[peer] = merged
            if changed and via in FIRST_HAND:
                self._moved.setdefault(peer, asyncio.Event()).set()
            assert self.agent.ledger is not None
            await self.agent.ledger.record(
                Event(EventKind.PEER_DISCOVERED, peer=peer, data={"via": via, "addrs": list(merged.direct_addrs)})
            )
        dialable = bool(merged.direct_addrs or merged.relay_url) or (via != "incoming" and self._id_is_enough)
        if dialable and peer not in self._dialers:
            self._dialers[peer] = asyncio.create_task(self._dial_loop(peer), name=f"dial-{peer[:10]}")

    async def _dial_loop(self, peer: str) -> None:
        """Keep a session with this peer: dial when there is none, back off while dials fail.

        A new address for a peer we are in session with is dialed at once: the peer restarted (new
        port), and its old session may look alive until the keepalives run out. The handshake's boot
        id then tells the two apart, and the new connection replaces the old session."""
        delay = DIAL_BACKOFF_START
        moved = self._moved.setdefault(peer, asyncio.Event())
        while True:
            session = self.agent.sessions.get(peer)
            if session is not None:
                ended = asyncio.ensure_future(session.ended.wait())
                new_address = asyncio.ensure_future(moved.wait())
                await asyncio.wait({ended, new_address}, return_when=asyncio.FIRST_COMPLETED)
                ended.cancel()
                new_address.cancel()
                if not moved.is_set():
                    delay = DIAL_BACKOFF_START
                    await asyncio.sleep(DIAL_BACKOFF_START)
                    continue
            moved.clear()
            address = self.addresses[peer]
            try:
                await self.agent.connect(address)
                delay = DIAL_BACKOFF_START
            except TransportError as exc:
                log.info("peer %s: %s (retry in %.1f s)", peer[:10], exc, delay)
                await self._pause(moved, delay)
                delay = min(delay * 2, DIAL_BACKOFF_MAX)
                continue
            except JournalError as exc:
                # the journal cannot take the session's facts (disk full?): a local trouble, so no growing
                # back-off: try again soon, and never give up on the peer
                log.error("peer %s: session stopped, the journal failed: %s", peer[:10], exc)
                await self._pause(moved, JOURNAL_RETRY)
                continue
            await asyncio.sleep(DIAL_BACKOFF_START)

    @staticmethod
    async def _pause(moved: asyncio.Event, seconds: float) -> None:
        """Sleep, unless a new address for the peer turns up first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(moved.wait(), seconds)

    async def _watch_ticket_file(self) -> None:
        """Dial the peer named in connect_ticket_file; re-read it when it changes (ports change on restart)."""
        path = self.agent.config.connect_ticket_file
        assert path is not None
        last_text: str | None = None
        complained = False
        while True:
            try:
                text = path.read_text()
            except FileNotFoundError:
                text = None
            if text is not None and text != last_text:
                try:
                    address = read_ticket_file(path)
                except TicketError as exc:
                    if not complained:
                        log.error("%s", exc)
                        complained = True
                else:
                    last_text = text
                    complained = False
                    await self.learn(address, via="ticket")
            await asyncio.sleep(TICKET_POLL)
