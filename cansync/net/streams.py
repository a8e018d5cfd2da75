"""Framed iroh streams: read and write peer-protocol frames with caps, timeouts and byte counters.

A FrameReader checks every header against the caps before it reads the payload; on a bad frame it
stops the stream (the peer's writes then fail instead of blocking) and raises FrameError. Every wait
runs under a timeout, because the bindings have none: a stall raises PeerTimeout.

With a BandwidthLimiter (max_send_kbps / max_recv_kbps), a writer waits for the limiter before each
slice it sends and a reader waits after each slice it reads, in LIMITED_SLICE pieces so the bytes flow
evenly; the limiter's waits never count against a stall timeout. Without one, nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from google.protobuf.message import Message

from cansync.net import transport
from cansync.net.bandwidth import BandwidthLimiter
from cansync.net.error_text import one_line_error
from cansync.net.errors import PeerTimeout, StreamClosed
from cansync.net.transport import LINK_ERRORS
from cansync.portable.timeouts import wait_for
from cansync.wire.frames import (
    DEFAULT_LIMITS,
    HEADER_SIZE,
    FrameError,
    FrameLimits,
    FrameType,
    decode_header,
    decode_message,
    encode_header,
    message_type,
)

log = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_WRITE_TIMEOUT = 60.0
# A payload is read in slices of this size: each slice must arrive within the timeout (a stall
# detector, not a deadline for the whole frame), and large reads stay few FFI calls.
READ_SLICE = 4 * 1024 * 1024
# Payloads above this go out in a second write_all instead of being copied behind the header.
COALESCE_LIMIT = 64 * 1024
# A reader asks the stream for up to this much at a time, and hands frames out of what it got: a stream of
# small assets then costs one FFI read per few dozen frames instead of two per frame.
READ_AHEAD = 256 * 1024
# A coalescing writer holds small frames until this much is waiting (or a large payload, a flush or the
# stream's end comes): one FFI write for the frames of many small assets.
HOLD_LIMIT = 64 * 1024
# Under a bandwidth limit, payloads move in slices of this size: a 4 MiB chunk as one burst every few
# seconds would hold the rate only on average, and starve the other streams meanwhile.
LIMITED_SLICE = 128 * 1024

# QUIC application error codes we stop or reset streams with.
STOP_FRAME_ERROR = 1
STOP_TIMEOUT = 2
STOP_CANCELLED = 3


@dataclass
class TrafficCounter:
    """Frame bytes (headers + payloads) moved on a connection's streams, as the application saw them."""

    bytes_sent: int = 0
    bytes_received: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    chunk_bytes_sent: int = 0
    chunk_bytes_received: int = 0


