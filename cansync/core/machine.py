"""The sync machine: journal events in, derived state and commands out (sans-io, in the manner of h11).

`SyncState.apply(event)` folds one journaled event and returns the commands it implies. The machine
never touches a socket, a file or a clock; the time it knows is the time written in the events.

Why folding is order-independent across peers: everything global only grows (our holdings) or is a
last-writer-wins register (metadata), and everything else belongs to one peer and is folded in that
peer's own journal order. Duplicates are dropped by sequence number per peer, so replaying a journal
twice, or a snapshot plus its tail, lands on the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

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
from cansync.core.metadata import MetaValue
from cansync.core.peer_state import LinkStatus, PeerState, Transfer, TransferStatus

MAX_FAILURES_PER_PEER = 3
"""After this many failed transfers of one asset from one peer, stop asking that peer for it."""

SNAPSHOT_VERSION = 2


class SnapshotError(ValueError):
    """A snapshot this code cannot read (another version, or damaged)."""


class SyncState:
    def __init__(self) -> None:
        self.local: set[str] = set()  # assets our store holds
        self.meta: dict[str, MetaValue] = {}  # winning metadata change per asset
        self.peers: dict[str, PeerState] = {}
        self._emit = True  # False while replaying: handlers update state and skip building commands
        self.last_seq = 0  # newest journal seq folded, any peer
        self.local_seq = 0  # newest seq folded of the events that name no peer (our own store)
        self.store_watermark = 0  # our store's change clock that the journal has caught up with
        self._handlers: dict[EventKind, Callable[[Event, PeerState | None], list[Command]]] = {
            EventKind.PEER_DISCOVERED: self._peer_discovered,
            EventKind.PEER_CONNECTED: self._peer_connected,
            EventKind.PEER_AUTHENTICATED: self._peer_authenticated,
            EventKind.PEER_REJECTED: self._peer_rejected,
            EventKind.PEER_DISCONNECTED: self._peer_disconnected,
            EventKind.PEER_PROTOCOL_ERROR: self._peer_protocol_error,
            EventKind.HASHES_ADVERTISED: self._hashes_advertised,
            EventKind.HASHES_SENT: self._hashes_sent,
            EventKind.LOCAL_ASSET_SEEN: self._local_asset_seen,
            EventKind.TRANSFER_REQUESTED: self._transfer_requested,
            EventKind.TRANSFER_STARTED: self._transfer_started,
            EventKind.TRANSFER_CHECKPOINTED: self._transfer_checkpointed,
            EventKind.TRANSFER_COMPLETED: self._transfer_completed,
            EventKind.TRANSFER_FAILED: self._transfer_failed,
            EventKind.ASSET_RECEIVED: self._asset_received,
            EventKind.METADATA_CHANGED: self._metadata_changed,
            EventKind.METADATA_SUPERSEDED: _nothing,
        }

    # ------------------------------------------------------------------ folding

    def apply(self, event: Event) -> list[Command]:
        """Fold one event; return what it implies. A duplicate (seq already folded for its peer) is ignored."""
        return self._fold(event) or []

    def replay(self, event: Event) -> None:
        """Fold one event without working out its commands: a replay acts on nothing, so it skips that cost."""
        self._emit = False
        try:
            self._fold(event)
        finally:
            self._emit = True

    def _fold(self, event: Event) -> list[Command]:
        peer_state: PeerState | None = None
        if event.peer is not None:
            peer_state = self.peers.get(event.peer)
            if peer_state is None:
                peer_state = self.peers[event.peer] = PeerState(event.peer)
            if event.seq:
                if event.seq <= peer_state.last_seq:
                    return []
                peer_state.last_seq = event.seq
            peer_state.last_event_ms = max(peer_state.last_event_ms, event.time_ms)
        elif event.seq:
            if event.seq <= self.local_seq:
                return []
            self.local_seq = event.seq
        if event.seq > self.last_seq:
            self.last_seq = event.seq
        return self._handlers[event.kind](event, peer_state)

    def apply_all(self, events: Iterable[Event]) -> list[Command]:
        commands: list[Command] = []
        for event in events:
            commands.extend(self.apply(event))
        return commands

    # ------------------------------------------------------------------ queries

    def peer(self, peer: str) -> PeerState:
        return self.peers.get(peer) or PeerState(peer)

    def owed(self, peer: str) -> set[str]:
        """What we hold and the peer does not (never anything that came from it: that is in its `has`)."""
        return self.local - self.peer(peer).has

    def wanted(self, peer: str) -> set[str]:
        """What the peer holds and we do not."""
        return self.peer(peer).has - self.local

    def never_echo(self, peer: str) -> set[str]:
        return set(self.peer(peer).received_from)

    def authenticated_peers(self) -> list[str]:
        return sorted(p for p, s in self.peers.items() if s.link is LinkStatus.AUTHENTICATED)

    def incoming_active(self, asset: str) -> bool:
        """Is some peer sending us this asset right now (requested and not yet ended)?"""
        return any((t := s.incoming.get(asset)) is not None and t.status.active for s in self.peers.values())

    def resume_offset(self, asset: str) -> int:
        """The furthest byte any transfer of this asset made durable, unless its bytes were thrown away."""
        best = 0
        for state in self.peers.values():
            transfer = state.incoming.get(asset)
            if transfer is not None and not transfer.discarded and transfer.status is not TransferStatus.COMPLETED:
                best = max(best, transfer.offset)
        return best

    def requests_for(self, peer: str) -> list[Command]:
        """Everything worth asking this peer for now (used when a session starts or resumes)."""
        state = self.peers.get(peer)
        if state is None or state.link is not LinkStatus.AUTHENTICATED:
            return []
        return [self._request(peer, h) for h in sorted(state.has - self.local) if self._may_request(state, h)]

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for `cansync status` and `cansync journal replay`."""
        peers = {}
        for peer, state in sorted(self.peers.items()):
            peers[peer] = {
                "link": state.link.value,
                "found_via": sorted(state.found_via),
                "reject_reason": state.reject_reason,
                "has": len(state.has),
                "owed": len(self.local - state.has),
                "wanted": len(state.has - self.local),
                "received_from": len(state.received_from),
                "in_flight": [
                    {"direction": d, "hash": h, "status": t.status.value, "offset": t.offset, "size": t.size}
                    for (d, h), t in sorted(state.in_flight().items())
                ],
                "bytes_in": state.bytes_in,
                "bytes_out": state.bytes_out,
                "protocol_errors": state.protocol_errors,
                "last_sync_ms": state.last_sync_ms,
                "last_event_ms": state.last_event_ms,
                "their_watermark": state.their_watermark,
            }
        return {
            "last_seq": self.last_seq,
            "local_assets": len(self.local),
            "store_watermark": self.store_watermark,
            "peers": peers,
        }

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "last_seq": self.last_seq,
            "local_seq": self.local_seq,
            "store_watermark": self.store_watermark,
            "local": sorted(self.local),
            "meta": {h: v.to_data() for h, v in sorted(self.meta.items())},
            "peers": {p: s.to_data() for p, s in sorted(self.peers.items())},
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> SyncState:
        if data.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"snapshot version {data.get('version')!r}, this code reads {SNAPSHOT_VERSION}")
        state = cls()
        try:
            state.last_seq = int(data["last_seq"])
            state.local_seq = int(data["local_seq"])
            state.store_watermark = int(data["store_watermark"])
            state.local = set(data["local"])
            state.meta = {h: MetaValue.from_data(v) for h, v in data["meta"].items()}
            state.peers = {p: PeerState.from_data(p, s) for p, s in data["peers"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot is damaged: {exc!r}") from exc
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SyncState):
            return NotImplemented
        return self.to_snapshot() == other.to_snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # ------------------------------------------------------------------ helpers

    def _may_request(self, state: PeerState, asset: str) -> bool:
        transfer = state.incoming.get(asset)
        if transfer is not None and transfer.failures >= MAX_FAILURES_PER_PEER:
            return False
        if transfer is not None and transfer.status is TransferStatus.COMPLETED:
            return False  # verified, its push into our store is under way (a failed push marks it FAILED)
        return not self.incoming_active(asset)

    def _request(self, peer: str, asset: str) -> RequestAsset:
        return RequestAsset(peer, asset, self.resume_offset(asset))

    def _request_elsewhere(self, asset: str, exclude: str) -> list[Command]:
        """Ask the first other authenticated peer that holds `asset` for it."""
        if asset in self.local or self.incoming_active(asset):
            return []
        for peer in self.authenticated_peers():
            state = self.peers[peer]
            if peer != exclude and asset in state.has and self._may_request(state, asset):
                return [self._request(peer, asset)]
        return []

    # ------------------------------------------------------------------ handlers: peers

    def _peer_discovered(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        via = event.data.get("via")
        if via:
            state.found_via.add(str(via))
        addrs = event.data.get("addrs")
        if addrs:
            state.addrs = tuple(addrs)
        return []

    def _peer_connected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.link = LinkStatus.CONNECTED
        addrs = event.data.get("addrs")
        if addrs:
            state.addrs = tuple(addrs)
        return []

    def _peer_authenticated(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        # A new session means the last one is over, even if its end never reached the journal (a full
        # disk, a crash): what it was moving is cut off, and asked for again below.
        for transfer in (*state.incoming.values(), *state.outgoing.values()):
            if transfer.status.active:
                transfer.status = TransferStatus.INTERRUPTED
        state.link = LinkStatus.AUTHENTICATED
        state.reject_reason = None
        return list(self.requests_for(state.peer)) if self._emit else []

    def _peer_rejected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.link = LinkStatus.REJECTED
        state.reject_reason = str(event.data.get("reason", "rejected"))
        return self._interrupt(state)

    def _peer_disconnected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        if state.link is not LinkStatus.REJECTED:
            state.link = LinkStatus.DISCONNECTED
        return self._interrupt(state)

    def _interrupt(self, state: PeerState) -> list[Command]:
        commands: list[Command] = []
        for transfer in state.outgoing.values():
            if transfer.status.active:
                transfer.status = TransferStatus.INTERRUPTED
        for asset, transfer in sorted(state.incoming.items()):
            if transfer.status.active:
                transfer.status = TransferStatus.INTERRUPTED
                if self._emit:
                    commands.extend(self._request_elsewhere(asset, exclude=state.peer))
        return commands

    def _peer_protocol_error(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.protocol_errors += 1
        return []

    # ------------------------------------------------------------------ handlers: digests

    def _hashes_advertised(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        hashes = event.data.get("hashes", ())
        state.has.update(hashes)
        state.said_has.update(hashes)
        state.their_watermark = max(state.their_watermark, int(event.data.get("watermark", 0)))
        state.last_sync_ms = max(state.last_sync_ms, event.time_ms)
        if state.link is not LinkStatus.AUTHENTICATED or not self._emit:
            return []
        return [self._request(state.peer, h) for h in hashes if h not in self.local and self._may_request(state, h)]

    def _hashes_sent(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.our_watermark_sent = max(state.our_watermark_sent, int(event.data.get("watermark", 0)))
        return []

    def _local_asset_seen(self, event: Event, state: PeerState | None) -> list[Command]:
        assert event.hash is not None
        self.store_watermark = max(self.store_watermark, int(event.data.get("changed_seq", 0)))
        if event.hash in self.local:
            return []
        self.local.add(event.hash)
        if not self._emit:
            return []
        return [
            Advertise(peer, (event.hash,))
            for peer in self.authenticated_peers()
            if event.hash not in self.peers[peer].has
        ]

    # ------------------------------------------------------------------ handlers: transfers

    @staticmethod
    def _side(event: Event, state: PeerState) -> dict[str, Transfer]:
        return state.incoming if event.data.get("direction") == "in" else state.outgoing

    def _transfer_requested(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        side = self._side(event, state)
        offset = int(event.data.get("offset", 0))
        previous = side.get(event.hash)
        failures = previous.failures if previous else 0
        side[event.hash] = Transfer(TransferStatus.REQUESTED, offset, previous.size if previous else None, failures)
        if side is state.outgoing:
            return [SendAsset(state.peer, event.hash, offset)]
        return []

    def _transfer_started(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        side = self._side(event, state)
        transfer = side.setdefault(event.hash, Transfer(TransferStatus.STARTED))
        transfer.status = TransferStatus.STARTED
        transfer.offset = int(event.data.get("offset", 0))
        size = event.data.get("size")
        transfer.size = int(size) if size is not None else transfer.size
        transfer.discarded = False
        return []

    def _transfer_checkpointed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        transfer = self._side(event, state).setdefault(event.hash, Transfer(TransferStatus.CHECKPOINTED))
        transfer.status = TransferStatus.CHECKPOINTED
        transfer.offset = int(event.data.get("offset", transfer.offset))
        return []

    def _transfer_completed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        side = self._side(event, state)
        transfer = side.setdefault(event.hash, Transfer(TransferStatus.COMPLETED))
        transfer.status = TransferStatus.COMPLETED
        size = event.data.get("size")
        if size is not None:
            transfer.size = int(size)
            transfer.offset = int(size)
        moved = int(event.data.get("sent", transfer.size or 0))
        state.has.add(event.hash)  # either it sent us the asset, or it now holds what we sent
        state.last_sync_ms = max(state.last_sync_ms, event.time_ms)
        if side is state.incoming:
            state.received_from.add(event.hash)  # marked before our store hears of it: no echo race
            state.said_has.add(event.hash)
            state.bytes_in += moved
        else:
            state.bytes_out += moved
        return []

    def _transfer_failed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        side = self._side(event, state)
        transfer = side.setdefault(event.hash, Transfer(TransferStatus.FAILED))
        transfer.status = TransferStatus.FAILED
        if not event.data.get("local_fault"):  # our store being down is not the peer's fault
            transfer.failures += 1
        transfer.discarded = bool(event.data.get("discard", False))
        if transfer.discarded:
            transfer.offset = 0
        if side is state.outgoing or event.hash in self.local or not self._emit:
            return []
        if event.data.get("local_fault"):
            return []  # asking again at once would fail the same way; the agent's periodic plan retries
        if state.link is LinkStatus.AUTHENTICATED and event.hash in state.has and self._may_request(state, event.hash):
            return [self._request(state.peer, event.hash)]
        return self._request_elsewhere(event.hash, exclude=state.peer)

    def _asset_received(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        self.local.add(event.hash)
        state.has.add(event.hash)
        state.said_has.add(event.hash)
        state.received_from.add(event.hash)
        transfer = state.incoming.get(event.hash)
        if transfer is not None and transfer.status is not TransferStatus.COMPLETED:
            transfer.status = TransferStatus.COMPLETED
        if not self._emit:
            return []
        # Tell the other peers: they may lack it. Never the peer it came from.
        return [
            Advertise(peer, (event.hash,))
            for peer in self.authenticated_peers()
            if peer != state.peer and event.hash not in self.peers[peer].has
        ]

    # ------------------------------------------------------------------ handlers: metadata

    def _metadata_changed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert event.hash is not None
        if event.peer is None:
            self.store_watermark = max(self.store_watermark, int(event.data.get("changed_seq", 0)))
        incoming = MetaValue.from_data(event.data)
        current = self.meta.get(event.hash)
        if current == incoming:
            # The same change again (another peer passing it on, or a re-send after a reconnect): apply
            # it to our store again. Writing the store is idempotent, and an apply cut off after the
            # change was journaled (a session closed mid-way) is repaired this way.
            return [ApplyMetadata(event.hash, incoming)] if event.peer is not None and self._emit else []
        if not incoming.beats(current):
            assert current is not None
            return [RecordSuperseded(event.hash, loser=incoming, winner=current)]
        self.meta[event.hash] = incoming
        if not self._emit:
            return []
        commands: list[Command] = []
        if current is not None:
            commands.append(RecordSuperseded(event.hash, loser=current, winner=incoming))
        if event.peer is not None:
            commands.append(ApplyMetadata(event.hash, incoming))
        commands.extend(
            ForwardMetadata(peer, event.hash, incoming) for peer in self.authenticated_peers() if peer != event.peer
        )
        return commands


def _nothing(event: Event, state: PeerState | None) -> list[Command]:
    return []


def fold(events: Iterable[Event], state: SyncState | None = None) -> SyncState:
    """Fold events into a (new) state without working out commands: what replay needs."""
    state = state if state is not None else SyncState()
    for event in events:
        state.replay(event)
    return state
