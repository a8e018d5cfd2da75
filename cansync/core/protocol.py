"""The rules of one session with one peer, sans-io (in the manner of h11's Connection).

A `PeerSession` in cansync/agent pumps bytes; this class decides. In: decoded and checked messages
(`core.messages`), the machine's commands for this peer, what became of transfers, and the time (`now`
in ms, passed in). Out: events to journal, messages to send (`take_output`), actions the pump must do
(`AnswerDigests`, `LearnPeers`), and a close reason. It owns:

- outbox coalescing: wants and adverts wait in ordered sets and leave in as few frames as the caps allow;
- digest answers: the echo filter (nothing the peer itself vouched for, unless its metadata changed)
  and batching with the watermark rule (only the last batch carries the watermark, so an answer cut
  off half-way is asked for again from the old one);
- transfer admission, both ways: which incoming streams answer a live request of ours, which are stale
  leftovers (dropped without blame) and which are lies; which wants start a send now and which wait;
- fault attribution: every failed transfer goes through `core.faults`;
- liveness: keepalives when we are quiet, and a close when the peer has been silent too long.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cansync.core import messages as msg
from cansync.core.events import (
    AssetReceived,
    Direction,
    Event,
    HashesAdvertised,
    HashesSent,
    MetadataChanged,
    PeerProtocolError,
    PeerReconciled,
    TransferCompleted,
    TransferRequested,
    TransferStarted,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.machine import SyncState
from cansync.core.metadata import MetaValue
from cansync.core.peer_state import TransferStatus
from cansync.core.reconcile import DigestSet, PeerReconcileError, Reconciler, ReconcilerMisuse

DIGESTS_PER_FRAME = 4096
WANTS_PER_FRAME = 1024
PARALLEL_SENDS = 4  # transfer streams we write at once
ASSETS_PER_STREAM = 64  # wanted assets sent one after another on one stream (pulled in one store request)
SMALL_ASSET_BYTES = 256 * 1024  # at most this: received whole in memory, journaled as one completion
KEEPALIVE_MS = 10_000
SILENCE_LIMIT_MS = 35_000  # three keepalives missed: the peer is gone
REASON_CHARS = 500  # reasons we tell a peer are cut to this


# ---------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class AnswerDigests:
    """The peer asked for our digests since `since`: read them from our store and call `answer_digests`."""

    since: int


@dataclass(frozen=True, slots=True)
class LearnPeers:
    """Peer exchange: the peer told us of these endpoints."""

    peers: tuple[msg.PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class OpenReconcile:
    """Open a reconciliation: build our set of digests and call `reconcile_open`."""


@dataclass(frozen=True, slots=True)
class JoinReconcile:
    """The peer opened a reconciliation: build our set of digests and call `reconcile_join` with this."""

    first: msg.Reconcile


@dataclass(frozen=True, slots=True)
class Reconciled:
    """The reconciliation ended: journal what it found with `reconciled` (in one step with the check)."""

    have_not: frozenset[bytes]  # the peer holds these and our set did not
    they_lack: frozenset[bytes]  # our set held these and the peer lacks them
    their_watermark: int
    messages: int = 0


Action = AnswerDigests | LearnPeers | OpenReconcile | JoinReconcile | Reconciled


@dataclass(slots=True)
class Reaction:
    """What the session must do after one input: journal `events`, then do `actions`; close if `close`."""

    events: list[Event] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    close: str | None = None


@dataclass(frozen=True, slots=True)
class DigestAnswerPart:
    """One frame of a digest answer; `with_metadata` are the assets whose current metadata must go out
    (as MetaChange frames) before it, so an edit made while the peer was away reaches it."""

    batch: msg.DigestBatch
    with_metadata: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SendJob:
    """An asset to stream to the peer: what it asked for, from which byte, under which request."""

    hash: str
    offset: int
    request_id: int


class Admission(Enum):
    ACCEPT = "accept"  # the stream answers our live request: receive it
    STALE = "stale"  # it answers a request we have since given up: stop it, blame nobody
    VIOLATION = "violation"  # nobody asked for it, or it starts at the wrong byte: the peer broke the rules


@dataclass(frozen=True, slots=True)
class AdmissionVerdict:
    admission: Admission
    events: tuple[Event, ...] = ()
    reason: str = ""


# ---------------------------------------------------------------------------------------------- the rules


class PeerProtocol:
    def __init__(self, peer: str, *, now_ms: int, our_id: str = "", keepalive_ms: int = KEEPALIVE_MS,
                 silence_limit_ms: int = SILENCE_LIMIT_MS, parallel_sends: int = PARALLEL_SENDS) -> None:  # fmt: skip
        self.peer = peer
        self.our_id = our_id
        self._asked_to_reconcile = False
        self._reconciler: Reconciler | None = None
        self._reconcile_base = 0  # journal seq our set was taken at
        self._our_watermark = 0
        self._their_watermark = 0
        self.keepalive_ms = keepalive_ms
        self.silence_limit_ms = silence_limit_ms
        self.parallel_sends = parallel_sends
        self._frames: deque[object] = deque()  # messages in the order they must leave
        self._wants: dict[str, msg.WantItem] = {}
        self._adverts: dict[str, None] = {}
        self._last_heard_ms = now_ms
        self._last_sent_ms = now_ms
        self._send_queue: dict[str, SendJob] = {}  # asked for, waiting for a free send slot
        self._sending: dict[str, SendJob] = {}  # streaming now
        self._asked_again: dict[str, SendJob] = {}  # asked for again while streaming: starts after it
        self._streams = 0  # send streams open now
        self.close_reason: str | None = None

    # ------------------------------------------------------------------ start and time

    def start(self, their_watermark: int, known_peers: Sequence[msg.PeerInfo], *, knows_peer: bool = True) -> None:
        """A session begins: ask for the peer's digests since what the journal remembers (or, knowing
        nothing of it yet, for a reconciliation), and share peers."""
        self._asked_to_reconcile = not knows_peer
        self._frames.append(msg.DigestRequest(since=their_watermark, reconcile=not knows_peer))
        self.share_peers(known_peers)

    def share_peers(self, known_peers: Sequence[msg.PeerInfo]) -> None:
        if known_peers:
            self._frames.append(msg.PeerList(tuple(known_peers)))

    def tick(self, now_ms: int) -> str | None:
        """Time passed: a keepalive if we were quiet; the close reason if the peer has been silent too long."""
        if now_ms - self._last_heard_ms >= self.silence_limit_ms:
            self.close_reason = self.close_reason or (
                f"peer silent for {(now_ms - self._last_heard_ms) / 1000:.0f} s (no keepalive)"
            )
            return self.close_reason
        if now_ms - self._last_sent_ms >= self.keepalive_ms and not self.has_output():
            self._frames.append(msg.KeepAlive())
        return None

    # ------------------------------------------------------------------ control messages in

    def receive(self, message: msg.ControlMessage, now_ms: int) -> Reaction:
        """One checked control message from the peer."""
        self._last_heard_ms = now_ms
        reaction = Reaction()
        peer = self.peer
        if isinstance(message, msg.KeepAlive):
            pass
        elif isinstance(message, msg.Goodbye):
            reaction.close = self.close_reason = f"peer said goodbye: {message.reason}"
        elif isinstance(message, msg.DigestRequest):
            if not message.reconcile:
                reaction.actions.append(AnswerDigests(message.since))
            elif self._reconciler is None and not (self._asked_to_reconcile and self.our_id > self.peer):
                # both asked: the smaller id opens, and one exchange answers both
                reaction.actions.append(OpenReconcile())
        elif isinstance(message, msg.Reconcile):
            if self._reconciler is None:
                reaction.actions.append(JoinReconcile(message))
            else:
                self._reconcile_step(message, reaction)
        elif isinstance(message, msg.DigestBatch):
            watermark = message.watermark if message.last else 0
            payload = HashesAdvertised(tuple(d.hash for d in message.digests), watermark, message.full)
            reaction.events.append(Event.of(payload, peer=peer))
        elif isinstance(message, msg.Advertise):
            reaction.events.append(Event.of(HashesAdvertised(message.hashes, live=True), peer=peer))
        elif isinstance(message, msg.Want):
            for item in message.items:
                request = TransferRequested(Direction.OUT, item.offset, item.request_id)
                reaction.events.append(Event.of(request, peer=peer, hash=item.hash))
        elif isinstance(message, msg.MetaChange):
            value = message.value
            change = MetadataChanged(value.updated_ms, value.origin, value.tags, value.description, value.trashed)
            reaction.events.append(Event.of(change, peer=peer, hash=message.hash))
        elif isinstance(message, msg.PeerList):
            reaction.actions.append(LearnPeers(message.peers))
        elif isinstance(message, msg.AssetUnavailable):
            pass  # judged against the state in `unavailable`, where the check and its record are one step
        return reaction

    def unavailable(self, message: msg.AssetUnavailable, state: SyncState) -> list[Event]:
        """The peer cannot serve an asset: a failure of our live request for it, else nothing (stale)."""
        transfer = state.peer(self.peer).incoming.get(message.hash)
        if transfer is None or not transfer.status.active or transfer.request_id != message.request_id:
            return []
        failure = Failure.PEER_TROUBLE if message.transient else Failure.UNAVAILABLE
        return self.incoming_failed(message.hash, failure, f"peer cannot serve it: {message.reason}")

    # ------------------------------------------------------------------ reconciliation

    def reconcile_open(self, digests: DigestSet, our_watermark: int, base_seq: int) -> None:
        """Open the exchange over our set (taken at journal seq `base_seq`, our store at `our_watermark`)."""
        self._begin(digests, our_watermark, base_seq)
        assert self._reconciler is not None
        self._frames.append(msg.Reconcile(our_watermark, self._reconciler.initiate()))

    def reconcile_join(self, digests: DigestSet, our_watermark: int, base_seq: int, first: msg.Reconcile) -> Reaction:
        """The peer opened it: answer its first message."""
        self._begin(digests, our_watermark, base_seq)
        reaction = Reaction()
        self._reconcile_step(first, reaction)
        return reaction

    def _begin(self, digests: DigestSet, our_watermark: int, base_seq: int) -> None:
        if self._reconciler is not None:
            raise ReconcilerMisuse("one reconciliation per session")
        self._reconciler = Reconciler(digests)
        self._our_watermark = our_watermark
        self._reconcile_base = base_seq

    def _reconcile_step(self, message: msg.Reconcile, reaction: Reaction) -> None:
        reconciler = self._reconciler
        assert reconciler is not None
        if reconciler.finished:
            reaction.events += self.violation("a reconciliation message arrived after the exchange ended")
            reaction.close = self.close_reason
            return
        self._their_watermark = max(self._their_watermark, message.watermark)
        try:
            reply = reconciler.respond(message.exchange)
        except PeerReconcileError as exc:
            reaction.events += self.violation(f"reconciliation: {exc}")
            reaction.close = self.close_reason
            return
        if reply is not None:
            self._frames.append(msg.Reconcile(self._our_watermark, reply))
        if reconciler.finished:
            messages = reconciler.messages_sent + reconciler.messages_received
            reaction.actions.append(
                Reconciled(reconciler.have_not, reconciler.they_lack, self._their_watermark, messages)
            )

    def reconciled(self, done: Reconciled, state: SyncState, wire_bytes: int = 0) -> list[Event]:
        """The record of a finished reconciliation, against the state as it stands now: the peer lacks
        what the exchange found and what became ours after our set was taken (it was not asked about
        those), unless it has said since that it holds them; it holds extra what the exchange found and
        what it said it holds that we lack."""
        peer_state = state.peer(self.peer)
        if peer_state.mirror_seq:
            return []  # reconciled already (by an earlier session that raced this one)
        said = peer_state.known - peer_state.unvouched
        lacks = {d.hex() for d in done.they_lack}
        lacks.update(state.local.since(self._reconcile_base))
        lacks -= said
        extra = {d.hex() for d in done.have_not}
        extra.update(a for a in said if a not in state.local)
        payload = PeerReconciled(
            tuple(sorted(lacks)), tuple(sorted(extra)), done.their_watermark, done.messages, wire_bytes
        )
        return [Event.of(payload, peer=self.peer)]

    # ------------------------------------------------------------------ the machine's commands

    def want(self, asset: str, offset: int, request_id: int) -> None:
        self._wants[asset] = msg.WantItem(asset, offset, request_id)

    def advertise(self, hashes: Sequence[str]) -> None:
        for asset in hashes:
            self._adverts[asset] = None

    def forward_metadata(self, asset: str, value: MetaValue) -> None:
        self._frames.append(msg.MetaChange(asset, value))

    def send(self, asset: str, offset: int, request_id: int) -> None:
        """The peer asked for an asset (journaled): queue it for a send stream. One send per asset at a
        time; a request for one being sent (the peer gave up on that send and asked again) waits for it."""
        job = SendJob(asset, offset, request_id)
        if asset in self._sending:
            self._asked_again[asset] = job
        else:
            self._send_queue[asset] = job  # replaces an older queued request for the same asset

    # ------------------------------------------------------------------ sends

    def next_sends(self, limit: int = ASSETS_PER_STREAM) -> list[SendJob]:
        """The assets to send on the next stream, if a stream slot is free: up to `limit` asked for from
        their start (pulled from our store in one request, sent one after another), or a single resume
        (a store pull has one offset for all it names)."""
        if self._streams >= self.parallel_sends or not self._send_queue:
            return []
        jobs: list[SendJob] = []
        for asset, job in list(self._send_queue.items()):
            if job.offset and jobs:
                continue  # a resume goes on a stream of its own
            del self._send_queue[asset]
            self._sending[asset] = job
            jobs.append(job)
            if job.offset or len(jobs) >= limit:
                break
        self._streams += 1
        return jobs

    def stream_done(self) -> None:
        """A send stream ended (whatever became of its assets): its slot is free."""
        self._streams -= 1

    def send_started(self, job: SendJob, offset: int, size: int) -> list[Event]:
        return [Event.of(TransferStarted(Direction.OUT, offset, size), peer=self.peer, hash=job.hash)]

    def send_finished(self, job: SendJob, size: int, sent: int) -> list[Event]:
        self._end_send(job)
        return [Event.of(TransferCompleted(Direction.OUT, size, sent), peer=self.peer, hash=job.hash)]

    def send_failed(self, job: SendJob, failure: Failure, reason: str) -> list[Event]:
        self._end_send(job)
        return [failed_transfer(self.peer, job.hash, Direction.OUT, failure, reason)]

    def send_unavailable(
        self, job: SendJob, reason: str, failure: Failure = Failure.SOURCE_UNAVAILABLE, *, transient: bool = False
    ) -> list[Event]:
        """We cannot send what the peer asked for (our store lacks it or failed, or its stream broke):
        tell it, so it asks again or someone else. `transient`: our own trouble (our store failed, the
        stream broke), which the peer must not count against us as it counts a wrong advert."""
        said = reason.replace("\x00", " ")[:REASON_CHARS]  # within what the peer's wire checks accept
        self._frames.append(msg.AssetUnavailable(job.hash, said, job.request_id, transient))
        return self.send_failed(job, failure, reason)

    def _end_send(self, job: SendJob) -> None:
        if self._sending.get(job.hash) is job:
            del self._sending[job.hash]
            again = self._asked_again.pop(job.hash, None)
            if again is not None:
                self._send_queue[job.hash] = again

    @property
    def sends_waiting(self) -> int:
        return len(self._send_queue) + len(self._asked_again)

    # ------------------------------------------------------------------ receives

    def judge(self, header: msg.AssetHeader, state: SyncState) -> AdmissionVerdict:
        """Does this incoming asset answer a live request of ours, at the byte we asked for? (No record.)"""
        transfer = state.peer(self.peer).incoming.get(header.hash)
        if transfer is None or header.request_id > transfer.request_id or header.request_id == 0:
            return AdmissionVerdict(
                Admission.VIOLATION, reason=f"peer sent asset {header.hash[:16]} that was not asked of it"
            )
        if header.request_id < transfer.request_id or not transfer.status.active:
            return AdmissionVerdict(Admission.STALE)
        if transfer.status is not TransferStatus.REQUESTED:
            # a request is answered once: a second answer would write into the same staged file
            return AdmissionVerdict(
                Admission.VIOLATION, reason=f"peer answered its request for {header.hash[:12]} a second time"
            )
        if header.offset != transfer.offset:
            return AdmissionVerdict(
                Admission.VIOLATION,
                reason=f"peer resumed {header.hash[:12]} at byte {header.offset}, we asked for {transfer.offset}",
            )
        return AdmissionVerdict(Admission.ACCEPT)

    def admit(self, header: msg.AssetHeader, state: SyncState) -> AdmissionVerdict:
        """Judge a stream that will be staged chunk by chunk, and record its start (run where its record is
        made in the same step)."""
        verdict = self.judge(header, state)
        if verdict.admission is not Admission.ACCEPT:
            return verdict
        started = TransferStarted(Direction.IN, header.offset, header.size)
        return AdmissionVerdict(Admission.ACCEPT, (Event.of(started, peer=self.peer, hash=header.hash),))

    def complete_small(
        self, received: Sequence[tuple[msg.AssetHeader, int]], state: SyncState
    ) -> tuple[list[Event], list[msg.AssetHeader]]:
        """Small assets received whole and verified (each with the bytes that crossed): the completions of
        those whose request is still live (run where their record is made in the same step), and which."""
        events: list[Event] = []
        kept: list[msg.AssetHeader] = []
        for header, sent in received:
            if self.judge(header, state).admission is Admission.ACCEPT:
                events.extend(self.incoming_verified(header.hash, header.size, sent, header.record))
                kept.append(header)
        return events, kept

    def incoming_verified(self, asset: str, size: int, sent: int, record: Mapping[str, Any]) -> list[Event]:
        """Every byte arrived and hashes to the asset's id: its push into our store follows."""
        payload = TransferCompleted(Direction.IN, size, sent, verified=True, meta=dict(record))
        return [Event.of(payload, peer=self.peer, hash=asset)]

    def incoming_stored(self, asset: str, size: int, sent: int, record: Mapping[str, Any]) -> list[Event]:
        """Every byte arrived, hashes to the asset's id, and our store took it as it arrived: the verified
        completion and the received-from-peer mark, to journal together."""
        done = TransferCompleted(Direction.IN, size, sent, verified=True, meta=dict(record), stored=True)
        mark = AssetReceived(int(record.get("timestamp", 0)))
        return [Event.of(done, peer=self.peer, hash=asset), Event.of(mark, peer=self.peer, hash=asset)]

    def incoming_failed(self, asset: str, failure: Failure, reason: str) -> list[Event]:
        return [failed_transfer(self.peer, asset, Direction.IN, failure, reason)]

    def violation(self, reason: str) -> list[Event]:
        """The peer broke the protocol: journal it; the session ends."""
        self.close_reason = self.close_reason or f"protocol error: {reason}"
        return [Event.of(PeerProtocolError(reason), peer=self.peer)]

    # ------------------------------------------------------------------ digest answers

    def answer_digests(
        self, since: int, digests: Sequence[msg.Digest], watermark: int, vouched: Callable[[str], bool]
    ) -> list[DigestAnswerPart]:
        """Our answer to the peer's DigestRequest, in frames. What the peer itself vouched for is left
        out (not what we merely sent it: its store may have failed to keep that), unless its metadata
        changed: those changes go out first, so an edit made while the peer was away reaches it."""
        kept = [d for d in digests if d.meta_updated_ms or not vouched(d.hash)]
        full = since == 0
        slices = [kept[i : i + DIGESTS_PER_FRAME] for i in range(0, len(kept), DIGESTS_PER_FRAME)] or [[]]
        parts = []
        for index, part in enumerate(slices):
            last = index == len(slices) - 1
            batch = msg.DigestBatch(tuple(part), watermark if last else 0, full, last)
            parts.append(DigestAnswerPart(batch, tuple(d.hash for d in part if d.meta_updated_ms)))
        return parts

    def queue_digest_part(self, part: DigestAnswerPart, metadata: Sequence[tuple[str, MetaValue]]) -> list[Event]:
        """Queue one answer frame after its metadata; the record that we sent it."""
        for asset, value in metadata:
            self._frames.append(msg.MetaChange(asset, value))
        self._frames.append(part.batch)
        batch = part.batch
        payload = HashesSent(tuple(d.hash for d in batch.digests), batch.watermark, batch.full)
        return [Event.of(payload, peer=self.peer)]

    # ------------------------------------------------------------------ output

    def has_output(self) -> bool:
        return bool(self._frames or self._wants or self._adverts)

    def take_output(self, now_ms: int) -> tuple[list[object], list[Event]]:
        """Everything waiting to go out, as messages in order, and the events that record sending them."""
        out: list[object] = list(self._frames)
        self._frames.clear()
        events: list[Event] = []
        if self._wants:
            items = list(self._wants.values())
            self._wants.clear()
            out.extend(msg.Want(tuple(items[i : i + WANTS_PER_FRAME])) for i in range(0, len(items), WANTS_PER_FRAME))
        if self._adverts:
            hashes = list(self._adverts)
            self._adverts.clear()
            for i in range(0, len(hashes), DIGESTS_PER_FRAME):
                part = tuple(hashes[i : i + DIGESTS_PER_FRAME])
                out.append(msg.Advertise(part))
                events.append(Event.of(HashesSent(part, live=True), peer=self.peer))
        if out:
            self._last_sent_ms = now_ms
        return out, events
