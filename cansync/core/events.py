"""The journal's vocabulary: every fact the agent learns is one of these events.

An Event is the envelope the journal stores: its kind, the peer it concerns (None for facts about our
own store), the asset hash where there is one, and its data. Each kind has one frozen payload class
below that says what its data holds; producers build events from payloads (`Event.of`), and readers
that want typed fields ask for `event.payload`. The data keeps the JSON shape the journal has always
had, so old journals read unchanged and new fields only ever come with defaults.

The journal gives each event its sequence number and time when it is appended; the core reads both
as data and never asks a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar


class EventKind(StrEnum):
    # peers
    PEER_DISCOVERED = "peer_discovered"
    PEER_CONNECTED = "peer_connected"
    PEER_AUTHENTICATED = "peer_authenticated"
    PEER_REJECTED = "peer_rejected"
    PEER_DISCONNECTED = "peer_disconnected"
    PEER_PROTOCOL_ERROR = "peer_protocol_error"
    PEER_PAUSED = "peer_paused"  # a person paused syncing with this peer: no session until resumed
    PEER_RESUMED = "peer_resumed"
    # digests
    HASHES_ADVERTISED = "hashes_advertised"  # the peer holds these
    HASHES_SENT = "hashes_sent"  # we told the peer we hold these
    PEER_RECONCILED = "peer_reconciled"  # a first meeting settled: what it lacks of ours, what it has extra
    # our own store
    LOCAL_ASSET_SEEN = "local_asset_seen"
    # transfers
    TRANSFER_REQUESTED = "transfer_requested"
    TRANSFER_STARTED = "transfer_started"
    TRANSFER_CHECKPOINTED = "transfer_checkpointed"
    TRANSFER_COMPLETED = "transfer_completed"
    TRANSFER_FAILED = "transfer_failed"
    ASSET_RECEIVED = "asset_received"  # the received-from-peer mark: verified and in our store
    # metadata (tags, description, trash) with last-writer-wins by (updated_ms, origin)
    METADATA_CHANGED = "metadata_changed"
    METADATA_SUPERSEDED = "metadata_superseded"  # a change that arrived after a later one: it lost


class Direction(StrEnum):
    IN = "in"  # the peer sends to us
    OUT = "out"  # we send to the peer


class Fault(StrEnum):
    """Whose failure a failed transfer is: it decides whether the peer is charged a strike."""

    PEER = "peer"  # the peer's bytes or answers were wrong: a strike; after three, ask someone else
    OURS = "ours"  # our disk, our store: no strike, and a retry waits a little
    LINK = "link"  # the connection or stream went away: no strike, ask again at once


PEER_KINDS = frozenset(
    {
        EventKind.PEER_DISCOVERED,
        EventKind.PEER_CONNECTED,
        EventKind.PEER_AUTHENTICATED,
        EventKind.PEER_REJECTED,
        EventKind.PEER_DISCONNECTED,
        EventKind.PEER_PROTOCOL_ERROR,
        EventKind.PEER_PAUSED,
        EventKind.PEER_RESUMED,
        EventKind.HASHES_ADVERTISED,
        EventKind.HASHES_SENT,
        EventKind.PEER_RECONCILED,
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


# ---------------------------------------------------------------------------------------------- payloads


@dataclass(frozen=True, slots=True)
class PeerDiscovered:
    KIND: ClassVar[EventKind] = EventKind.PEER_DISCOVERED
    via: str  # ticket, pkarr, lan, exchange, incoming, journal
    addrs: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {"via": self.via, "addrs": list(self.addrs)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerDiscovered:
        return cls(str(data.get("via", "")), tuple(data.get("addrs") or ()))


@dataclass(frozen=True, slots=True)
class PeerConnected:
    KIND: ClassVar[EventKind] = EventKind.PEER_CONNECTED
    direction: Direction  # OUT: we dialed
    addrs: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {"direction": self.direction.value, "addrs": list(self.addrs)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerConnected:
        return cls(Direction(data.get("direction", "out")), tuple(data.get("addrs") or ()))


@dataclass(frozen=True, slots=True)
class PeerAuthenticated:
    KIND: ClassVar[EventKind] = EventKind.PEER_AUTHENTICATED

    def to_data(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerAuthenticated:
        return cls()


@dataclass(frozen=True, slots=True)
class PeerRejected:
    KIND: ClassVar[EventKind] = EventKind.PEER_REJECTED
    reason: str

    def to_data(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerRejected:
        return cls(str(data.get("reason", "rejected")))


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    KIND: ClassVar[EventKind] = EventKind.PEER_DISCONNECTED
    reason: str

    def to_data(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerDisconnected:
        return cls(str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class PeerProtocolError:
    KIND: ClassVar[EventKind] = EventKind.PEER_PROTOCOL_ERROR
    reason: str

    def to_data(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerProtocolError:
        return cls(str(data.get("reason", "")))


@dataclass(frozen=True, slots=True)
class PeerPaused:
    KIND: ClassVar[EventKind] = EventKind.PEER_PAUSED
    by: str = "user"

    def to_data(self) -> dict[str, Any]:
        return {"by": self.by}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerPaused:
        return cls(str(data.get("by", "user")))


@dataclass(frozen=True, slots=True)
class PeerResumed:
    KIND: ClassVar[EventKind] = EventKind.PEER_RESUMED
    by: str = "user"

    def to_data(self) -> dict[str, Any]:
        return {"by": self.by}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerResumed:
        return cls(str(data.get("by", "user")))


@dataclass(frozen=True, slots=True)
class HashesAdvertised:
    """The peer holds these. `watermark` is set only on the last batch of a digest answer (0 otherwise),
    so an answer cut off half-way is asked for again from the old watermark."""

    KIND: ClassVar[EventKind] = EventKind.HASHES_ADVERTISED
    hashes: tuple[str, ...]
    watermark: int = 0
    full: bool = False
    live: bool = False

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hashes": list(self.hashes), "watermark": self.watermark, "full": self.full}
        if self.live:
            data["live"] = True
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> HashesAdvertised:
        return cls(
            tuple(data.get("hashes") or ()),
            int(data.get("watermark", 0)),
            bool(data.get("full", False)),
            bool(data.get("live", False)),
        )


@dataclass(frozen=True, slots=True)
class HashesSent:
    KIND: ClassVar[EventKind] = EventKind.HASHES_SENT
    hashes: tuple[str, ...]
    watermark: int = 0
    full: bool = False
    live: bool = False

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"hashes": list(self.hashes), "watermark": self.watermark, "full": self.full}
        if self.live:
            data["live"] = True
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> HashesSent:
        return cls(
            tuple(data.get("hashes") or ()),
            int(data.get("watermark", 0)),
            bool(data.get("full", False)),
            bool(data.get("live", False)),
        )


@dataclass(frozen=True, slots=True)
class PeerReconciled:
    """A set reconciliation with the peer (core.reconcile) settled what it holds, relative to our assets:
    which of ours it `lacks`, which it has `extra`. From here on its holdings are kept in that form.
    `watermark`: the peer's store clock its set was taken at (later meetings ask from there)."""

    KIND: ClassVar[EventKind] = EventKind.PEER_RECONCILED
    lacks: tuple[str, ...]
    extra: tuple[str, ...]
    watermark: int = 0
    messages: int = 0  # messages the exchange took, both ways
    wire_bytes: int = 0  # frame bytes on the connection until it ended, both ways (handshake included)

    def to_data(self) -> dict[str, Any]:
        return {
            "lacks": list(self.lacks),
            "extra": list(self.extra),
            "watermark": self.watermark,
            "messages": self.messages,
            "wire_bytes": self.wire_bytes,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PeerReconciled:
        return cls(
            tuple(data.get("lacks") or ()),
            tuple(data.get("extra") or ()),
            int(data.get("watermark", 0)),
            int(data.get("messages", 0)),
            int(data.get("wire_bytes", 0)),
        )


@dataclass(frozen=True, slots=True)
class LocalAssetSeen:
    KIND: ClassVar[EventKind] = EventKind.LOCAL_ASSET_SEEN
    timestamp: int = 0
    size: int = 0
    changed_seq: int = 0  # our store's change clock for this record

    def to_data(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "size": self.size, "changed_seq": self.changed_seq}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> LocalAssetSeen:
        return cls(int(data.get("timestamp", 0)), int(data.get("size", 0)), int(data.get("changed_seq", 0)))


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """direction IN: we asked the peer (request_id is this event's own seq, given at append);
    OUT: the peer asked us, request_id is the number it gave its request."""

    KIND: ClassVar[EventKind] = EventKind.TRANSFER_REQUESTED
    direction: Direction
    offset: int = 0
    request_id: int = 0

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"direction": self.direction.value, "offset": self.offset}
        if self.request_id:
            data["request_id"] = self.request_id
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TransferRequested:
        return cls(Direction(data.get("direction", "in")), int(data.get("offset", 0)), int(data.get("request_id", 0)))


