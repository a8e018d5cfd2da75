"""The sync machine: journal events in, derived state, commands and decisions out (sans-io, like h11).

`SyncState.apply(event)` folds one journaled event and returns the commands it implies. `plan(now_ms)`
decides which assets to ask which peers for; it returns `transfer_requested` events, which the ledger
journals and folds before it decides anything else, so a decision and its record are one step: across
all peers, at most one incoming transfer per asset is ever in flight. The machine never touches a
socket, a file or a clock; the time it knows is the time written in the events, or passed in.

Why folding is order-independent across peers: everything global only grows (our holdings) or is a
last-writer-wins register (metadata), and everything else belongs to one peer and is folded in that
peer's own journal order. The rules that span peers for one asset (is it claimed, where does a resume
start, is a retry paused) are worked out from every peer's record of that asset, comparing the journal
seqs the records carry, never from the order they were folded in. Duplicates are dropped by sequence
number per peer, so replaying a journal twice, or a snapshot plus its tail, lands on the same state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from sys import intern
from types import MappingProxyType
from typing import Any

from cansync.core.commands import (
    Advertise,
    ApplyMetadata,
    Command,
    ForwardMetadata,
    RecordSuperseded,
    RequestAsset,
    SendAsset,
    StoreAsset,
)
from cansync.core.events import (
    Direction,
    Event,
    EventKind,
    Fault,
    MetadataSuperseded,
    PeerConnected,
    PeerDiscovered,
    TransferFailed,
    TransferRequested,
)
from cansync.core.ids import ASSET_ID_LENGTH, NOT_HEX, is_asset_id
from cansync.core.local_assets import LocalAssets
from cansync.core.metadata import MetaValue
from cansync.core.packed_ids import pack_numbers, pack_raw_ids, unpack_numbers, unpack_raw_ids
from cansync.core.peer_state import ACTIVE_STATUSES, LinkStatus, PeerState, Transfer, TransferStatus

MAX_FAILURES_PER_PEER = 3
"""After this many failures of one asset that were one peer's fault, stop asking that peer for it..."""

STRIKE_PARDON_MS = 60_000
"""...for this long: then it is asked again (a store that gave wrong bytes may have healed, and a session
can last for days; without a pardon an asset only that peer holds would never arrive). Another failure
strikes it out for as long again."""

REQUEST_WINDOW = 128
"""Most incoming requests in flight to one peer: the rest wait, so that requests spread over every peer
that holds an asset and a newly met peer is not handed the whole backlog at once."""

LOCAL_RETRY_MS = 5_000
"""After a failure of our own (disk full, store down), wait this long before asking again."""

SNAPSHOT_VERSION = 4
_KEEP = object()  # _set_incoming: leave the transfer's pending record as it is
NO_RECORD: Mapping[str, Any] = MappingProxyType({})  # a verified transfer whose sender sent no record


class SnapshotError(ValueError):
    """A snapshot this code cannot read (another version, or damaged)."""


