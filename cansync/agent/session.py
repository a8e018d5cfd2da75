"""One authenticated connection to one peer: reconcile, move assets both ways, then stay live.

The session holds no sync state of its own: every fact goes to the ledger first, and what to ask
for or send comes back as commands from the machine. Its only memory is transient I/O: the control
stream, the tasks that stream assets, and frames waiting to be written.

Streams: the control bi-stream carries digests, wants, adverts, metadata and peer lists; each asset
travels on its own uni-stream opened by its sender. Reading the control stream never waits on a
transfer, and every transfer has its own reader, so two peers sending each other large assets at
once cannot deadlock on flow control.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cansync.agent.ledger import Ledger
from cansync.agent.staging import StagingArea
from cansync.agent.store_records import meta_update, meta_value
from cansync.can.client import CanClient
from cansync.can.errors import CanServiceError, CanServiceUnavailable
from cansync.core.commands import Command
from cansync.core.events import Event, EventKind
from cansync.core.metadata import MetaValue
from cansync.net.address import EndpointAddress
from cansync.net.endpoint import PeerConnection
from cansync.net.errors import PeerTimeout, TransportError
from cansync.net.streams import FramedStream, FrameReader
from cansync.wire.frames import FrameError, FrameType
from cansync.wire.pb import can_sync_pb2, peer_pb2

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
DIGESTS_PER_FRAME = 4096
PARALLEL_SENDS = 4
KEEPALIVE_SECS = 10.0
CONTROL_SILENCE_LIMIT = 35.0  # a control stream quiet this long (3 keepalives missed): the peer is gone
TRANSFER_READ_TIMEOUT = 30.0
WANTS_PER_FRAME = 1024


class SessionHost(Protocol):
    """What a session needs from the agent around it."""

    @property
    def our_id(self) -> str: ...

    async def dispatch(self, commands: Sequence[Command]) -> None: ...

    def peer_addresses(self, exclude: str) -> list[EndpointAddress]: ...

    async def learned_peer(self, address: EndpointAddress, via: str) -> None: ...


@dataclass
class _Outbox:
    """Frames waiting for the control stream; wants and adverts are coalesced into few frames."""

    wants: dict[str, int]
    adverts: list[str]
    frames: list[tuple[FrameType, bytes]]
    wake: asyncio.Event


class PeerSession:
    def __init__(
        self,
        peer: str,
        conn: PeerConnection,
        control: FramedStream,
        *,
        initiator: bool,
        ledger: Ledger,
        can: CanClient,
        staging: StagingArea,
        host: SessionHost,
        stall_timeout: float = TRANSFER_READ_TIMEOUT,
        their_boot: bytes = b"",
        link_id: bytes = b"",
    ) -> None:
        self.peer = peer
        self.short = peer[:10]
        self.conn = conn
        self.control = control
        self.initiator = initiator
        self.ledger = ledger
        self.can = can
        self.staging = staging
        self.host = host
        self.stall_timeout = stall_timeout
        self.their_boot = their_boot  # the peer process this session talks to
        self.link_id = link_id  # this connection, as both ends name it
        self._outbox = _Outbox({}, [], [], asyncio.Event())
        self._send_slots = asyncio.Semaphore(PARALLEL_SENDS)
        self._tasks: set[asyncio.Task[None]] = set()
        self._digest_batches: list[str] = []  # hashes of a digest answer still arriving
        self.ended = asyncio.Event()
        self.end_reason = ""

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the peer until the connection ends. Records the authentication and the disconnect."""
        reason = "connection closed"
        try:
            await self.host.dispatch(await self.ledger.record(Event(EventKind.PEER_AUTHENTICATED, peer=self.peer)))
            since = self.ledger.state.peer(self.peer).their_watermark
            self._queue_frame(FrameType.DIGEST_REQUEST, peer_pb2.DigestRequest(since=since))
            self._queue_peer_list()
            loops = [
                self._spawn(self._read_control(), f"control-{self.short}", loop=True),
                self._spawn(self._accept_transfers(), f"transfers-{self.short}", loop=True),
                self._spawn(self._write_control(), f"outbox-{self.short}", loop=True),
                self._spawn(self._keep_alive(), f"keepalive-{self.short}", loop=True),
            ]
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    reason = _describe(exc)
        finally:
            moving = list(self._tasks)
            for task in moving:
                task.cancel()
            await asyncio.gather(*moving, return_exceptions=True)
            self.end_reason = self.end_reason or reason
            self.conn.close(self.end_reason[:100])
            with contextlib.suppress(Exception):
                await self.host.dispatch(
                    await self.ledger.record(
                        Event(EventKind.PEER_DISCONNECTED, peer=self.peer, data={"reason": self.end_reason})
                    )
                )
            self.ended.set()
            log.info("peer %s: session ended (%s)", self.short, self.end_reason)

    def _fact(self, kind: EventKind, asset: str, data: dict[str, Any]) -> Event:
        """An event about one asset and this session's peer."""
        return Event(kind, peer=self.peer, hash=asset, data=data)

    def close(self, reason: str) -> None:
        self.end_reason = reason
        self.conn.close(reason[:100])

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str, *, loop: bool = False) -> asyncio.Task[None]:
        """Run coro as part of this session: cancelled, and its outcome collected, when the session ends.
        A session's own loops end it by returning or failing (run() reports why); other work that fails
        ends it through _task_ended."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard if loop else self._task_ended)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # Work that fails this way (the journal refusing a write, the store failing mid-answer) leaves the
        # peer waiting for an answer that will not come. End the session: the next one asks again.
        error = task.exception()
        assert error is not None
        log.error("peer %s: %s failed: %s", self.short, task.get_name(), _describe(error))
        if not self.end_reason:
            self.close(f"{task.get_name()} failed")

    # ------------------------------------------------------------------ commands from the machine

    def request(self, asset: str, offset: int) -> None:
        self._outbox.wants[asset] = offset
        self._outbox.wake.set()

    def advertise(self, hashes: Sequence[str]) -> None:
        self._outbox.adverts.extend(hashes)
        self._outbox.wake.set()

    def send_metadata(self, asset: str, value: MetaValue) -> None:
        update = peer_pb2.MetaChange(update=meta_update(asset, value))
        self._queue_frame(FrameType.META_CHANGE, update)

    def send_asset(self, asset: str, offset: int) -> None:
        self._spawn(self._send_asset(asset, offset), f"send-{asset[:8]}-{self.short}")

    # ------------------------------------------------------------------ control stream out

    def _queue_frame(self, ftype: FrameType, message: object) -> None:
        self._outbox.frames.append((ftype, message.SerializeToString()))  # type: ignore[attr-defined]
        self._outbox.wake.set()

    def share_peers(self) -> None:
        """Tell the peer every other peer we are in session with (peer exchange)."""
        self._queue_peer_list()

    def _queue_peer_list(self) -> None:
        peers = [
            peer_pb2.PeerAddress(endpoint_id=a.endpoint_id, addrs=list(a.direct_addrs), relay_url=a.relay_url or "")
            for a in self.host.peer_addresses(exclude=self.peer)
        ]
        if peers:
            self._queue_frame(FrameType.PEER_LIST, peer_pb2.PeerList(peers=peers))

    async def _write_control(self) -> None:
        box = self._outbox
        while True:
            await box.wake.wait()
            box.wake.clear()
            while box.frames:
                ftype, payload = box.frames.pop(0)
                await self.control.write_frame(ftype, payload)
            if box.wants:
                wants, box.wants = box.wants, {}
                await self._send_wants(wants)
            if box.adverts:
                adverts, box.adverts = box.adverts, []
                await self._send_adverts(adverts)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECS)
            self._queue_frame(FrameType.KEEPALIVE, peer_pb2.KeepAlive())

    async def _send_wants(self, wants: dict[str, int]) -> None:
        items = sorted(wants.items())
        for start in range(0, len(items), WANTS_PER_FRAME):
            part = items[start : start + WANTS_PER_FRAME]
            message = peer_pb2.Want(items=[peer_pb2.WantItem(hash=h, offset=o) for h, o in part])
            await self.control.write_message(message)

    async def _send_adverts(self, hashes: list[str]) -> None:
        unique = sorted(set(hashes))
        for start in range(0, len(unique), DIGESTS_PER_FRAME):
            part = unique[start : start + DIGESTS_PER_FRAME]
            digests = [can_sync_pb2.AssetDigest(hash=h) for h in part]
            await self.control.write_message(peer_pb2.Advertise(digests=digests))
            await self.ledger.record(Event(EventKind.HASHES_SENT, peer=self.peer, data={"hashes": part, "live": True}))

    # ------------------------------------------------------------------ control stream in

    async def _read_control(self) -> None:
        handlers: dict[FrameType, Callable[[object], Awaitable[None]]] = {
            FrameType.DIGEST_REQUEST: self._on_digest_request,  # type: ignore[dict-item]
            FrameType.DIGEST_BATCH: self._on_digest_batch,  # type: ignore[dict-item]
            FrameType.WANT: self._on_want,  # type: ignore[dict-item]
            FrameType.ADVERTISE: self._on_advertise,  # type: ignore[dict-item]
            FrameType.META_CHANGE: self._on_meta_change,  # type: ignore[dict-item]
            FrameType.PEER_LIST: self._on_peer_list,  # type: ignore[dict-item]
            FrameType.ASSET_UNAVAILABLE: self._on_unavailable,  # type: ignore[dict-item]
            FrameType.KEEPALIVE: _nothing_to_do,
        }
        while True:
            try:
                frame = await self.control.read_message(timeout=CONTROL_SILENCE_LIMIT)
            except FrameError as exc:
                await self._protocol_error(f"control stream: {exc}")
                raise
            if frame is None:
                self.end_reason = self.end_reason or "peer closed the control stream"
                return
            ftype, message = frame
            if ftype is FrameType.GOODBYE:
                self.end_reason = f"peer said goodbye: {message.reason}"  # type: ignore[union-attr]
                return
            handler = handlers.get(ftype)
            if handler is None:
                await self._protocol_error(f"unexpected {ftype.name} frame on the control stream")
                raise FrameError(f"unexpected {ftype.name} frame on the control stream")
            await handler(message)

    async def _on_digest_request(self, request: peer_pb2.DigestRequest) -> None:
        self._spawn(self._answer_digests(request.since), f"digests-{self.short}")

    async def _answer_digests(self, since: int) -> None:
        answer = await self.can.hashes(since=since)
        vouched = self.ledger.state.peer(self.peer).said_has
        # what the peer itself said it holds is left out (not what we merely sent it: its store may have
        # failed to keep that), unless its metadata changed: those changes follow as MetaChange frames,
        # so an edit made while the peer was away reaches it when it is back
        digests = [d for d in answer.assets if d.hash not in vouched or d.meta_updated_ms]
        full = since == 0
        batches = [digests[i : i + DIGESTS_PER_FRAME] for i in range(0, len(digests), DIGESTS_PER_FRAME)] or [[]]
        for index, batch in enumerate(batches):
            last = index == len(batches) - 1
            watermark = answer.watermark if last else 0
            await self._send_metadata_of([d.hash for d in batch if d.meta_updated_ms])
            message = peer_pb2.DigestBatch(digests=batch, watermark=watermark, full=full, last=last)
            self._queue_frame(FrameType.DIGEST_BATCH, message)
            await self.ledger.record(
                Event(
                    EventKind.HASHES_SENT,
                    peer=self.peer,
                    data={"hashes": [d.hash for d in batch], "watermark": watermark, "full": full},
                )
            )

    async def _send_metadata_of(self, hashes: list[str]) -> None:
        """Queue our store's current metadata of these assets (before the digests that mention them)."""
        if not hashes:
            return
        for record in await self.can.metadata(hashes):
            self.send_metadata(record.hash, meta_value(record, self.host.our_id))

    async def _on_digest_batch(self, batch: peer_pb2.DigestBatch) -> None:
        # The watermark is journaled only with the last batch: a session cut off mid-answer asks
        # again from the old watermark instead of skipping what never arrived.
        hashes = [d.hash for d in batch.digests]
        data = {"hashes": hashes, "watermark": batch.watermark if batch.last else 0, "full": batch.full}
        commands = await self.ledger.record(Event(EventKind.HASHES_ADVERTISED, peer=self.peer, data=data))
        await self.host.dispatch(commands)

    async def _on_advertise(self, advert: peer_pb2.Advertise) -> None:
        hashes = [d.hash for d in advert.digests]
        data = {"hashes": hashes, "watermark": 0, "live": True}
        await self.host.dispatch(
            await self.ledger.record(Event(EventKind.HASHES_ADVERTISED, peer=self.peer, data=data))
        )

    async def _on_want(self, want: peer_pb2.Want) -> None:
        events = [
            Event(
                EventKind.TRANSFER_REQUESTED,
                peer=self.peer,
                hash=item.hash,
                data={"direction": "out", "offset": item.offset},
            )
            for item in want.items
            if _is_digest(item.hash)
        ]
        if events:
            await self.host.dispatch(await self.ledger.record(*events))

    async def _on_meta_change(self, change: peer_pb2.MetaChange) -> None:
        update = change.update
        if not _is_digest(update.hash):
            await self._protocol_error(f"metadata change for a malformed hash {update.hash[:80]!r}")
            return
        value = MetaValue(update.updated_ms, update.origin, tuple(update.tags), update.description, update.trashed)
        event = Event(EventKind.METADATA_CHANGED, peer=self.peer, hash=update.hash, data=value.to_data())
        await self.host.dispatch(await self.ledger.record(event))

    async def _on_peer_list(self, peers: peer_pb2.PeerList) -> None:
        for entry in peers.peers:
            try:
                address = EndpointAddress(entry.endpoint_id, tuple(entry.addrs), entry.relay_url or None)
            except ValueError as exc:
                log.warning("peer %s sent an unusable peer address: %s", self.short, exc)
                continue
            if address.endpoint_id not in (self.host.our_id, self.peer):
                await self.host.learned_peer(address, via="exchange")

    async def _on_unavailable(self, message: peer_pb2.AssetUnavailable) -> None:
        if not _is_digest(message.hash):
            return
        event = Event(
            EventKind.TRANSFER_FAILED,
            peer=self.peer,
            hash=message.hash,
            data={"direction": "in", "reason": f"peer cannot serve it: {message.reason}", "discard": False},
        )
        await self.host.dispatch(await self.ledger.record(event))

    async def _protocol_error(self, reason: str) -> None:
        log.warning("peer %s: %s", self.short, reason)
        with contextlib.suppress(Exception):
            await self.ledger.record(Event(EventKind.PEER_PROTOCOL_ERROR, peer=self.peer, data={"reason": reason}))

    # ------------------------------------------------------------------ sending assets

    async def _send_asset(self, asset: str, offset: int) -> None:
        async with self._send_slots:
            try:
                sent, size = await self._stream_asset(asset, offset)
            except (TransportError, CanServiceError, OSError) as exc:
                await self.ledger.record(
                    self._fact(
                        EventKind.TRANSFER_FAILED,
                        asset,
                        {"direction": "out", "reason": _describe(exc), "discard": False},
                    )
                )
                return
            if size is None:
                return
            await self.ledger.record(
                self._fact(EventKind.TRANSFER_COMPLETED, asset, {"direction": "out", "size": size, "sent": sent})
            )

    async def _stream_asset(self, asset: str, offset: int) -> tuple[int, int | None]:
        async with self.can.pull([asset], offset=offset) as pulled:
            async for item in pulled:
                if not item.found:
                    self._queue_frame(
                        FrameType.ASSET_UNAVAILABLE, peer_pb2.AssetUnavailable(hash=asset, reason="not in the store")
                    )
                    await self.ledger.record(
                        self._fact(
                            EventKind.TRANSFER_FAILED,
                            asset,
                            {"direction": "out", "reason": "not in our store", "discard": False},
                        )
                    )
                    return 0, None
                size = item.meta.size
                start = min(item.item.offset, size)
                await self.ledger.record(
                    self._fact(EventKind.TRANSFER_STARTED, asset, {"direction": "out", "offset": start, "size": size})
                )
                writer = await self.conn.open_transfer()
                await writer.write_message(peer_pb2.AssetHeader(meta=item.meta, offset=start))
                sent = 0
                async for chunk in item.content(CHUNK_BYTES):
                    await writer.write_chunk(chunk)
                    sent += len(chunk)
                await writer.write_message(peer_pb2.AssetEnd(hash=asset, total=sent))
                await writer.finish()
                return sent, size
        return 0, None

    # ------------------------------------------------------------------ receiving assets

    async def _accept_transfers(self) -> None:
        while True:
            reader = await self.conn.accept_transfer(timeout=None)
            if reader is None:
                return
            self._spawn(self._receive(reader), f"receive-{self.short}")

    async def _receive(self, reader: FrameReader) -> None:
        asset = ""
        try:
            header = await reader.expect(FrameType.ASSET_HEADER, timeout=self.stall_timeout)
            assert isinstance(header, peer_pb2.AssetHeader)
            asset = header.meta.hash
            await self._receive_content(reader, header)
        except (FrameError, PeerTimeout, TransportError, OSError) as exc:
            reason = _describe(exc)
            if isinstance(exc, FrameError | PeerTimeout):
                await self._protocol_error(f"transfer stream{' of ' + asset[:12] if asset else ''}: {reason}")
            if _is_digest(asset):
                await self.host.dispatch(
                    await self.ledger.record(
                        Event(
                            EventKind.TRANSFER_FAILED,
                            peer=self.peer,
                            hash=asset,
                            # staging failing (a full disk) is ours to fix, not the peer's fault
                            data={
                                "direction": "in",
                                "reason": reason,
                                "discard": False,
                                "local_fault": isinstance(exc, OSError) and not isinstance(exc, TransportError),
                            },
                        )
                    )
                )
            with contextlib.suppress(Exception):
                await reader.stop()

    async def _receive_content(self, reader: FrameReader, header: peer_pb2.AssetHeader) -> None:
        meta = header.meta
        asset = meta.hash
        transfer = self.ledger.state.peer(self.peer).incoming.get(asset)
        if not _is_digest(asset) or transfer is None or not transfer.status.active:
            raise FrameError(f"peer sent asset {asset[:16]!r} that was not asked of it")
        offset = header.offset
        if offset != transfer.offset:
            raise FrameError(f"peer resumed {asset[:12]} at byte {offset}, we asked for {transfer.offset}")
        await self.ledger.record(
            self._fact(EventKind.TRANSFER_STARTED, asset, {"direction": "in", "offset": offset, "size": meta.size})
        )
        staged = await asyncio.to_thread(self.staging.open_for_append, asset, offset)
        received = 0
        # The checkpoint of chunk k commits while chunk k+1 crosses the network; chunk k+1 reaches the
        # file only once checkpoint k is durable. A crash thus leaves at most one chunk on disk beyond
        # the journal's checkpoint: the at-most-one-chunk re-send of a resume.
        checkpoint: asyncio.Future[list[Command]] | None = None
        try:
            while True:
                frame = await reader.read_frame(timeout=self.stall_timeout)
                if frame is None:
                    raise FrameError(f"transfer of {asset[:12]} ended before its AssetEnd frame")
                ftype, payload = frame
                if checkpoint is not None:
                    await checkpoint
                    checkpoint = None
                if ftype is FrameType.CHUNK:
                    if staged.size + len(payload) > meta.size:
                        raise FrameError(f"peer sent more than the {meta.size} bytes of {asset[:12]}")
                    # hashing and writing release the GIL: off the loop, they overlap the network reads
                    await asyncio.to_thread(staged.write_through, payload)
                    received += len(payload)
                    event = self._fact(
                        EventKind.TRANSFER_CHECKPOINTED, asset, {"direction": "in", "offset": staged.size}
                    )
                    checkpoint = asyncio.ensure_future(self.ledger.record(event))
                elif ftype is FrameType.ASSET_END:
                    break
                else:
                    raise FrameError(f"unexpected {ftype.name} frame inside the transfer of {asset[:12]}")
        finally:
            staged.close()
            if checkpoint is not None:
                await asyncio.gather(checkpoint, return_exceptions=True)
        digest = await asyncio.to_thread(staged.digest)
        if staged.size != meta.size or digest != asset:
            reason = (
                f"content does not match its hash: got {staged.size} bytes hashing to {digest[:16]}, "
                f"expected {meta.size} bytes hashing to {asset[:16]}"
            )
            log.warning("peer %s: refused %s: %s", self.short, asset[:12], reason)
            self.staging.discard(asset)
            await self.host.dispatch(
                await self.ledger.record(
                    self._fact(
                        EventKind.TRANSFER_FAILED,
                        asset,
                        {"direction": "in", "reason": reason, "discard": True, "sent": received},
                    )
                )
            )
            return
        await self.ledger.record(
            self._fact(
                EventKind.TRANSFER_COMPLETED,
                asset,
                {"direction": "in", "size": meta.size, "sent": received, "verified": True},
            )
        )
        try:
            await self.can.push(meta, self.staging.path(asset))
        except CanServiceError as exc:
            # keep the staged bytes: the re-request resumes at the end and only the push is redone
            local_fault = isinstance(exc, CanServiceUnavailable) or (exc.status or 0) >= 500
            log.error("peer %s: could not store %s locally: %s", self.short, asset[:12], exc)
            data = {"direction": "in", "reason": f"local store: {exc}", "discard": False, "local_fault": local_fault}
            await self.host.dispatch(await self.ledger.record(self._fact(EventKind.TRANSFER_FAILED, asset, data)))
            return
        commands = await self.ledger.record(self._fact(EventKind.ASSET_RECEIVED, asset, {"timestamp": meta.timestamp}))
        self.staging.discard(asset)
        await self.host.dispatch(commands)


async def _nothing_to_do(message: object) -> None:
    return None


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."