@dataclass(frozen=True, slots=True)
class TransferStarted:
    KIND: ClassVar[EventKind] = EventKind.TRANSFER_STARTED
    direction: Direction
    offset: int = 0
    size: int | None = None

    def to_data(self) -> dict[str, Any]:
        return {"direction": self.direction.value, "offset": self.offset, "size": self.size}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TransferStarted:
        size = data.get("size")
        return cls(
            Direction(data.get("direction", "in")), int(data.get("offset", 0)), None if size is None else int(size)
        )


@dataclass(frozen=True, slots=True)
class TransferCheckpointed:
    KIND: ClassVar[EventKind] = EventKind.TRANSFER_CHECKPOINTED
    direction: Direction
    offset: int  # bytes durable at the receiver

    def to_data(self) -> dict[str, Any]:
        return {"direction": self.direction.value, "offset": self.offset}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TransferCheckpointed:
        return cls(Direction(data.get("direction", "in")), int(data.get("offset", 0)))


@dataclass(frozen=True, slots=True)
class TransferCompleted:
    """IN: every byte arrived and hashes to the asset's id (`verified`); its push into our store follows,
    with `meta` (the sender's record of the asset) kept here so a push cut off can be redone from staging.
    OUT: the peer has every byte we sent."""

    KIND: ClassVar[EventKind] = EventKind.TRANSFER_COMPLETED
    direction: Direction
    size: int | None = None
    sent: int | None = None  # bytes that crossed on this stream (less than size after a resume)
    verified: bool = False
    meta: Mapping[str, Any] | None = None
    stored: bool = False  # IN: pushed into our store while it arrived (no push is due; the mark follows)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"direction": self.direction.value, "size": self.size, "sent": self.sent}
        if self.direction is Direction.IN:
            data["verified"] = self.verified
        if self.meta is not None:
            data["meta"] = dict(self.meta)
        if self.stored:
            data["stored"] = True
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TransferCompleted:
        size, sent = data.get("size"), data.get("sent")
        return cls(
            Direction(data.get("direction", "in")),
            None if size is None else int(size),
            None if sent is None else int(sent),
            bool(data.get("verified", False)),
            data.get("meta"),
            bool(data.get("stored", False)),
        )


