"""One authenticated connection to one peer: a pump of streams, staging, hashing and store calls.

Every decision is made by the session's rules (`core.protocol.PeerProtocol`) or by the machine through
the ledger: this module reads frames and hands the checked messages in, writes what the rules put out,
moves content between the network, the staging area and the store, and journals what happened.

Streams: the control bi-stream carries digests, wants, adverts, metadata and peer lists; each asset
travels on its own uni-stream opened by its sender. Reading the control stream never waits on a
transfer, and every transfer has its own reader, so two peers sending each other large assets at
once cannot deadlock on flow control. Every task of a session lives in the session's TaskGroup: when
the session ends, all of them end with it, before its disconnect is journaled.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cansync.agent.ledger import Ledger
from cansync.agent.live_push import LivePush
from cansync.agent.staging import StagingArea, StagingLost
from cansync.agent.store_records import meta_value
from cansync.can.errors import CanServiceError
from cansync.can.store_client import StoreClient
from cansync.core import messages as msg
from cansync.core.events import Direction, Event, PeerAuthenticated, PeerDisconnected, TransferCheckpointed
from cansync.core.faults import Failure
from cansync.core.links import Link
from cansync.core.machine import SyncState
from cansync.core.metadata import MetaValue
from cansync.core.protocol import (
    ASSETS_PER_STREAM,
    SMALL_ASSET_BYTES,
    Admission,
    AdmissionVerdict,
    AnswerDigests,
    DigestAnswerPart,
    JoinReconcile,
    LearnPeers,
    OpenReconcile,
    PeerProtocol,
    Reaction,
    Reconciled,
    SendJob,
)
from cansync.core.reconcile import DigestSet
from cansync.net.endpoint import PeerConnection
from cansync.net.errors import PeerTimeout, TransportError
from cansync.net.streams import FramedStream, FrameReader
from cansync.portable.heap import release_free_memory
from cansync.wire.frames import FrameError, FrameType
from cansync.wire.pb import peer_pb2
from cansync.wire.peer_messages import (
    PeerProtocolError,
    decode_asset_end,
    decode_asset_header,
    decode_control,
    encode_asset_header,
    encode_control,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
"""Content bytes per CHUNK frame we send. 1 MiB rather than 4: every chunk is alive in several places at
once (read from the store, in the frame, staged, fed to the live push), and at 4 MiB that held a 4 GiB
sync's agents at 138-152 MB against 124-136 at 1 MiB, for the same ratio to raw iroh (bench/memory_bench.py,
bench/sync_bench.py). A receiver still takes chunks of up to 4 MiB (frames.DEFAULT_CHUNK_CAP)."""
TICK_SECS = 1.0
STORE_RETRY_SECS = 2.0
TRANSFER_READ_TIMEOUT = 30.0
SMALL_BATCH_BYTES = 4 * 1024 * 1024
METADATA_PER_READ = 1000  # small assets held in memory before they are staged and journaled

T = TypeVar("T")


class SessionHost(Protocol):
    """What a session needs from the agent around it."""

    @property
    def our_id(self) -> str: ...

    def clock_ms(self) -> int: ...

    def peer_infos(self, exclude: str) -> list[msg.PeerInfo]: ...

    async def learned_peers(self, peers: Sequence[msg.PeerInfo]) -> None: ...

    async def own_digests(self, state: SyncState) -> tuple[DigestSet, int, int]: ...

    async def journal_local_store(self) -> None:
        """Journal whatever our store holds that the journal does not know of yet."""
        ...


class SessionOver(Exception):
    """Raised inside a session's task group to end the session, with the reason it ended."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerSession:
    def __init__(
        self,
        peer: str,
        conn: PeerConnection,
        control: FramedStream,
        *,
        link: Link,
        initiator: bool,
        ledger: Ledger,
        can: StoreClient,
        staging: StagingArea,
        host: SessionHost,
        stall_timeout: float = TRANSFER_READ_TIMEOUT,
    ) -> None:
        self.peer = peer
        self.short = peer[:10]
        self.conn = conn
        self.control = control
        self.link = link
        self.initiator = initiator
        self.ledger = ledger
        self.can = can
        self.staging = staging
        self.host = host
        self.stall_timeout = stall_timeout
        self.protocol = PeerProtocol(peer, now_ms=host.clock_ms(), our_id=host.our_id)
        self._output = asyncio.Event()  # the rules have something to write
        self._sends = asyncio.Event()  # a send may start
        self._closing: str | None = None
        self._closed = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason = ""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the peer until the connection ends. Journals the authentication and the disconnect."""
        reason = "connection closed"
        try:
            await self.ledger.record(Event.of(PeerAuthenticated(), peer=self.peer))
            peer_state = self.ledger.state.peer(self.peer)
            knows = bool(peer_state.mirror_seq or peer_state.their_watermark)
            self.protocol.start(peer_state.their_watermark, self.host.peer_infos(exclude=self.peer), knows_peer=knows)
            self._output.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_control(group), name=f"control-{self.short}")
                group.create_task(self._write_control(), name=f"outbox-{self.short}")
                group.create_task(self._accept_transfers(group), name=f"transfers-{self.short}")
                group.create_task(self._start_sends(group), name=f"sends-{self.short}")
                group.create_task(self._keep_time(), name=f"clock-{self.short}")
                group.create_task(self._wait_for_close(), name=f"close-{self.short}")
        except* SessionOver as over:
            reason = _first(over).reason  # type: ignore[attr-defined]
        except* (TransportError, FrameError) as lost:
            reason = _describe(_first(lost))
        except* Exception as failed:  # a journal or store failure, or a bug: end this session only
            error = _first(failed)
            reason = f"session failed: {_describe(error)}"
            log.error("peer %s: %s", self.short, reason, exc_info=error)
        finally:
            self.end_reason = self._closing or reason
            self.conn.close(self.end_reason[:100])
            try:
                await self.ledger.record(Event.of(PeerDisconnected(self.end_reason), peer=self.peer))
            except Exception as exc:  # noqa: BLE001 - the next authentication closes this link in the state anyway
                log.error("peer %s: could not journal the disconnect: %s", self.short, exc)
            self.ended.set()
            log.info("peer %s: session ended (%s)", self.short, self.end_reason)

    def stuck(self) -> str:
        """Where this session's tasks wait (for a report when ending it takes too long)."""
        places = []
        for task in asyncio.all_tasks():
            if task.get_name().endswith(self.short) and not task.done():
                frames = task.get_stack(limit=1)
                where = f"{frames[-1].f_code.co_name}:{frames[-1].f_lineno}" if frames else "?"
                places.append(f"{task.get_name()} at {where}")
        return "; ".join(places) or "no task of it is left"

    def close(self, reason: str) -> None:
        """End the session (from outside: the agent stopping, a connection that replaces this one)."""
        if self._closing is None:
            self._closing = reason
        self._closed.set()

    async def _wait_for_close(self) -> None:
        await self._closed.wait()
        raise SessionOver(self._closing or "closed")

    async def _keep_time(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECS)
            silent = self.protocol.tick(self.host.clock_ms())
            if silent is not None:
                raise SessionOver(silent)
            if self.protocol.has_output():
                self._output.set()

    # ------------------------------------------------------------------ commands from the machine

    def want(self, asset: str, offset: int, request_id: int) -> None:
        self.protocol.want(asset, offset, request_id)
        self._output.set()

    def advertise(self, hashes: Sequence[str]) -> None:
        self.protocol.advertise(hashes)
        self._output.set()

    def forward_metadata(self, asset: str, value: MetaValue) -> None:
        self.protocol.forward_metadata(asset, value)
        self._output.set()

    def send(self, asset: str, offset: int, request_id: int) -> None:
        self.protocol.send(asset, offset, request_id)
        self._sends.set()

    def share_peers(self) -> None:
        """Tell the peer every other peer we are in session with (peer exchange)."""
        self.protocol.share_peers(self.host.peer_infos(exclude=self.peer))
        self._output.set()

    # ------------------------------------------------------------------ the control stream

    async def _write_control(self) -> None:
        while True:
            await self._output.wait()
            self._output.clear()
            messages, events = self.protocol.take_output(self.host.clock_ms())
            if events:
                await self.ledger.record(*events)
            for message in messages:
                await self.control.write_message(encode_control(message))

    async def _read_control(self, group: asyncio.TaskGroup) -> None:
        while True:
            try:
                frame = await self.control.read_frame(timeout=self.protocol.silence_limit_ms / 1000 * 2)
            except PeerTimeout:
                raise
            except FrameError as exc:  # an unknown type, a length over the cap: the peer broke the framing
                await self._violation(f"control stream: {exc}")
            if frame is None:
                raise SessionOver("peer closed the control stream")
            ftype, payload = frame
            try:
                message = decode_control(ftype, payload)
            except PeerProtocolError as exc:
                await self._violation(f"control stream: {exc}")
            reaction = self.protocol.receive(message, self.host.clock_ms())
            if isinstance(message, msg.AssetUnavailable):
                await self.ledger.decide(self._unavailable_judge(message))
            await self._react(reaction, group)

    async def _react(self, reaction: Reaction, group: asyncio.TaskGroup) -> None:
        """Do what the rules said after an input: journal, act, and end the session if they say so."""
        if reaction.events:
            await self.ledger.record(*reaction.events)
        for action in reaction.actions:
            if isinstance(action, AnswerDigests):
                _start_in(group, self._answer_digests(action.since), f"digests-{self.short}")
            elif isinstance(action, LearnPeers):
                await self.host.learned_peers(action.peers)
            elif isinstance(action, OpenReconcile | JoinReconcile):
                first = action.first if isinstance(action, JoinReconcile) else None
                _start_in(group, self._reconcile(first, group), f"reconcile-{self.short}")
            elif isinstance(action, Reconciled):
                _start_in(group, self._settle_reconciliation(action), f"reconciled-{self.short}")
        self._output.set()
        if reaction.close is not None:
            raise SessionOver(reaction.close)

    async def _reconcile(self, first: msg.Reconcile | None, group: asyncio.TaskGroup) -> None:
        """Take our set of assets as the journal knows it, and open or join the exchange over it."""
        digests, base_seq, watermark = await self.host.own_digests(self.ledger.state)
        if first is None:
            self.protocol.reconcile_open(digests, watermark, base_seq)
            self._output.set()
        else:
            await self._react(self.protocol.reconcile_join(digests, watermark, base_seq, first), group)

    async def _settle_reconciliation(self, done: Reconciled) -> None:
        """Journal what the reconciliation found (checked against the state in the same step), then send
        the metadata edits of the assets the peer already holds: the reconciliation carried ids only."""

        wire_bytes = self.conn.traffic.bytes_sent + self.conn.traffic.bytes_received

        def record(state: SyncState) -> tuple[list[Event], None]:
            return self.protocol.reconciled(done, state, wire_bytes), None

        await self.ledger.decide(record)
        log.info(
            "peer %s: first meeting settled in %d messages, %.1f KB: it lacks %d of ours, we lack %d of its",
            self.short, done.messages, wire_bytes / 1000, len(done.they_lack), len(done.have_not),
        )  # fmt: skip
        await self._send_edited_metadata()
        # that pass paged every digest of our store, a burst of allocation: hand what it freed back (with a
        # million assets it kept 19 MB more resident, bench/reconcile_bench.py)
        await asyncio.to_thread(release_free_memory)

    async def _send_edited_metadata(self) -> None:
        state = self.ledger.state
        peer_state = state.peer(self.peer)
        edited: list[str] = []
        try:
            async for page in self.can.hashes_pages(0):
                edited += [d.hash for d in page.assets if d.meta_updated_ms and state.holds(peer_state, d.hash)]
        except CanServiceError as exc:
            log.warning("peer %s: could not read our store's metadata edits for it: %s", self.short, exc)
            return
        for start in range(0, len(edited), METADATA_PER_READ):
            part = edited[start : start + METADATA_PER_READ]
            records = await self._from_store(functools.partial(self.can.metadata, part))
            for record in records:
                self.protocol.forward_metadata(record.hash, meta_value(record, self.host.our_id))
            self._output.set()

    def _unavailable_judge(self, message: msg.AssetUnavailable) -> Callable[[SyncState], tuple[list[Event], None]]:
        """The peer cannot serve an asset: judged against the state where its record is made."""
        return lambda state: (self.protocol.unavailable(message, state), None)

    async def _violation(self, reason: str) -> None:
        """The peer broke the protocol: journal it once, and end this session (only this one)."""
        log.warning("peer %s: %s", self.short, reason)
        await self.ledger.record(*self.protocol.violation(reason))
        raise SessionOver(f"protocol error: {reason}")

    async def _answer_digests(self, since: int) -> None:
        """Our store's digests since `since`, through the rules' echo filter and batching."""
        answer = await self._from_store(lambda: self.can.hashes(since=since))
        if any(d.hash not in self.ledger.state.local for d in answer.assets):
            # our journal lags our store (its feed has not caught up): journal first, so that what we tell
            # the peer we hold is what we know we hold; else, told of it back, we would ask for our own asset
            await self.host.journal_local_store()
        digests = [
            msg.Digest(d.hash, d.timestamp, d.trashed, d.meta_updated_ms, d.size, d.changed_seq) for d in answer.assets
        ]
        state = self.ledger.state
        peer_state = state.peer(self.peer)
        for part in self.protocol.answer_digests(
            since, digests, answer.watermark, lambda a: state.vouched(peer_state, a)
        ):
            await self._queue_digest_part(part)

    async def _queue_digest_part(self, part: DigestAnswerPart) -> None:
        metadata: list[tuple[str, MetaValue]] = []
        if part.with_metadata:
            hashes = list(part.with_metadata)
            records = await self._from_store(lambda: self.can.metadata(hashes))
            metadata = [(r.hash, meta_value(r, self.host.our_id)) for r in records]
        events = self.protocol.queue_digest_part(part, metadata)
        self._output.set()
        await self.ledger.record(*events)

    async def _from_store(self, call: Callable[[], Awaitable[T]]) -> T:
        """A store read the peer is waiting on: while our store is down, keep trying (our fault, not the
        peer's; the session stays up and the answer follows once the store is back)."""
        complained = False
        while True:
            try:
                return await call()
            except CanServiceError as exc:
                if not complained:
                    log.warning("peer %s: waiting for our store to answer: %s", self.short, exc)
                    complained = True
                await asyncio.sleep(STORE_RETRY_SECS)

    # ------------------------------------------------------------------ sending assets

    async def _start_sends(self, group: asyncio.TaskGroup) -> None:
        while True:
            await self._sends.wait()
            self._sends.clear()
            while jobs := self.protocol.next_sends():
                _start_in(group, self._send_stream(jobs), f"send-{jobs[0].hash[:8]}-{self.short}")

    async def _send_stream(self, jobs: list[SendJob]) -> None:
        """Send these assets one after another on one stream, pulled from our store in one request. Each
        finished asset is journaled as it ends (small ones together, when the stream ends)."""
        pending = {job.hash: job for job in jobs}  # not yet finished, the one streaming now included
        finished: list[Event] = []
        writer = None
        try:
            async with self.can.pull(list(pending), offset=jobs[0].offset) as pulled:
                async for item in pulled:
                    job = pending.get(item.hash)
                    if job is None:
                        continue  # not asked for (a store answering more than asked): skip its bytes
                    del pending[item.hash]
                    pending[item.hash] = job  # (moved last: if this stream fails, it is among the unsent)
                    if not item.found:
                        del pending[item.hash]
                        self._output.set()
                        finished += self.protocol.send_unavailable(job, "not in the store")
                        continue
                    if writer is None:
                        writer = await self.conn.open_transfer()
                    size = item.meta.size
                    start = min(item.item.offset, size)
                    if size > SMALL_ASSET_BYTES:  # long enough to show in flight: say it started
                        await self.ledger.record(*self.protocol.send_started(job, start, size))
                    await writer.write_message(encode_asset_header(item.meta, start, job.request_id))
                    sent = 0
                    async for chunk in item.content(CHUNK_BYTES):
                        await writer.write_chunk(chunk)
                        sent += len(chunk)
                    await writer.write_message(peer_pb2.AssetEnd(hash=job.hash, total=sent))
                    del pending[item.hash]
                    done = self.protocol.send_finished(job, size, sent)
                    if size > SMALL_ASSET_BYTES:
                        await writer.flush()  # its end leaves now, not with the next asset's frames
                        await self.ledger.record(*done)
                    else:
                        finished += done
            if writer is not None:
                await writer.finish()
            for job in pending.values():  # named in the pull, absent from its answer
                self._output.set()
                finished += self.protocol.send_unavailable(job, "not in the store")
        except TransportError as exc:
            # the stream broke (the peer stopped it, or it stalled): the peer cannot tell which of its
            # requests rode on it, so say so for each, on the control stream
            self._output.set()
            for job in pending.values():
                reason = f"its stream failed: {_describe(exc)}"
                finished += self.protocol.send_unavailable(job, reason, Failure.LINK_LOST, transient=True)
        except (CanServiceError, OSError) as exc:
            self._output.set()
            for job in pending.values():
                reason = f"our store could not give it: {_describe(exc)}"
                finished += self.protocol.send_unavailable(job, reason, transient=True)
        finally:
            self.protocol.stream_done()
            self._sends.set()
        if finished:
            await self.ledger.record(*finished)

    # ------------------------------------------------------------------ receiving assets

    async def _accept_transfers(self, group: asyncio.TaskGroup) -> None:
        while True:
            reader = await self.conn.accept_transfer(timeout=None)
            if reader is None:
                raise SessionOver("connection closed")
            _start_in(group, self._receive(reader), f"receive-{self.short}")

    async def _receive(self, reader: FrameReader) -> None:
        """One transfer stream: assets one after another, each a header, its chunks and an end. Small
        ones are kept whole in memory and journaled together; larger ones are staged chunk by chunk with
        a checkpoint each. A stale asset (its request given up since) is read past, so the rest of the
        stream still lands; a lie ends the session."""
        small: list[_WholeAsset] = []
        try:
            while True:
                try:
                    frame = await reader.read_frame(timeout=self.stall_timeout)
                except FrameError as exc:
                    await self._violation(f"transfer stream: {exc}")
                except TransportError:
                    return  # the stream died between assets: nothing of it was in flight here
                if frame is None:
                    return  # the sender finished the stream
                if frame[0] is not FrameType.ASSET_HEADER:
                    await self._violation(f"transfer stream: expected an ASSET_HEADER frame, got {frame[0].name}")
                try:
                    header = decode_asset_header(frame[1])
                except PeerProtocolError as exc:
                    await self._violation(f"transfer stream: {exc}")
                verdict = self.protocol.judge(header, self.ledger.state)  # a look; the record re-judges
                if verdict.admission is Admission.VIOLATION:
                    await self._violation(verdict.reason)
                if header.size <= SMALL_ASSET_BYTES and header.offset == 0:
                    body = await self._read_whole(reader, header)
                    if isinstance(body, _WholeAsset):
                        if verdict.admission is Admission.ACCEPT:
                            small.append(body)
                            if (
                                len(small) >= ASSETS_PER_STREAM
                                or sum(len(b.content) for b in small) > SMALL_BATCH_BYTES
                            ):
                                await self._store_small(small)
                                small = []
                        continue
                    if not await self._failed(reader, header, body, live=verdict.admission is Admission.ACCEPT):
                        return
                    continue
                await self._store_small(small)
                small = []
                if verdict.admission is Admission.STALE:
                    skipped = await self._skip_body(reader, header)
                    if skipped is not None and not await self._failed(reader, header, skipped, live=False):
                        return
                    continue
                outcome = await self._receive_staged(reader, header)
                if outcome is not None and not await self._failed(reader, header, outcome, live=True):
                    return
        finally:
            if small:
                await self._store_small(small)

    async def _failed(self, reader: FrameReader, header: msg.AssetHeader, failure: _Failed, *, live: bool) -> bool:
        """Journal a failed asset (if its request was live), and end the session on a lie; True when the
        stream can go on to its next asset."""
        if live:
            if failure.kind in (Failure.CONTENT_MISMATCH, Failure.OVERRUN, Failure.STAGING_LOST):
                await asyncio.to_thread(self.staging.discard, header.hash)  # before the claim is released
            log.warning("peer %s: transfer of %s failed: %s", self.short, header.hash[:12], failure.reason)
            judge = self._failure_judge(header, failure)
            await self.ledger.decide(judge)
        if failure.violation:
            await reader.stop()
            await self._violation(failure.reason)
        if not failure.at_boundary:
            await reader.stop()
        return failure.at_boundary

    def _failure_judge(
        self, header: msg.AssetHeader, failure: _Failed
    ) -> Callable[[SyncState], tuple[list[Event], None]]:
        """A failure is journaled only while the request it answers is still ours (else it is stale)."""

        def judge(state: SyncState) -> tuple[list[Event], None]:
            transfer = state.peer(self.peer).incoming.get(header.hash)
            if transfer is None or transfer.request_id != header.request_id or not transfer.status.active:
                return [], None
            return self.protocol.incoming_failed(header.hash, failure.kind, failure.reason), None

        return judge

    async def _read_whole(self, reader: FrameReader, header: msg.AssetHeader) -> _WholeAsset | _Failed:
        """A small asset's chunks into memory, up to its AssetEnd, verified against its id."""
        content = bytearray()
        while True:
            frame = await self._next_frame(reader, header)
            if isinstance(frame, _Failed):
                return frame
            ftype, payload = frame
            if ftype is FrameType.CHUNK:
                if len(content) + len(payload) > header.size:
                    return _Failed(
                        Failure.OVERRUN, f"peer sent more than the {header.size} bytes of {header.hash[:12]}"
                    )
                content += payload
                continue
            end = self._check_end(header, ftype, payload, len(content))
            if end is not None:
                return end
            digest = hashlib.sha256(content).hexdigest()
            if len(content) != header.size or digest != header.hash:
                return _Failed(Failure.CONTENT_MISMATCH, _mismatch(header, len(content), digest), at_boundary=True)
            return _WholeAsset(header, bytes(content))

    async def _skip_body(self, reader: FrameReader, header: msg.AssetHeader) -> _Failed | None:
        """Read past an asset nobody asked for any more (its request was given up since)."""
        received = 0
        while True:
            frame = await self._next_frame(reader, header)
            if isinstance(frame, _Failed):
                return frame
            ftype, payload = frame
            if ftype is FrameType.CHUNK:
                received += len(payload)
                if received > header.size:
                    return _Failed(
                        Failure.OVERRUN, f"peer sent more than the {header.size} bytes of {header.hash[:12]}"
                    )
                continue
            return self._check_end(header, ftype, payload, received)

    async def _next_frame(self, reader: FrameReader, header: msg.AssetHeader) -> tuple[FrameType, bytes] | _Failed:
        asset = header.hash[:12]
        try:
            frame = await reader.read_frame(timeout=self.stall_timeout)
        except PeerTimeout as exc:
            return _Failed(Failure.STALLED, _describe(exc))
        except FrameError as exc:
            return _Failed(Failure.MALFORMED_STREAM, f"transfer of {asset}: {exc}", violation=True)
        except TransportError as exc:
            return _Failed(Failure.LINK_LOST, _describe(exc))
        if frame is None:
            return _Failed(Failure.MALFORMED_STREAM, f"transfer of {asset} ended before its AssetEnd", violation=True)
        return frame

    @staticmethod
    def _check_end(header: msg.AssetHeader, ftype: FrameType, payload: bytes, received: int) -> _Failed | None:
        """None for the AssetEnd that closes this asset (naming it, and the bytes that came); else the lie."""
        asset = header.hash[:12]
        if ftype is not FrameType.ASSET_END:
            return _Failed(
                Failure.MALFORMED_STREAM,
                f"unexpected {ftype.name} frame inside the transfer of {asset}",
                violation=True,
            )
        try:
            end = decode_asset_end(payload)
        except PeerProtocolError as exc:
            return _Failed(Failure.MALFORMED_STREAM, f"transfer of {asset}: {exc}", violation=True)
        if end.hash != header.hash or end.total != received:
            reason = f"AssetEnd of {asset} says {end.total} bytes of {end.hash[:12]}, got {received}"
            return _Failed(Failure.MALFORMED_STREAM, reason, violation=True)
        return None

    async def _store_small(self, whole: list[_WholeAsset]) -> None:
        """Stage small verified assets, then journal the completions of those still asked for, together."""
        if not whole:
            return
        await asyncio.to_thread(self.staging.write_whole, [(w.header.hash, w.content) for w in whole])
        received = [(w.header, len(w.content)) for w in whole]

        def complete(state: SyncState) -> tuple[list[Event], list[msg.AssetHeader]]:
            return self.protocol.complete_small(received, state)

        await self.ledger.decide(complete)

    async def _receive_staged(self, reader: FrameReader, header: msg.AssetHeader) -> _Failed | None:
        """A larger asset: admitted (and its start journaled) in one step, staged with a checkpoint per
        chunk, verified, its verified completion journaled. What went wrong, or None."""

        def admit(state: SyncState) -> tuple[Sequence[Event], AdmissionVerdict]:
            verdict = self.protocol.admit(header, state)
            return verdict.events, verdict

        verdict = await self.ledger.decide(admit)
        if verdict.admission is Admission.VIOLATION:
            await reader.stop()
            await self._violation(verdict.reason)
        if verdict.admission is Admission.STALE:
            return await self._skip_body(reader, header)
        asset = header.hash
        try:
            staged = await asyncio.to_thread(self.staging.open_for_append, asset, header.offset)
        except (StagingLost, OSError) as exc:
            kind = Failure.STAGING_LOST if isinstance(exc, StagingLost) else Failure.STAGING_FAILED
            skipped = await self._skip_body(reader, header)  # keep the stream going for what follows
            return _Failed(kind, f"staging: {_describe(exc)}", at_boundary=skipped is None)
        # The push into our store runs beside the transfer (the store checks the digest before it keeps
        # anything); the staged copy stays the resume point if the push or the link is cut.
        live = LivePush(self.can, header, self.staging.path(asset))
        received = 0
        # The checkpoint of chunk k commits while chunk k+1 crosses the network; chunk k+1 reaches the
        # file only once checkpoint k is durable. A crash thus leaves at most one chunk on disk beyond
        # the journal's checkpoint: the at-most-one-chunk re-send of a resume.
        checkpoint: asyncio.Future[list[Event]] | None = None
        arrived = False  # every chunk came, up to its AssetEnd
        try:
            while True:
                frame = await self._next_frame(reader, header)
                if isinstance(frame, _Failed):
                    return frame
                ftype, payload = frame
                if checkpoint is not None:
                    await checkpoint
                    checkpoint = None
                if ftype is not FrameType.CHUNK:
                    end = self._check_end(header, ftype, payload, received)
                    if end is not None:
                        return end
                    arrived = True
                    break
                if staged.size + len(payload) > header.size:
                    return _overrun(header)
                try:
                    # hashing and writing release the GIL: off the loop, they overlap the network reads
                    await asyncio.to_thread(staged.write_through, payload)
                except OSError as exc:
                    return _Failed(Failure.STAGING_FAILED, f"staging: {_describe(exc)}")
                received += len(payload)
                event = Event.of(TransferCheckpointed(Direction.IN, staged.size), peer=self.peer, hash=asset)
                checkpoint = asyncio.ensure_future(self.ledger.record(event))
                await live.feed(payload)
        finally:
            await asyncio.to_thread(staged.close)
            if checkpoint is not None:
                await asyncio.gather(checkpoint, return_exceptions=True)
            if not arrived:
                await live.abandon()
        digest = await asyncio.to_thread(staged.digest)
        if staged.size != header.size or digest != asset:
            await live.abandon()
            return _Failed(Failure.CONTENT_MISMATCH, _mismatch(header, staged.size, digest), at_boundary=True)
        if await live.finish():
            await self.ledger.record(*self.protocol.incoming_stored(asset, header.size, received, header.record))
            await asyncio.to_thread(self.staging.discard, asset)
        else:  # the intake pushes it from staging, and retries while our store cannot take it
            await self.ledger.record(*self.protocol.incoming_verified(asset, header.size, received, header.record))
        return None