class SyncState:
    def __init__(self) -> None:
        self.local = LocalAssets()  # assets our store holds -> the seq that made them ours
        self.meta: dict[str, MetaValue] = {}  # winning metadata change per asset
        self.peers: dict[str, PeerState] = {}
        self.last_seq = 0  # newest journal seq folded, any peer
        self.local_seq = 0  # newest seq folded of the events that name no peer (our own store)
        self.store_watermark = 0  # our store's change clock that the journal has caught up with
        self.failures = {fault.value: 0 for fault in Fault}  # failed transfers, by whose fault
        # Counts over the peers' incoming transfers (rebuilt from them, never stored): by asset, how many
        # peers' transfers are in flight and how many verified copies wait for their push into our store;
        # and the assets some failure asked to pause. PeerState.active_in counts per peer.
        self._active: dict[str, int] = {}  # asset -> peers whose transfer of it is in flight
        self._pushing: dict[str, int] = {}  # asset -> peers whose verified copy waits for its push
        self._paused: set[str] = set()
        self._struck: set[str] = set()  # assets some peer is struck out for: asked again after the pardon
        # Transient planning queues (live only): per peer, in arrival order, assets that became worth
        # asking it for. Not state: a replay builds none, and a restart plans from the peers that
        # authenticate anew.
        self._candidates: dict[str, dict[str, None]] = {}
        self._newest_local_seq = 0
        self._last_checked_id = ""  # the asset id of the last event folded, which passed the id check
        self._emit = True  # False while replaying: handlers update state and skip building commands
        self._handlers: dict[EventKind, Callable[[Event, PeerState | None], list[Command]]] = {
            EventKind.PEER_DISCOVERED: self._peer_discovered,
            EventKind.PEER_CONNECTED: self._peer_connected,
            EventKind.PEER_AUTHENTICATED: self._peer_authenticated,
            EventKind.PEER_REJECTED: self._peer_rejected,
            EventKind.PEER_DISCONNECTED: self._peer_disconnected,
            EventKind.PEER_PROTOCOL_ERROR: self._peer_protocol_error,
            EventKind.PEER_PAUSED: self._peer_paused,
            EventKind.PEER_RESUMED: self._peer_resumed,
            EventKind.HASHES_ADVERTISED: self._hashes_advertised,
            EventKind.HASHES_SENT: self._hashes_sent,
            EventKind.PEER_RECONCILED: self._peer_reconciled,
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
        return self._fold(event)

    def replay(self, event: Event) -> None:
        """Fold one event without working out its commands: a replay acts on nothing, so it skips that cost."""
        self._emit = False
        try:
            self._fold(event)
        finally:
            self._emit = True

    @contextlib.contextmanager
    def replaying(self) -> Iterator[Callable[[Event], object]]:
        """Fold many events without commands: yields the fold of one event, to call on each in turn (the
        switch is set once for the whole replay rather than once per event)."""
        self._emit = False
        try:
            yield self._fold
        finally:
            self._emit = True

    def _fold(self, event: Event) -> list[Command]:
        # attribute reads kept in locals: this runs once per journaled event on every replay
        seq = event.seq
        peer = event.peer
        peer_state: PeerState | None = None
        if peer is not None:
            peer_state = self.peers.get(peer)
            if peer_state is None:
                peer_state = self.peers[peer] = PeerState(peer)
            if seq:
                if seq <= peer_state.last_seq:
                    return []
                peer_state.last_seq = seq
            if event.time_ms > peer_state.last_event_ms:
                peer_state.last_event_ms = event.time_ms
        elif seq:
            if seq <= self.local_seq:
                return []
            self.local_seq = seq
        if seq > self.last_seq:
            self.last_seq = seq
        asset = event.hash
        if asset is not None and asset != self._last_checked_id:
            if len(asset) != ASSET_ID_LENGTH or asset.translate(NOT_HEX):
                return []  # not an asset id (journaled before peer input was checked): nothing to act on
            # a transfer's events name its asset several times in a row: the check costs a replay more
            # than any handler, so the last id that passed is not checked again
            self._last_checked_id = asset
        return self._handlers[event.kind](event, peer_state)

    def apply_all(self, events: Iterable[Event]) -> list[Command]:
        commands: list[Command] = []
        for event in events:
            commands.extend(self.apply(event))
        return commands

    # ------------------------------------------------------------------ decisions

    def plan(self, now_ms: int) -> list[Event]:
        """Decide what to ask for now: `transfer_requested` events (direction in), at most one per asset
        across all peers, never for an asset we hold, that is in flight, or whose verified copy waits
        for our store. Requests spread over the peers that hold an asset: each peer takes candidates
        from its own queue in turn, up to REQUEST_WINDOW in flight, so the least loaded peers fill first.
        Journal and fold the result before planning again."""
        for asset in list(self._paused):
            until = self.paused_until(asset)
            if until <= now_ms:
                self._paused.discard(asset)
                self._mark_holders(asset)
        for asset in list(self._struck):
            struck = [t.struck_ms for t in self._incoming_of(asset) if t.failures >= MAX_FAILURES_PER_PEER]
            if not struck or min(struck) + STRIKE_PARDON_MS <= now_ms:
                self._struck.discard(asset)
                self._mark_holders(asset)
        if not any(self._candidates.values()):
            return []
        load = {peer: self.peers[peer].active_in for peer in self.authenticated_peers()}
        queues = {
            peer: queue
            for peer in sorted(load)
            if (queue := self._candidates.get(peer)) and load[peer] < REQUEST_WINDOW
        }
        taken: set[str] = set()
        events: list[Event] = []
        while queues:
            for peer in list(queues):
                queue = queues[peer]
                while queue:  # this peer's turn: its next candidate that may still be asked for
                    asset = next(iter(queue))
                    del queue[asset]
                    if asset not in taken and self._may_request(self.peers[peer], asset, now_ms):
                        taken.add(asset)
                        load[peer] += 1
                        offset = self.resume_offset(asset)
                        events.append(Event.of(TransferRequested(Direction.IN, offset), peer=peer, hash=asset))
                        break
                if not queue or load[peer] >= REQUEST_WINDOW:
                    del queues[peer]
        for peer in [p for p, q in self._candidates.items() if not q]:
            del self._candidates[peer]
        return events

    def decide(self, commands: Iterable[Command], now_ms: int) -> tuple[list[Event], list[Command]]:
        """After a fold: the events to journal (and fold) next, before anything else is decided: the
        losses of metadata changes and the requests `plan` makes; and the commands to carry out."""
        follow_ups: list[Event] = []
        to_carry_out: list[Command] = []
        for command in commands:
            if isinstance(command, RecordSuperseded):
                loss = MetadataSuperseded(command.loser.to_data(), command.winner.to_data())
                follow_ups.append(Event.of(loss, hash=command.hash))
            else:
                to_carry_out.append(command)
        follow_ups.extend(self.plan(now_ms))
        return follow_ups, to_carry_out

    def plan_again(self, requests: Iterable[Event]) -> None:
        """Planned requests that could not be journaled: put them back, to be decided again next time."""
        for event in requests:
            if event.peer is not None and event.hash is not None:
                self._mark(event.peer, event.hash)

    def store_retries(self, now_ms: int) -> list[Command]:
        """Verified assets whose push into our store failed on our side and may be tried again now."""
        return [
            StoreAsset(peer, asset, transfer.meta)
            for asset, peer, transfer in self._pending_pushes()
            if transfer.retry_ms and transfer.retry_ms <= now_ms
        ]

    def pending_stores(self) -> list[Command]:
        """Every verified asset still waiting for its push (what a restarted agent pushes first)."""
        return [StoreAsset(peer, asset, transfer.meta) for asset, peer, transfer in self._pending_pushes()]

    def _pending_pushes(self) -> list[tuple[str, str, Any]]:
        pending = []
        for asset in sorted(self._pushing):
            if asset in self.local:
                continue
            for peer, state in sorted(self.peers.items()):
                transfer = state.incoming.get(asset)
                if transfer is not None and transfer.meta is not None and transfer.status is TransferStatus.COMPLETED:
                    pending.append((asset, peer, transfer))
        return pending

    # ------------------------------------------------------------------ queries

    def peer(self, peer: str) -> PeerState:
        return self.peers.get(peer) or PeerState(peer)

    def holds(self, state: PeerState, asset: str) -> bool:
        """Does this peer hold the asset (it said so, or we sent it; never anything that came from it is
        missing here, so nothing is echoed)? After a reconciliation: what it said or got since, or an
        asset of ours from before the reconciliation that it did not lack then."""
        if state.mirror_seq:
            if asset in state.extra or asset in state.received_from:
                return True
            seq = self.local.get(asset)
            return seq is not None and seq <= state.mirror_seq and asset not in state.lacks
        return asset in state.known

    def vouched(self, state: PeerState, asset: str) -> bool:
        """Held, and the peer said so itself (not merely that we sent it: its store may have failed)."""
        return asset not in state.unvouched and self.holds(state, asset)

    def holdings(self, peer: str) -> set[str]:
        """Everything the peer holds (for tests and tools: at a million assets, a big set)."""
        state = self.peer(peer)
        if state.mirror_seq:
            return {a for a in self.local if self.holds(state, a)} | state.extra
        return set(state.known)

    def owed(self, peer: str) -> set[str]:
        """What we hold and the peer does not (never anything that came from it: it holds that)."""
        state = self.peer(peer)
        if state.mirror_seq:
            lacking = {a for a in state.lacks if a in self.local and a not in state.extra}
            return (lacking - state.received_from).union(self._local_unknown_to(state))
        return {a for a in self.local if a not in state.known}

    def wanted(self, peer: str) -> set[str]:
        """What the peer holds and we do not."""
        state = self.peer(peer)
        if state.mirror_seq:
            return {a for a in state.extra if a not in self.local}
        return {a for a in state.known if a not in self.local}

    def _local_unknown_to(self, state: PeerState) -> Iterator[str]:
        """Our assets that came after the peer's reconciliation and that it has not said it holds."""
        if self._newest_local_seq <= state.mirror_seq:
            return
        for asset in self.local.since(state.mirror_seq):
            if asset not in state.extra and asset not in state.received_from:
                yield asset

    def _counts(self, state: PeerState) -> tuple[int, int, int]:
        """How many assets the peer holds, we owe it, it owes us."""
        if state.mirror_seq:
            owed = len(self.owed(state.peer))
            wanted = sum(1 for a in state.extra if a not in self.local)
            return len(self.local) - owed + wanted, owed, wanted
        wanted = sum(1 for a in state.known if a not in self.local)
        return len(state.known), len(self.local) - (len(state.known) - wanted), wanted

    def never_echo(self, peer: str) -> set[str]:
        return set(self.peer(peer).received_from)

    def authenticated_peers(self) -> list[str]:
        return sorted(p for p, s in self.peers.items() if s.link is LinkStatus.AUTHENTICATED)

    def claimed(self, asset: str) -> bool:
        """Is this asset being fetched (a transfer in flight) or stored (verified, its push due)?"""
        return asset not in self.local and (asset in self._active or asset in self._pushing)

    def incoming_active(self, asset: str) -> bool:
        """Is some peer sending us this asset right now (requested and not yet ended)?"""
        return asset in self._active

    def storing(self) -> list[str]:
        """Assets verified and staged whose push into our store is still due."""
        return [a for a in sorted(self._pushing) if a not in self.local]

    def may_be_staged(self) -> set[str]:
        """Assets whose staged bytes may still be needed: not in our store, and some peer began sending them."""
        return {a for state in self.peers.values() for a in state.incoming if a not in self.local}

    def _incoming_of(self, asset: str) -> list[Transfer]:
        return [t for s in self.peers.values() if (t := s.incoming.get(asset)) is not None]

    def resume_offset(self, asset: str) -> int:
        """Bytes of this asset durable in our staging: where a request for it starts. The furthest
        checkpoint of any peer's transfer, unless a later failure threw the staged bytes away."""
        transfers = self._incoming_of(asset)
        cut = max((t.discard_seq for t in transfers), default=0)
        return max((t.offset for t in transfers if not cut or t.offset_seq > cut), default=0)

    def paused_until(self, asset: str) -> int:
        """No new request for this asset before this time: a failure asked for a pause, and no request
        (to any peer) has been made since."""
        transfers = self._incoming_of(asset)
        latest_request = max((t.request_id for t in transfers), default=0)
        return max((t.defer_until for t in transfers if t.defer_seq > latest_request), default=0)

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary for `cansync status` and `cansync journal replay`."""
        peers = {}
        for peer, state in sorted(self.peers.items()):
            rejected = state.link is LinkStatus.REJECTED
            holds, owed, wanted = self._counts(state)
            peers[peer] = {
                "link": state.link.value,
                "found_via": sorted(state.found_via),
                "reject_reason": state.reject_reason,
                "has": holds,
                # nothing is owed to or wanted from a peer that failed the passphrase proof
                "owed": 0 if rejected else owed,
                "wanted": 0 if rejected else wanted,
                "received_from": len(state.received_from),
                "sent": state.sent_count,
                "in_flight": [
                    {"direction": d, "hash": h, "status": t.status.value, "offset": t.offset, "size": t.size}
                    for (d, h), t in sorted(state.in_flight().items())
                ],
                "bytes_in": state.bytes_in,
                "bytes_out": state.bytes_out,
                "protocol_errors": state.protocol_errors,
                "paused": state.paused,
                "last_sync_ms": state.last_sync_ms,
                "last_event_ms": state.last_event_ms,
                "their_watermark": state.their_watermark,
            }
        return {
            "last_seq": self.last_seq,
            "local_assets": len(self.local),
            "store_watermark": self.store_watermark,
            "storing": len(self.storing()),
            "failures": dict(self.failures),
            "peers": peers,
        }

    # ------------------------------------------------------------------ snapshots

    def to_snapshot(self) -> dict[str, Any]:
        local_ids, local_seqs = self.local.sorted_raw()
        return {
            "version": SNAPSHOT_VERSION,
            "last_seq": self.last_seq,
            "local_seq": self.local_seq,
            "store_watermark": self.store_watermark,
            "local": pack_raw_ids(local_ids),
            "local_seqs": pack_numbers(local_seqs),
            "meta": {h: v.to_data() for h, v in sorted(self.meta.items())},
            "failures": dict(sorted(self.failures.items())),
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
            state.local = LocalAssets.from_raw(unpack_raw_ids(data["local"]), unpack_numbers(data["local_seqs"]))
            state._newest_local_seq = max(state.local.values(), default=0)
            state.meta = {h: MetaValue.from_data(v) for h, v in data["meta"].items()}
            state.failures.update({str(k): int(n) for k, n in data["failures"].items()})
            state.peers = {p: PeerState.from_data(p, s) for p, s in data["peers"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot is damaged: {exc!r}") from exc
        state._recount()
        return state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SyncState):
            return NotImplemented
        return self.to_snapshot() == other.to_snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # ------------------------------------------------------------------ helpers

    def _may_request(self, state: PeerState, asset: str, now_ms: int) -> bool:
        if state.link is not LinkStatus.AUTHENTICATED or state.paused or not self.holds(state, asset):
            return False
        if asset in self.local or self.claimed(asset) or self.paused_until(asset) > now_ms:
            return False
        transfer = state.incoming.get(asset)
        return (
            transfer is None
            or transfer.failures < MAX_FAILURES_PER_PEER
            or transfer.struck_ms + STRIKE_PARDON_MS <= now_ms
        )

    def _mark(self, peer: str, asset: str) -> None:
        """`asset` may be worth asking `peer` for: queue it for the next plan (live only)."""
        if self._emit:
            self._candidates.setdefault(peer, {})[asset] = None

    def _mark_holders(self, asset: str, avoid: str | None = None) -> None:
        """An asset was released (its transfer ended without it): the peers in session that hold it are
        candidates again; `avoid` (the peer whose transfer just failed) only if no other holder is."""
        if not self._emit or asset in self.local:
            return
        holders = [p for p in self.authenticated_peers() if self.holds(self.peers[p], asset)]
        others = [p for p in holders if p != avoid]
        for peer in others or holders:
            self._mark(peer, asset)

    def _vouch(self, state: PeerState, asset: str) -> None:
        """The peer says it holds the asset (its digests, or it sent it to us). Only the peer's own sets
        change, never by looking at ours: the fold of one peer's events cannot depend on when our
        store's events are folded beside them."""
        asset = intern(asset)
        state.unvouched.discard(asset)
        if state.mirror_seq:
            state.lacks.discard(asset)
            state.extra.add(asset)
        else:
            state.known.add(asset)

    def _sent(self, state: PeerState, asset: str) -> None:
        """We sent the peer the asset: it holds it now, as far as we know, without having said so."""
        asset = intern(asset)
        held = state.extra if state.mirror_seq else state.known
        if asset in held:
            return
        state.unvouched.add(asset)
        held.add(asset)
        state.lacks.discard(asset)

    def _became_local(self, asset: str, seq: int) -> None:
        """Our store holds the asset, since this seq (the earliest one that said so, whatever the order)."""
        self.local.note(asset, seq)
        if seq > self._newest_local_seq:
            self._newest_local_seq = seq

    def _set_incoming(
        self, state: PeerState, asset: str, transfer: Transfer, status: TransferStatus, meta: Any
    ) -> None:
        """Every change of an incoming transfer's status or pending record goes through here, so the
        counts stay exact. Written out, not factored into helpers: it runs for every transfer event of a
        replay, and each Python call costs more than the work itself."""
        if state.incoming.get(asset) is transfer:
            old = transfer.status
            was_active = old in ACTIVE_STATUSES
            was_pushing = old is TransferStatus.COMPLETED and transfer.meta is not None
        else:
            state.incoming[asset] = transfer
            was_active = was_pushing = False
        transfer.status = status
        if meta is not _KEEP:
            transfer.meta = meta
        is_active = status in ACTIVE_STATUSES
        if is_active is not was_active:
            step = 1 if is_active else -1
            state.active_in += step
            left = self._active.get(asset, 0) + step
            if left > 0:
                self._active[asset] = left
            else:
                self._active.pop(asset, None)
        is_pushing = status is TransferStatus.COMPLETED and transfer.meta is not None
        if is_pushing is not was_pushing:
            left = self._pushing.get(asset, 0) + (1 if is_pushing else -1)
            if left > 0:
                self._pushing[asset] = left
            else:
                self._pushing.pop(asset, None)
        if transfer.defer_until:
            self._paused.add(asset)

    def _recount(self) -> None:
        """Rebuild the counts from the peers' transfers (after loading a snapshot)."""
        self._active.clear()
        self._pushing.clear()
        for state in self.peers.values():
            state.active_in = 0
            for asset, transfer in state.incoming.items():
                if transfer.status in ACTIVE_STATUSES:
                    state.active_in += 1
                    self._active[asset] = self._active.get(asset, 0) + 1
                elif transfer.status is TransferStatus.COMPLETED and transfer.meta is not None:
                    self._pushing[asset] = self._pushing.get(asset, 0) + 1
                if transfer.defer_until:
                    self._paused.add(asset)
                if transfer.failures >= MAX_FAILURES_PER_PEER:
                    self._struck.add(asset)

    # ------------------------------------------------------------------ handlers: peers

    def _peer_discovered(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        payload = PeerDiscovered.from_data(event.data)
        if payload.via:
            state.found_via.add(payload.via)
        if payload.addrs:
            state.addrs = payload.addrs
        return []

    def _peer_connected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.link = LinkStatus.CONNECTED
        addrs = PeerConnected.from_data(event.data).addrs
        if addrs:
            state.addrs = addrs
        return []

    def _peer_authenticated(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        # A new session means the last one is over, even if its end never reached the journal (a full
        # disk, a crash): what it was moving is cut off.
        self._interrupt(state)
        state.link = LinkStatus.AUTHENTICATED
        state.reject_reason = None
        # strikes count within a session: a peer whose store was down, or that lied, is asked again in
        # its next session (a lie then costs it three more strikes, never an endless loop)
        for transfer in state.incoming.values():
            transfer.failures = 0
        if self._emit:
            for asset in sorted(self.wanted(state.peer)):
                self._mark(state.peer, asset)
        return []

    def _peer_rejected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.link = LinkStatus.REJECTED
        state.reject_reason = str(event.data.get("reason", "rejected"))
        self._interrupt(state)
        return []

    def _peer_disconnected(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        if state.link is not LinkStatus.REJECTED:
            state.link = LinkStatus.DISCONNECTED
        self._interrupt(state)
        return []

    def _interrupt(self, state: PeerState) -> None:
        """The link to this peer ended: what was moving is cut off (staged bytes stay for a resume), and
        what it was sending us may be asked of another peer."""
        for transfer in state.outgoing.values():
            if transfer.status.active:
                transfer.status = TransferStatus.INTERRUPTED
        for asset, transfer in sorted(state.incoming.items()):
            if transfer.status.active:
                self._set_incoming(state, asset, transfer, TransferStatus.INTERRUPTED, _KEEP)
                self._mark_holders(asset, avoid=state.peer)
        self._candidates.pop(state.peer, None)

    def _peer_protocol_error(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.protocol_errors += 1
        return []

    def _peer_paused(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.paused = True
        self._candidates.pop(state.peer, None)
        return []

    def _peer_resumed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        state.paused = False
        return []

    # ------------------------------------------------------------------ handlers: digests

    def _hashes_advertised(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        data = event.data
        hashes = [h for h in data.get("hashes") or () if is_asset_id(h)]
        for asset in hashes:
            self._vouch(state, asset)
        watermark = int(data.get("watermark", 0))
        if watermark > state.their_watermark:
            state.their_watermark = watermark
        if event.time_ms > state.last_sync_ms:
            state.last_sync_ms = event.time_ms
        if self._emit and state.link is LinkStatus.AUTHENTICATED:
            for asset in hashes:
                if asset not in self.local:
                    self._mark(state.peer, asset)
        return []

    def _hashes_sent(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        watermark = int(event.data.get("watermark", 0))
        if watermark > state.our_watermark_sent:
            state.our_watermark_sent = watermark
        return []

    def _peer_reconciled(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None
        data = event.data
        state.mirror_seq = event.seq or 1
        state.known.clear()
        state.unvouched.clear()  # the peer vouched for its whole set
        # what came from the peer is never owed back to it, whatever the exchange found (no echo)
        state.lacks = {intern(a) for a in data.get("lacks") or () if is_asset_id(a)} - state.received_from
        state.extra = {intern(a) for a in data.get("extra") or () if is_asset_id(a)}
        watermark = int(data.get("watermark", 0))
        if watermark > state.their_watermark:
            state.their_watermark = watermark
        if event.time_ms > state.last_sync_ms:
            state.last_sync_ms = event.time_ms
        if self._emit and state.link is LinkStatus.AUTHENTICATED:
            for asset in sorted(self.wanted(state.peer)):
                self._mark(state.peer, asset)
        return []

    def _local_asset_seen(self, event: Event, state: PeerState | None) -> list[Command]:
        assert event.hash is not None
        changed_seq = int(event.data.get("changed_seq", 0))
        if changed_seq > self.store_watermark:
            self.store_watermark = changed_seq
        asset = event.hash
        new = asset not in self.local
        self._became_local(asset, event.seq)
        if not new or not self._emit:
            return []
        return [
            Advertise(peer, (asset,)) for peer in self.authenticated_peers() if not self.holds(self.peers[peer], asset)
        ]

    # ------------------------------------------------------------------ handlers: transfers

    def _transfer_requested(self, event: Event, state: PeerState | None) -> list[Command]:
        # the hot transfer handlers read the data as TransferRequested & co. define it, without building
        # the payload objects: a replay folds millions of these
        assert state is not None and event.hash is not None
        asset = event.hash
        data = event.data
        offset = int(data.get("offset", 0))
        if data.get("direction") == Direction.OUT:
            request_id = int(data.get("request_id", 0))
            previous = state.outgoing.get(asset)
            state.outgoing[asset] = Transfer(
                TransferStatus.REQUESTED, offset, previous.size if previous else None,
                previous.failures if previous else 0, request_id=request_id,
            )  # fmt: skip
            return [SendAsset(state.peer, asset, offset, request_id)] if self._emit else []
        transfer = state.incoming.get(asset)
        if transfer is None:  # the usual case, counted here without the general path: replays are full of it
            transfer = state.incoming[asset] = Transfer(TransferStatus.REQUESTED)
            state.active_in += 1
            self._active[asset] = self._active.get(asset, 0) + 1
        else:
            self._set_incoming(state, asset, transfer, TransferStatus.REQUESTED, None)
        transfer.offset = offset
        transfer.offset_seq = transfer.request_id = event.seq
        return [RequestAsset(state.peer, asset, offset, event.seq)] if self._emit else []

    def _transfer_started(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        data = event.data
        offset = int(data.get("offset", 0))
        if data.get("direction") == Direction.OUT:
            transfer = state.outgoing.setdefault(event.hash, Transfer(TransferStatus.STARTED))
            transfer.status = TransferStatus.STARTED
        else:
            known = state.incoming.get(event.hash)
            if known is not None and known.status in ACTIVE_STATUSES:
                known.status = TransferStatus.STARTED  # in flight before and after: no count changes
                transfer = known
            else:
                transfer = known or Transfer(TransferStatus.STARTED)
                self._set_incoming(state, event.hash, transfer, TransferStatus.STARTED, _KEEP)
            transfer.offset_seq = event.seq  # the receiver cut its staging back to `offset`
        transfer.offset = offset
        size = data.get("size")
        if size is not None:
            transfer.size = int(size)
        transfer.discarded = False
        return []

    def _transfer_checkpointed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        offset = int(event.data.get("offset", 0))
        if event.data.get("direction") == Direction.OUT:
            transfer = state.outgoing.setdefault(event.hash, Transfer(TransferStatus.CHECKPOINTED))
            transfer.status = TransferStatus.CHECKPOINTED
        else:
            known = state.incoming.get(event.hash)
            if known is not None and known.status in ACTIVE_STATUSES:
                known.status = TransferStatus.CHECKPOINTED  # in flight before and after: no count changes
                transfer = known
            else:
                transfer = known or Transfer(TransferStatus.CHECKPOINTED)
                self._set_incoming(state, event.hash, transfer, TransferStatus.CHECKPOINTED, _KEEP)
            transfer.offset_seq = event.seq
        transfer.offset = offset
        return []

    def _transfer_completed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        asset = event.hash
        data = event.data
        size, sent = data.get("size"), data.get("sent")
        if event.time_ms > state.last_sync_ms:
            state.last_sync_ms = event.time_ms
        if data.get("direction") == Direction.OUT:
            # it holds what we sent; the record of the send is no longer needed (a count stays)
            self._sent(state, asset)
            transfer = state.outgoing.pop(asset, None)
            state.sent_count += 1
            if sent is not None:
                state.bytes_out += int(sent)
            elif size is not None:
                state.bytes_out += int(size)
            elif transfer is not None and transfer.size:
                state.bytes_out += transfer.size
            return []
        transfer = state.incoming.get(asset) or Transfer(TransferStatus.COMPLETED)
        if size is not None:
            transfer.size = transfer.offset = int(size)
            transfer.offset_seq = event.seq
        asset = intern(asset)
        self._vouch(state, asset)  # marked before our store hears of it: no echo race
        state.received_from.add(asset)
        state.bytes_in += int(sent) if sent is not None else (transfer.size or 0)
        # the record is kept whether or not our store already has it, so the fold does not depend on order
        transfer.retry_ms = 0
        # verified and staged: the asset stays claimed until its push into our store lands (unless it
        # was pushed while it arrived: then its received mark follows in the same record)
        record = None if data.get("stored") else data.get("meta") or NO_RECORD
        if transfer.status in ACTIVE_STATUSES and state.incoming.get(asset) is transfer:
            # the usual case, counted here without the general path: in flight -> verified, push due
            transfer.status, transfer.meta = TransferStatus.COMPLETED, record
            state.active_in -= 1
            left = self._active[asset] - 1
            if left:
                self._active[asset] = left
            else:
                del self._active[asset]
            if record is not None:
                self._pushing[asset] = self._pushing.get(asset, 0) + 1
        else:
            self._set_incoming(state, asset, transfer, TransferStatus.COMPLETED, record)
        if record is None or asset in self.local or not self._emit:
            return []
        return [StoreAsset(state.peer, asset, record)]

    def _transfer_failed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        asset = event.hash
        payload = TransferFailed.from_data(event.data)
        if payload.direction is Direction.OUT:
            transfer = state.outgoing.setdefault(asset, Transfer(TransferStatus.FAILED))
            transfer.status = TransferStatus.FAILED
            self.failures[payload.fault.value] += 1
            return []
        transfer = state.incoming.get(asset) or Transfer(TransferStatus.FAILED)
        self.failures[payload.fault.value] += 1
        if payload.fault is Fault.PEER:
            transfer.failures += 1
            if transfer.failures >= MAX_FAILURES_PER_PEER:
                transfer.struck_ms = event.time_ms
                self._struck.add(asset)
        if payload.stage == "store" and not payload.discard and transfer.meta is not None:
            # the verified bytes stay staged and claimed: only the push is tried again, a little later
            transfer.retry_ms = event.time_ms + LOCAL_RETRY_MS
            return []
        transfer.discarded = payload.discard
        if payload.discard:
            transfer.offset = 0
            transfer.discard_seq = event.seq
        if payload.defer:
            transfer.defer_until = event.time_ms + LOCAL_RETRY_MS  # asking at once would fail the same way
            transfer.defer_seq = event.seq
        self._set_incoming(state, asset, transfer, TransferStatus.FAILED, None)
        if not payload.defer:
            self._mark_holders(asset, avoid=state.peer)
        return []

    def _asset_received(self, event: Event, state: PeerState | None) -> list[Command]:
        assert state is not None and event.hash is not None
        asset = intern(event.hash)
        seq = event.seq
        self.local.note(asset, seq)  # _became_local, written out: a replay meets every asset here
        if seq > self._newest_local_seq:
            self._newest_local_seq = seq
        self._vouch(state, asset)
        state.received_from.add(asset)
        transfer = state.incoming.get(asset)
        if transfer is not None:
            if transfer.status is TransferStatus.COMPLETED and transfer.meta is not None:
                # the usual case, counted here without the general path: the push landed
                left = self._pushing[asset] - 1
                if left:
                    self._pushing[asset] = left
                else:
                    del self._pushing[asset]
            else:
                self._set_incoming(state, asset, transfer, TransferStatus.COMPLETED, None)
            del state.incoming[asset]  # received: the record of the transfer is no longer needed
        if not self._emit:
            return []
        # Tell the other peers: they may lack it. Never the peer it came from.
        commands: list[Command] = [
            Advertise(peer, (asset,))
            for peer in self.authenticated_peers()
            if peer != state.peer and not self.holds(self.peers[peer], asset)
        ]
        winner = self.meta.get(asset)
        if winner is not None:
            # a change that arrived before the asset itself: the pushed record may be older
            commands.append(ApplyMetadata(asset, winner))
        return commands

    # ------------------------------------------------------------------ handlers: metadata

    def _metadata_changed(self, event: Event, state: PeerState | None) -> list[Command]:
        assert event.hash is not None
        asset = event.hash
        if event.peer is None:
            changed_seq = int(event.data.get("changed_seq", 0))
            if changed_seq > self.store_watermark:
                self.store_watermark = changed_seq
        incoming = MetaValue.from_data(event.data)
        current = self.meta.get(asset)
        if current == incoming:
            # The same change again (another peer passing it on, or a re-send after a reconnect): apply
            # it to our store again. Writing the store is idempotent, and an apply cut off after the
            # change was journaled (a session closed mid-way) is repaired this way.
            if event.peer is not None and self._emit and asset in self.local:
                return [ApplyMetadata(asset, incoming)]
            return []
        if not incoming.beats(current):
            # it arrived after a later change: the two really competed, and this one lost
            assert current is not None
            return [RecordSuperseded(asset, loser=incoming, winner=current)] if self._emit else []
        self.meta[asset] = incoming
        if not self._emit:
            return []
        commands: list[Command] = []
        if event.peer is not None and asset in self.local:
            commands.append(ApplyMetadata(asset, incoming))
        commands.extend(
            ForwardMetadata(peer, asset, incoming) for peer in self.authenticated_peers() if peer != event.peer
        )
        return commands


def _nothing(event: Event, state: PeerState | None) -> list[Command]:
    return []


def fold(events: Iterable[Event], state: SyncState | None = None) -> SyncState:
    """Fold events into a (new) state without working out commands: what replay needs."""
    state = state if state is not None else SyncState()
    with state.replaying() as fold_one:
        for event in events:
            fold_one(event)
    return state