@dataclass(frozen=True, slots=True)
class TransferFailed:
    """`fault` says who is charged (core.faults decides it); `discard`: the staged bytes were thrown away;
    `stage` "store": the bytes were verified and only the push into our store failed; `defer`: wait a
    little before asking again (asking at once would fail the same way)."""

    KIND: ClassVar[EventKind] = EventKind.TRANSFER_FAILED
    direction: Direction
    reason: str
    fault: Fault = Fault.PEER
    discard: bool = False
    stage: str = "transfer"
    defer: bool = False

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "direction": self.direction.value,
            "reason": self.reason,
            "discard": self.discard,
            "fault": self.fault.value,
            # kept for journals and tools written before `fault` existed
            "local_fault": self.fault is Fault.OURS,
        }
        if self.stage != "transfer":
            data["stage"] = self.stage
        data["defer"] = self.defer
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TransferFailed:
        fault = data.get("fault")
        if fault is None:  # written before `fault`: the old flag said ours or the peer's
            fault = Fault.OURS if data.get("local_fault") else Fault.PEER
        return cls(
            Direction(data.get("direction", "in")),
            str(data.get("reason", "")),
            Fault(fault),
            bool(data.get("discard", False)),
            str(data.get("stage", "transfer")),
            bool(data.get("defer", fault == Fault.OURS)),
        )


