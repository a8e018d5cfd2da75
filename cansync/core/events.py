"""The journal's vocabulary: every fact the agent learns is one of these events.

Events are plain data. The journal gives each one its sequence number and time when it is appended;
the core reads both as data and never asks a clock. `peer` is the hex endpoint id an event concerns
(None for facts about our own store), `hash` the asset digest where there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    # peers
    PEER_DISCOVERED = "peer_discovered"  # data: via ("ticket"|"pkarr"|"lan"|"exchange"|"incoming"), addrs
    PEER_CONNECTED = "peer_connected"  # data: direction ("out"|"in"), addrs
    PEER_AUTHENTICATED = "peer_authenticated"
    PEER_REJECTED = "peer_rejected"  # data: reason
    PEER_DISCONNECTED = "peer_disconnected"  # data: reason
    PEER_PROTOCOL_ERROR = "peer_protocol_error"  # data: reason (a malformed or oversized frame, a stall)
    # digests
    HASHES_ADVERTISED = "hashes_advertised"  # the peer holds these. data: hashes, watermark, full
    HASHES_SENT = "hashes_sent"  # we told the peer we hold these. data: hashes, watermark, full
    # our own store
    LOCAL_ASSET_SEEN = "local_asset_seen"  # our store holds it. data: timestamp, size
    # transfers; data always has direction ("in": peer -> us, "out": us -> peer)
    TRANSFER_REQUESTED = "transfer_requested"  # data: direction, offset
    TRANSFER_STARTED = "transfer_started"  # data: direction, offset, size
    TRANSFER_CHECKPOINTED = "transfer_checkpointed"  # data: direction, offset (bytes durable so far)
    TRANSFER_COMPLETED = "transfer_completed"  # data: direction, size, verified, sent (bytes on this stream)
    TRANSFER_FAILED = "transfer_failed"  # data: direction, reason, discard (staged bytes thrown away)
    ASSET_RECEIVED = "asset_received"  # received-from-peer mark: verified and in our store. data: timestamp
    # metadata (tags, description, trash) with last-writer-wins by (updated_ms, origin)
    METADATA_CHANGED = "metadata_changed"  # data: tags, description, trashed, updated_ms, origin
    METADATA_SUPERSEDED = "metadata_superseded"  # a change that lost. data: the loser and the winner


PEER_KINDS = frozenset(
    {
        EventKind.PEER_DISCOVERED,
        EventKind.PEER_CONNECTED,
        EventKind.PEER_AUTHENTICATED,
        EventKind.PEER_REJECTED,
        EventKind.PEER_DISCONNECTED,
        EventKind.PEER_PROTOCOL_ERROR,
        EventKind.HASHES_ADVERTISED,
        EventKind.HASHES_SENT,
        EventKind.TRANSFER_REQUESTED,
        EventKind.TRANSFER_STARTED,
        EventKind.TRANSFER_CHECKPOINTED,
        EventKind.TRANSFER_COMPLETED,
        EventKind.TRANSFER_FAILED,
        EventKind.ASSET_RECEIVED,
    }
)
"""Kinds that must name a peer."""

HASH_KINDS = frozenset(
    {
        EventKind.LOCAL_ASSET_SEEN,
        EventKind.TRANSFER_REQUESTED,
        EventKind.TRANSFER_STARTED,
        EventKind.TRANSFER_CHECKPOINTED,
        EventKind.TRANSFER_COMPLETED,
        EventKind.TRANSFER_FAILED,
        EventKind.ASSET_RECEIVED,
        EventKind.METADATA_CHANGED,
        EventKind.METADATA_SUPERSEDED,
    }
)
"""Kinds that must name an asset hash."""


class InvalidEvent(ValueError):
    """An event that lacks what its kind requires."""


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    peer: str | None = None
    hash: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0  # given by the journal at append; 0 means "not journaled yet"
    time_ms: int = 0  # wall-clock ms given by the journal at append

    def __post_init__(self) -> None:
        if self.kind in PEER_KINDS and not self.peer:
            raise InvalidEvent(f"{self.kind} needs a peer")
        if self.kind in HASH_KINDS and not self.hash:
            raise InvalidEvent(f"{self.kind} needs an asset hash")

    def journaled(self, seq: int, time_ms: int) -> Event:
        """The same fact with the sequence number and time the journal gave it."""
        return replace(self, seq=seq, time_ms=time_ms)
