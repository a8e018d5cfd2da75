"""What the journal says about one peer: what it holds, what is moving between us, what came from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cansync.core.packed_ids import pack_ids, unpack_ids


class TransferStatus(StrEnum):
    REQUESTED = "requested"
    STARTED = "started"
    CHECKPOINTED = "checkpointed"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # the connection ended while it was moving; staged bytes are kept

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({TransferStatus.REQUESTED, TransferStatus.STARTED, TransferStatus.CHECKPOINTED})
"""Requested and not yet ended (a membership test on this set is cheaper than the property in a fold)."""


class LinkStatus(StrEnum):
    DISCOVERED = "discovered"
    CONNECTED = "connected"
    AUTHENTICATED = "authenticated"
    REJECTED = "rejected"
    DISCONNECTED = "disconnected"


@dataclass(slots=True)
class Transfer:
    """One asset moving between us and one peer. For an incoming one it also keeps what the rules that
    span peers need (resume point, deferral, a pending push), each with the journal seq that set it:
    those rules compare seqs, so the order in which peers' events are folded cannot change them."""

    status: TransferStatus
    offset: int = 0  # bytes known to be durable at the receiver
    size: int | None = None
    failures: int = 0  # strikes in this session: failures that were this peer's fault
    discarded: bool = False  # the last failure threw the staged bytes away
    request_id: int = 0  # the request this transfer answers; a stream naming another one is stale
    offset_seq: int = 0  # seq of the event that set `offset` (staged bytes as of then)
    discard_seq: int = 0  # seq of the last failure that threw the staged bytes away
    defer_until: int = 0  # a failure asked for a pause: no new request for the asset before this time
    defer_seq: int = 0  # seq of that failure (a newer request, from any peer, ends the pause)
    meta: Mapping[str, Any] | None = None  # verified and staged, its push into our store due: the sender's record
    retry_ms: int = 0  # that push failed on our side: push again from this time
    struck_ms: int = 0  # when this peer's strikes for the asset last reached the limit (its pardon counts from then)

    def to_data(self) -> list[Any]:
        return [
            self.status.value, self.offset, self.size, self.failures, self.discarded, self.request_id,
            self.offset_seq, self.discard_seq, self.defer_until, self.defer_seq,
            None if self.meta is None else dict(self.meta), self.retry_ms, self.struck_ms,
        ]  # fmt: skip

    @classmethod
    def from_data(cls, data: list[Any]) -> Transfer:
        status, *rest = data
        return cls(TransferStatus(status), *rest)


@dataclass
class PeerState:
    """One peer as the journal tells it.

    What the peer holds is kept in one of two forms. Until a reconciliation with it, `known`: what it
    vouched for or we sent it. After one (`mirror_seq`, the seq of that reconciliation), relative to our
    own assets: our assets but `lacks`, plus `extra`. A mirror of a million assets then costs only its
    differences (SyncState.holds reads either form).
    """

    peer: str
    link: LinkStatus = LinkStatus.DISCOVERED
    found_via: set[str] = field(default_factory=set)
    addrs: tuple[str, ...] = ()
    reject_reason: str | None = None
    known: set[str] = field(default_factory=set)  # before a reconciliation: what it holds
    mirror_seq: int = 0  # the seq of its reconciliation, 0 before one
    lacks: set[str] = field(default_factory=set)  # after one: assets of ours it does not hold
    extra: set[str] = field(default_factory=set)  # after one: assets it holds that we do not
    # held only because we sent it, not because it said so: its store may have failed to keep it, so a
    # digest answer still names these
    unvouched: set[str] = field(default_factory=set)
    received_from: set[str] = field(default_factory=set)  # came from this peer: never echo back
    sent_count: int = 0  # assets we finished sending it
    incoming: dict[str, Transfer] = field(default_factory=dict)  # hash -> transfer from the peer
    outgoing: dict[str, Transfer] = field(default_factory=dict)  # hash -> transfer to the peer
    their_watermark: int = 0  # the peer's store clock that the digests it sent us reach
    our_watermark_sent: int = 0  # our store clock that the digests we sent it reach
    last_seq: int = 0  # newest journal seq folded for this peer: older or equal ones are duplicates
    last_event_ms: int = 0
    last_sync_ms: int = 0  # time of the last asset or digest exchanged
    bytes_in: int = 0
    bytes_out: int = 0
    protocol_errors: int = 0
    paused: bool = False  # a person paused syncing with it: no session until resumed
    active_in: int = 0  # incoming transfers in flight (counted by the machine, not stored in snapshots)

    def in_flight(self) -> dict[tuple[str, str], Transfer]:
        moving = {("in", h): t for h, t in self.incoming.items() if t.status.active}
        moving.update({("out", h): t for h, t in self.outgoing.items() if t.status.active})
        return moving

    def to_data(self) -> dict[str, Any]:
        return {
            "link": self.link.value,
            "found_via": sorted(self.found_via),
            "addrs": list(self.addrs),
            "reject_reason": self.reject_reason,
            "known": pack_ids(sorted(self.known)),
            "mirror_seq": self.mirror_seq,
            "lacks": pack_ids(sorted(self.lacks)),
            "extra": pack_ids(sorted(self.extra)),
            "unvouched": pack_ids(sorted(self.unvouched)),
            "received_from": pack_ids(sorted(self.received_from)),
            "sent_count": self.sent_count,
            "incoming": {h: t.to_data() for h, t in sorted(self.incoming.items())},
            "outgoing": {h: t.to_data() for h, t in sorted(self.outgoing.items())},
            "their_watermark": self.their_watermark,
            "our_watermark_sent": self.our_watermark_sent,
            "last_seq": self.last_seq,
            "last_event_ms": self.last_event_ms,
            "last_sync_ms": self.last_sync_ms,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "protocol_errors": self.protocol_errors,
            "paused": self.paused,
        }

    @classmethod
    def from_data(cls, peer: str, data: dict[str, Any]) -> PeerState:
        return cls(
            peer=peer,
            link=LinkStatus(data["link"]),
            found_via=set(data["found_via"]),
            addrs=tuple(data["addrs"]),
            reject_reason=data["reject_reason"],
            known=set(unpack_ids(data["known"])),
            mirror_seq=int(data["mirror_seq"]),
            lacks=set(unpack_ids(data["lacks"])),
            extra=set(unpack_ids(data["extra"])),
            unvouched=set(unpack_ids(data["unvouched"])),
            received_from=set(unpack_ids(data["received_from"])),
            sent_count=int(data["sent_count"]),
            incoming={h: Transfer.from_data(t) for h, t in data["incoming"].items()},
            outgoing={h: Transfer.from_data(t) for h, t in data["outgoing"].items()},
            their_watermark=data["their_watermark"],
            our_watermark_sent=data["our_watermark_sent"],
            last_seq=data["last_seq"],
            last_event_ms=data["last_event_ms"],
            last_sync_ms=data["last_sync_ms"],
            bytes_in=data["bytes_in"],
            bytes_out=data["bytes_out"],
            protocol_errors=data["protocol_errors"],
            paused=data["paused"],
        )