@dataclass(frozen=True, slots=True)
class AssetReceived:
    KIND: ClassVar[EventKind] = EventKind.ASSET_RECEIVED
    timestamp: int = 0

    def to_data(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> AssetReceived:
        return cls(int(data.get("timestamp", 0)))


@dataclass(frozen=True, slots=True)
class MetadataChanged:
    """A metadata value (core.metadata.MetaValue's fields); `changed_seq` for a change of our own store."""

    KIND: ClassVar[EventKind] = EventKind.METADATA_CHANGED
    updated_ms: int
    origin: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    trashed: bool = False
    changed_seq: int = 0

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "updated_ms": self.updated_ms,
            "origin": self.origin,
            "tags": list(self.tags),
            "description": self.description,
            "trashed": self.trashed,
        }
        if self.changed_seq:
            data["changed_seq"] = self.changed_seq
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> MetadataChanged:
        return cls(
            int(data.get("updated_ms", 0)),
            str(data.get("origin", "")),
            tuple(str(t) for t in data.get("tags") or ()),
            str(data.get("description", "")),
            bool(data.get("trashed", False)),
            int(data.get("changed_seq", 0)),
        )


@dataclass(frozen=True, slots=True)
class MetadataSuperseded:
    KIND: ClassVar[EventKind] = EventKind.METADATA_SUPERSEDED
    loser: Mapping[str, Any]
    winner: Mapping[str, Any]

    def to_data(self) -> dict[str, Any]:
        return {"loser": dict(self.loser), "winner": dict(self.winner)}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> MetadataSuperseded:
        return cls(dict(data.get("loser") or {}), dict(data.get("winner") or {}))


Payload = (
    PeerDiscovered
    | PeerConnected
    | PeerAuthenticated
    | PeerRejected
    | PeerDisconnected
    | PeerProtocolError
    | PeerPaused
    | PeerResumed
    | HashesAdvertised
    | HashesSent
    | PeerReconciled
    | LocalAssetSeen
    | TransferRequested
    | TransferStarted
    | TransferCheckpointed
    | TransferCompleted
    | TransferFailed
    | AssetReceived
    | MetadataChanged
    | MetadataSuperseded
)

PAYLOAD_TYPES: dict[EventKind, Any] = {
    cls.KIND: cls
    for cls in (
        PeerDiscovered,
        PeerConnected,
        PeerAuthenticated,
        PeerRejected,
        PeerDisconnected,
        PeerProtocolError,
        PeerPaused,
        PeerResumed,
        HashesAdvertised,
        HashesSent,
        PeerReconciled,
        LocalAssetSeen,
        TransferRequested,
        TransferStarted,
        TransferCheckpointed,
        TransferCompleted,
        TransferFailed,
        AssetReceived,
        MetadataChanged,
        MetadataSuperseded,
    )
}


# ---------------------------------------------------------------------------------------------- the envelope


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

    @classmethod
    def of(cls, payload: Payload, *, peer: str | None = None, hash: str | None = None) -> Event:
        """The event of a typed payload (the one way producers build events)."""
        return cls(payload.KIND, peer=peer, hash=hash, data=payload.to_data())

    @property
    def payload(self) -> Any:
        """This event's data as its kind's payload class."""
        return PAYLOAD_TYPES[self.kind].from_data(self.data)

    def journaled(self, seq: int, time_ms: int) -> Event:
        """The same fact with the sequence number and time the journal gave it."""
        return replace(self, seq=seq, time_ms=time_ms)