def _start_in(group: asyncio.TaskGroup, work: Coroutine[Any, Any, None], name: str) -> None:
    """group.create_task, from a task of the session's own group. Once that group is ending (another of its
    tasks failed or the session closed), Python 3.11 refuses the task and leaves the coroutine never
    awaited: then the work ends with the session, and so does the task that asked for it."""
    try:
        group.create_task(work, name=name)
    except RuntimeError:
        work.close()
        raise asyncio.CancelledError from None


@dataclass(frozen=True, slots=True)
class _WholeAsset:
    header: msg.AssetHeader
    content: bytes


@dataclass(frozen=True, slots=True)
class _Failed:
    """What went wrong with one incoming asset: the failure, why, whether the peer broke the protocol, and
    whether the stream stands at the next asset's header (it can go on)."""

    kind: Failure
    reason: str
    violation: bool = False
    at_boundary: bool = False


def _overrun(header: msg.AssetHeader) -> _Failed:
    return _Failed(
        Failure.OVERRUN, f"peer sent more than the {header.size} bytes of {header.hash[:12]}", violation=True
    )


def _mismatch(header: msg.AssetHeader, size: int, digest: str) -> str:
    return (
        f"content does not match its hash: got {size} bytes hashing to {digest[:16]}, "
        f"expected {header.size} bytes hashing to {header.hash[:16]}"
    )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