class FrameReader:
    """Reads frames from one iroh receive stream."""

    def __init__(
        self,
        recv: transport.RecvStream,
        *,
        label: str,
        counter: TrafficCounter | None = None,
        limits: FrameLimits = DEFAULT_LIMITS,
        timeout: float = DEFAULT_READ_TIMEOUT,
        limiter: BandwidthLimiter | None = None,
    ) -> None:
        self._recv = recv
        self.label = label  # e.g. "peer 3f2a9c01de transfer stream": used in every error message
        self.counter = counter if counter is not None else TrafficCounter()
        self.limits = limits
        self.timeout = timeout
        self.limiter = limiter
        self._broken: Exception | None = None
        self.ended = False
        # bytes read ahead of the frame being parsed (none under a bandwidth limit, which must account
        # every byte when it is read): the next frame starts at _ahead[_at]
        self._ahead = b""
        self._at = 0

    async def _read(self, n: int, timeout: float, what: str, exact: bool) -> bytes:
        call = self._recv.read_exact(n) if exact else self._recv.read(n)
        try:
            return await wait_for(call, timeout)
        except TimeoutError:
            await self._stop_quietly(STOP_TIMEOUT)
            self._broken = PeerTimeout(f"{self.label}: nothing arrived for {timeout:g} s while {what}")
            raise self._broken from None
        except LINK_ERRORS as exc:
            self._broken = StreamClosed(f"{self.label}: stream ended while {what}: {one_line_error(exc)}")
            raise self._broken from exc

    async def read_frame(self, timeout: float | None = None) -> tuple[FrameType, bytes] | None:
        """The next frame, or None when the peer finished the stream cleanly between frames."""
        if self._broken is not None:
            raise StreamClosed(f"{self.label}: stream is no longer usable ({self._broken})")
        if self.ended:
            return None
        wait = self.timeout if timeout is None else timeout
        if self._at == len(self._ahead):
            size = HEADER_SIZE if self.limiter is not None else READ_AHEAD
            first = await self._read(size, wait, "waiting for a frame header", exact=False)
            if not first:
                self.ended = True
                return None
            self._ahead, self._at = first, 0
        header = await self._take(HEADER_SIZE, wait, "reading the rest of a frame header")
        try:
            ftype, length = decode_header(header, self.limits)
        except FrameError as exc:
            await self._refuse(exc)
            raise FrameError(f"{self.label}: {exc}") from exc
        if self.limiter is not None:
            await self.limiter.consume(HEADER_SIZE)
        payload = await self._read_payload(ftype, length, wait)
        self.counter.bytes_received += HEADER_SIZE + length
        self.counter.frames_received += 1
        if ftype is FrameType.CHUNK:
            self.counter.chunk_bytes_received += length
        return ftype, payload

    async def _take(self, n: int, timeout: float, what: str) -> bytes:
        """The next n bytes of the stream: first what was read ahead, then small reads ahead (or, for
        the rest of a large payload, exact reads of just that)."""
        start, end = self._at, self._at + n
        if end <= len(self._ahead):
            self._at = end
            return self._ahead[start:end]
        parts = [self._ahead[start:]]
        missing = end - len(self._ahead)
        self._ahead, self._at = b"", 0
        if self.limiter is not None or missing > READ_AHEAD:
            parts.append(await self._read_exactly(missing, timeout, what))
            return b"".join(parts)
        while missing:
            data = await self._read(READ_AHEAD, timeout, what, exact=False)
            if not data:
                self._broken = StreamClosed(f"{self.label}: stream ended while {what}")
                raise self._broken
            if len(data) > missing:
                parts.append(data[:missing])
                self._ahead, self._at = data, missing
                break
            parts.append(data)
            missing -= len(data)
        return b"".join(parts)

    async def _read_payload(self, ftype: FrameType, length: int, timeout: float) -> bytes:
        if length == 0:
            return b""
        what = f"reading a {ftype.name} payload of {length} bytes"
        if self.limiter is None:
            return await self._take(length, timeout, what)
        return await self._read_exactly(length, timeout, what)

    async def _read_exactly(self, length: int, timeout: float, what: str) -> bytes:
        """`length` bytes straight from the stream (nothing read ahead), in slices under a limiter."""
        limiter = self.limiter
        if limiter is None and length <= READ_SLICE:
            return await self._read(length, timeout, what, exact=True)
        slice_size = READ_SLICE if limiter is None else LIMITED_SLICE
        parts = []
        remaining = length
        while remaining:
            part = await self._read(min(slice_size, remaining), timeout, what, exact=True)
            parts.append(part)
            remaining -= len(part)
            if limiter is not None:  # not reading meanwhile is what slows the peer (QUIC flow control)
                await limiter.consume(len(part))
        return b"".join(parts)

    async def read_message(self, timeout: float | None = None) -> tuple[FrameType, Message | bytes] | None:
        """Like read_frame, with control payloads parsed (CHUNK payloads stay bytes)."""
        frame = await self.read_frame(timeout)
        if frame is None:
            return None
        ftype, payload = frame
        if ftype is FrameType.CHUNK:
            return ftype, payload
        try:
            return ftype, decode_message(ftype, payload)
        except FrameError as exc:
            await self._refuse(exc)
            raise FrameError(f"{self.label}: {exc}") from exc

    async def expect(self, *types: FrameType, timeout: float | None = None) -> Message:
        """The next frame must be a control message of one of `types`; anything else is a FrameError."""
        got = await self.read_message(timeout)
        if got is None:
            raise StreamClosed(f"{self.label}: stream ended, expected {'/'.join(t.name for t in types)}")
        ftype, msg = got
        if ftype not in types or not isinstance(msg, Message):
            error = FrameError(f"{self.label}: expected {'/'.join(t.name for t in types)}, got {ftype.name}")
            await self._refuse(error)
            raise error
        return msg

    async def _refuse(self, exc: Exception) -> None:
        self._broken = exc
        log.warning("%s: refusing stream: %s", self.label, exc)
        await self._stop_quietly(STOP_FRAME_ERROR)

    async def _stop_quietly(self, code: int) -> None:
        with contextlib.suppress(*LINK_ERRORS, TimeoutError):
            await wait_for(self._recv.stop(code), 2.0)

    async def stop(self, code: int = STOP_CANCELLED) -> None:
        """Tell the peer we read no more from this stream."""
        self._broken = self._broken or StreamClosed(f"{self.label}: stopped by us")
        await self._stop_quietly(code)


