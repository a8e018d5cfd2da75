"""Where peers come from and how we keep dialing them.

Every way a peer is found (ticket file, pkarr rendezvous, LAN beacon, another peer's list, an
incoming connection, the journal after a restart) becomes a `peer_discovered` journal event, then a
dial loop for that peer that backs off while it cannot connect and rests while a session is up.

A fresh address (from a ticket, the LAN, rendezvous or peer exchange) is dialed at once, beside any
dial still waiting on an older address: after both ends restart, each remembers the other's old port,
and a dial there only fails at the connect timeout, long after the fresh address has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from cansync.agent.ledger import Ledger, LedgerError
from cansync.core.events import Event, PeerDiscovered
from cansync.core.peer_state import LinkStatus
from cansync.journal.errors import JournalError
from cansync.net.address import EndpointAddress
from cansync.net.errors import TransportError
from cansync.net.tickets import TicketError, read_ticket_file
from cansync.portable.timeouts import wait_for

log = logging.getLogger(__name__)

DIAL_BACKOFF_START = 0.5
DIAL_BACKOFF_MAX = 10.0
JOURNAL_RETRY = 2.0
MAX_ADDRS_PER_PEER = 8
FRESH = frozenset({"ticket", "lan", "pkarr", "exchange"})
"""Sources that speak of where the peer is now: a new address from one of them is dialed at once."""
TICKET_POLL = 0.5
PAUSED_RECHECK = 5.0


class Dialer(Protocol):
    """What the directory needs of the agent: who we are, whether a peer is in session, and a dial."""

    @property
    def our_id(self) -> str: ...

    def session_ended(self, peer: str) -> asyncio.Event | None:
        """The `ended` event of the session with `peer`, or None when there is none."""
        ...

    async def connect(self, address: EndpointAddress) -> None:
        """Dial, authenticate and serve a session until it ends; TransportError if it cannot connect."""
        ...


class PeerDirectory:
    def __init__(
        self,
        dialer: Dialer,
        ledger: Ledger,
        *,
        id_is_enough: bool,
        connect_ticket_file: Path | None = None,
    ) -> None:
        self.dialer = dialer
        self.ledger = ledger
        self.id_is_enough = id_is_enough  # with iroh's relays on, iroh can reach a peer by its id alone
        self.connect_ticket_file = connect_ticket_file
        self.addresses: dict[str, EndpointAddress] = {}
        self._via: dict[str, set[str]] = {}
        self._moved: dict[str, asyncio.Event] = {}  # set when a fresh address for a peer arrives
        self._wanted: asyncio.Queue[str] = asyncio.Queue()  # peers that need a dial loop

    async def run(self, *sources: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Recall the journal's peers, run the discovery sources, and keep a dial loop per known peer.
        Every task lives in this TaskGroup: cancelling run() ends them all."""
        dialing: set[str] = set()
        async with asyncio.TaskGroup() as group:
            for source in sources:
                group.create_task(source(), name="discovery")
            if self.connect_ticket_file is not None:
                group.create_task(self._watch_ticket_file(self.connect_ticket_file), name="ticket-file")
            await self._recall_known_peers()
            while True:
                peer = await self._wanted.get()
                if peer not in dialing:
                    dialing.add(peer)
                    group.create_task(self._dial_loop(peer), name=f"dial-{peer[:10]}")

    async def _recall_known_peers(self) -> None:
        """After a restart, dial the peers the journal knows an address for: a peer that only ever dialed
        us would otherwise wait for its own retries to find us again."""
        for peer, state in sorted(self.ledger.state.peers.items()):
            if state.addrs and state.link is not LinkStatus.REJECTED:
                try:
                    address = EndpointAddress(peer, state.addrs)
                except ValueError:
                    continue
                await self.learn(address, via="journal")

    async def learn(self, address: EndpointAddress, via: str) -> None:
        """A peer was found: journal how, remember its address, and keep dialing it."""
        peer = address.endpoint_id
        if peer == self.dialer.our_id:
            return
        known = self.addresses.get(peer)
        merged = address
        if known is not None:
            # Merge, newest first, rather than replace: news about a peer can be stale (another peer
            # passing on where it met it before a restart), and iroh tries every address it is given.
            addrs = tuple(dict.fromkeys((*address.direct_addrs, *known.direct_addrs)))[:MAX_ADDRS_PER_PEER]
            merged = EndpointAddress(peer, addrs, address.relay_url or known.relay_url)
        fresh = set(address.direct_addrs) - set(known.direct_addrs if known else ())
        vias = self._via.setdefault(peer, set())
        if fresh or known is None or via not in vias:
            vias.add(via)
            self.addresses[peer] = merged
            if known is not None and fresh and via in FRESH:
                self._moved.setdefault(peer, asyncio.Event()).set()
            await self.ledger.record(Event.of(PeerDiscovered(via, merged.direct_addrs), peer=peer))
        dialable = bool(merged.direct_addrs or merged.relay_url) or (via != "incoming" and self.id_is_enough)
        if dialable:
            self._wanted.put_nowait(peer)

    def wake(self, peer: str) -> None:
        """Dial this peer now (it was resumed, or something else says it is worth trying at once)."""
        self._moved.setdefault(peer, asyncio.Event()).set()

    async def _dial_loop(self, peer: str) -> None:
        """Keep a session with this peer: dial when there is none, back off while dials fail, and dial a
        fresh address at once (beside a dial still waiting on an old one)."""
        delay = DIAL_BACKOFF_START
        moved = self._moved.setdefault(peer, asyncio.Event())
        while True:
            while self.ledger.state.peer(peer).paused:  # a person paused it: wait for the resume
                await self._pause(moved, PAUSED_RECHECK)
            ended = self.dialer.session_ended(peer)
            if ended is not None:
                await _first_of(ended.wait(), moved.wait())
                if not moved.is_set():
                    delay = DIAL_BACKOFF_START
                    await asyncio.sleep(DIAL_BACKOFF_START)
                    continue
            moved.clear()
            served, failure = await self._dial_until_done(peer, moved)
            if served:
                delay = DIAL_BACKOFF_START
                await asyncio.sleep(DIAL_BACKOFF_START)
            elif isinstance(failure, JournalError | LedgerError):
                # our journal cannot take the session's facts (disk full?): a local trouble, so no growing
                # back-off: try again soon, and never give up on the peer
                log.error("peer %s: session stopped, the journal failed: %s", peer[:10], failure)
                await self._pause(moved, JOURNAL_RETRY)
            else:
                log.info("peer %s: %s (retry in %.1f s)", peer[:10], failure, delay)
                await self._pause(moved, delay)
                delay = min(delay * 2, DIAL_BACKOFF_MAX)

    async def _dial_until_done(self, peer: str, moved: asyncio.Event) -> tuple[bool, BaseException | None]:
        """Dial the peer; while that dial waits, each fresh address starts another beside it. Returns
        whether any dial led to a session, and the last failure otherwise."""
        attempts = {asyncio.ensure_future(self.dialer.connect(self.addresses[peer]))}
        served = False
        failure: BaseException | None = None
        try:
            while attempts:
                news = asyncio.ensure_future(moved.wait())
                done, _ = await asyncio.wait({*attempts, news}, return_when=asyncio.FIRST_COMPLETED)
                if news in done:
                    moved.clear()
                    attempts.add(asyncio.ensure_future(self.dialer.connect(self.addresses[peer])))
                else:
                    news.cancel()
                for attempt in done & attempts:
                    attempts.discard(attempt)
                    error = attempt.exception()
                    if error is None:
                        served = True
                    elif isinstance(error, TransportError | JournalError | LedgerError):
                        log.debug("peer %s: one dial failed: %s", peer[:10], error)
                        failure = error
                    else:
                        log.error("peer %s: dial failed unexpectedly", peer[:10], exc_info=error)
                        failure = error
        finally:
            for attempt in attempts:
                attempt.cancel()
            await asyncio.gather(*attempts, return_exceptions=True)
        return served, failure

    @staticmethod
    async def _pause(moved: asyncio.Event, seconds: float) -> None:
        """Sleep, unless a fresh address for the peer turns up first."""
        with contextlib.suppress(TimeoutError):
            await wait_for(moved.wait(), seconds)

    async def _watch_ticket_file(self, path: Path) -> None:
        """Dial the peer named in connect_ticket_file; re-read it when it changes (ports change on restart)."""
        last_text: str | None = None
        complained = False
        missing_said = False
        while True:
            try:
                text: str | None = await asyncio.to_thread(path.read_text)
            except FileNotFoundError:
                text = None
                if not missing_said:
                    log.info("waiting for connect_ticket_file %s to appear", path)
                    missing_said = True
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


async def _first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of these awaitables finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