class FrameWriter:
    """Writes frames to one iroh send stream.

    End every stream with finish() (clean end) or reset() (abandoned). Beware: the bindings finish a
    stream whose writer is dropped, so a receiver must rely on an explicit end message (AssetEnd),
    never on end-of-stream alone, to know a transfer is complete.
    """

    def __init__(
        self,
        send: transport.SendStream,
        *,
        label: str,
        counter: TrafficCounter | None = None,
        limits: FrameLimits = DEFAULT_LIMITS,
        timeout: float = DEFAULT_WRITE_TIMEOUT,
        limiter: BandwidthLimiter | None = None,
        coalesce: bool = False,
    ) -> None:
        self._send = send
        self.label = label
        self.counter = counter if counter is not None else TrafficCounter()
        self.limits = limits
        self.timeout = timeout
        self.limiter = limiter
        self.finished = False
        self._broken: Exception | None = None
        # coalesce: small frames wait in _held (see HOLD_LIMIT) until flush(), finish(), a large payload
        # or HOLD_LIMIT; for streams whose frames need not leave one by one (never a control stream)
        self._coalesce = coalesce and limiter is None
        self._held = bytearray()

    async def _write_all(self, data: bytes, timeout: float, what: str) -> None:
        try:
            await wait_for(self._send.write_all(data), timeout)
        except TimeoutError:
            # part of a frame may be out: reset, so the peer can never misread what follows
            self._broken = PeerTimeout(f"{self.label}: peer accepted nothing for {timeout:g} s while {what}")
            await self.reset(STOP_TIMEOUT)
            raise self._broken from None
        except LINK_ERRORS as exc:
            self._broken = StreamClosed(f"{self.label}: cannot send ({what}): {one_line_error(exc)}")
            raise self._broken from exc

    async def write_frame(self, ftype: FrameType, payload: bytes, timeout: float | None = None) -> None:
        """Send one frame; refused here (FrameError) if the peer's caps would refuse it."""
        if self._broken is not None:
            raise StreamClosed(f"{self.label}: stream is no longer usable ({self._broken})")
        if self.finished:
            raise StreamClosed(f"{self.label}: stream already finished")
        wait = self.timeout if timeout is None else timeout
        length = len(payload)
        header = encode_header(ftype, length, self.limits)
        what = f"sending a {FrameType(ftype).name} frame of {length} bytes"
        if self.limiter is not None:
            await self._write_limited(self.limiter, header, payload, wait, what)
        elif self._coalesce and length <= COALESCE_LIMIT:
            self._held += header
            self._held += payload
            if len(self._held) >= HOLD_LIMIT:
                await self.flush(wait)
        elif length <= COALESCE_LIMIT:
            await self._write_all(header + bytes(payload), wait, what)
        else:
            if self._held:
                self._held += header
                header = bytes(self._held)
                self._held.clear()
            await self._write_all(header, wait, what)
            await self._write_all(payload, wait, what)
        self.counter.bytes_sent += HEADER_SIZE + length
        self.counter.frames_sent += 1
        if ftype == FrameType.CHUNK:
            self.counter.chunk_bytes_sent += length

    async def _write_limited(
        self, limiter: BandwidthLimiter, header: bytes, payload: bytes, timeout: float, what: str
    ) -> None:
        """Send the frame in LIMITED_SLICE pieces, each once the limiter lets it through."""
        view = memoryview(payload)
        first = bytes(view[:LIMITED_SLICE])
        await limiter.consume(HEADER_SIZE + len(first))
        await self._write_all(header + first, timeout, what)
        for start in range(LIMITED_SLICE, len(view), LIMITED_SLICE):
            piece = bytes(view[start : start + LIMITED_SLICE])
            await limiter.consume(len(piece))
            await self._write_all(piece, timeout, what)

    async def write_message(self, msg: Message, timeout: float | None = None) -> None:
        await self.write_frame(message_type(msg), msg.SerializeToString(), timeout)

    async def write_chunk(self, data: bytes, timeout: float | None = None) -> None:
        await self.write_frame(FrameType.CHUNK, data, timeout)

    async def flush(self, timeout: float | None = None) -> None:
        """Send the small frames a coalescing writer holds."""
        if self._held:
            held = bytes(self._held)
            self._held.clear()
            await self._write_all(
                held, self.timeout if timeout is None else timeout, f"sending {len(held)} bytes of frames"
            )

    async def finish(self) -> None:
        """End the stream cleanly (sending what is held first): the peer's reader sees None after the
        last frame."""
        if self.finished:
            return
        await self.flush()
        self.finished = True
        try:
            await wait_for(self._send.finish(), self.timeout)
        except TimeoutError:
            raise PeerTimeout(f"{self.label}: finishing the stream took over {self.timeout:g} s") from None
        except LINK_ERRORS as exc:
            raise StreamClosed(f"{self.label}: cannot finish the stream: {one_line_error(exc)}") from exc

    async def reset(self, code: int = STOP_CANCELLED) -> None:
        """Abandon the stream: unsent data is dropped and the peer's reader fails."""
        self.finished = True
        self._held.clear()
        with contextlib.suppress(*LINK_ERRORS, TimeoutError):
            await wait_for(self._send.reset(code), 2.0)


class FramedStream:
    """Both halves of a bi-stream (the control stream)."""

    def __init__(self, reader: FrameReader, writer: FrameWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def label(self) -> str:
        return self.reader.label

    async def read_frame(self, timeout: float | None = None) -> tuple[FrameType, bytes] | None:
        return await self.reader.read_frame(timeout)

    async def read_message(self, timeout: float | None = None) -> tuple[FrameType, Message | bytes] | None:
        return await self.reader.read_message(timeout)

    async def expect(self, *types: FrameType, timeout: float | None = None) -> Message:
        return await self.reader.expect(*types, timeout=timeout)

    async def write_frame(self, ftype: FrameType, payload: bytes, timeout: float | None = None) -> None:
        await self.writer.write_frame(ftype, payload, timeout)

    async def write_message(self, msg: Message, timeout: float | None = None) -> None:
        await self.writer.write_message(msg, timeout)

    async def finish(self) -> None:
        await self.writer.finish()
