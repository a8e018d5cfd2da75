"""Hostile and broken frames on live streams: refused with FrameError, stalls become PeerTimeout,
and the connection stays usable for new streams afterwards."""

from __future__ import annotations

import asyncio
import struct

import iroh
import pytest

from cansync.net.endpoint import PeerConnection
from cansync.net.errors import PeerTimeout, StreamClosed
from cansync.net.streams import FrameReader
from cansync.wire.frames import DEFAULT_CHUNK_CAP, FrameError, FrameType, encode_message
from cansync.wire.pb import peer_pb2


async def raw_uni(sender: PeerConnection, first_bytes: bytes) -> iroh.SendStream:
    """A raw uni-stream (bypassing our FrameWriter, which refuses to write bad frames)."""
    send = await sender._conn.open_uni()
    await send.write_all(first_bytes)
    return send


async def next_reader(receiver: PeerConnection) -> FrameReader:
    reader = await receiver.accept_transfer(timeout=10)
    assert reader is not None
    return reader


async def assert_connection_still_works(sender: PeerConnection, receiver: PeerConnection) -> None:
    writer = await sender.open_transfer()
    await writer.write_message(peer_pb2.Goodbye(reason="still here"))
    await writer.finish()
    reader = await next_reader(receiver)
    assert await reader.expect(FrameType.GOODBYE) == peer_pb2.Goodbye(reason="still here")
    assert await reader.read_frame() is None


async def test_unknown_frame_type_is_refused_and_the_connection_survives(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, receiver = connection
    send = await raw_uni(sender, struct.pack(">BI", 0x63, 4) + b"junk")
    reader = await next_reader(receiver)
    with pytest.raises(FrameError, match="unknown frame type 99"):
        await reader.read_frame(timeout=5)
    # the reader stopped the stream: the sender's next writes fail instead of blocking forever
    with pytest.raises(iroh.IrohError):
        for _ in range(50):
            await asyncio.wait_for(send.write_all(b"x" * 65536), 5)
            await asyncio.sleep(0.01)
    with pytest.raises(StreamClosed):
        await reader.read_frame(timeout=5)  # a refused stream stays refused
    await assert_connection_still_works(sender, receiver)


async def test_oversized_frame_is_refused_before_its_payload(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, receiver = connection
    # only the header: a reader that tried to read the payload first would stall into PeerTimeout
    await raw_uni(sender, struct.pack(">BI", FrameType.CHUNK, DEFAULT_CHUNK_CAP + 1))
    reader = await next_reader(receiver)
    with pytest.raises(FrameError, match=f"CHUNK frame of {DEFAULT_CHUNK_CAP + 1} bytes exceeds"):
        await reader.read_frame(timeout=5)
    await assert_connection_still_works(sender, receiver)


async def test_malformed_protobuf_payload_is_refused(connection: tuple[PeerConnection, PeerConnection]) -> None:
    sender, receiver = connection
    await raw_uni(sender, struct.pack(">BI", FrameType.HELLO, 4) + b"\xff\xff\xff\xff")
    reader = await next_reader(receiver)
    with pytest.raises(FrameError, match="malformed HELLO"):
        await reader.read_message(timeout=5)
    await assert_connection_still_works(sender, receiver)


async def test_unexpected_frame_type_is_refused(connection: tuple[PeerConnection, PeerConnection]) -> None:
    sender, receiver = connection
    await raw_uni(sender, encode_message(peer_pb2.Goodbye(reason="early")))
    reader = await next_reader(receiver)
    with pytest.raises(FrameError, match="expected HELLO, got GOODBYE"):
        await reader.expect(FrameType.HELLO, timeout=5)


async def test_peer_stalling_mid_frame_raises_peer_timeout(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, receiver = connection
    # then nothing (keep the stream object alive: dropping it would finish the stream)
    send = await raw_uni(sender, struct.pack(">BI", FrameType.CHUNK, 1000) + b"only ten b")
    reader = await next_reader(receiver)
    with pytest.raises(PeerTimeout, match="CHUNK payload of 1000 bytes"):
        await reader.read_frame(timeout=0.3)
    del send
    await assert_connection_still_works(sender, receiver)


async def test_peer_silent_between_frames_raises_peer_timeout(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, receiver = connection
    writer = await sender.open_transfer()
    await writer.write_message(peer_pb2.Goodbye(reason="one"))
    await writer.flush()  # a transfer writer holds small frames until asked (or until it has enough)
    reader = await next_reader(receiver)
    assert await reader.expect(FrameType.GOODBYE, timeout=5) == peer_pb2.Goodbye(reason="one")
    with pytest.raises(PeerTimeout, match="frame header"):
        await reader.read_frame(timeout=0.3)


async def test_stream_ending_inside_a_frame_is_reported(connection: tuple[PeerConnection, PeerConnection]) -> None:
    sender, receiver = connection
    send = await raw_uni(sender, struct.pack(">BI", FrameType.CHUNK, 100) + b"partial")
    await send.finish()
    reader = await next_reader(receiver)
    with pytest.raises(StreamClosed, match="CHUNK payload of 100 bytes"):
        await reader.read_frame(timeout=5)


async def test_writer_refuses_a_frame_the_peer_would_refuse(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, _ = connection
    writer = await sender.open_transfer()
    with pytest.raises(FrameError, match="exceeds"):
        await writer.write_chunk(b"\0" * (DEFAULT_CHUNK_CAP + 1))
    assert sender.bytes_sent == 0


async def test_writer_times_out_when_the_peer_stops_reading(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    sender, receiver = connection
    writer = await sender.open_transfer()
    await writer.write_chunk(b"\0" * 1024)
    await writer.flush()
    reader = await next_reader(receiver)  # accepted, but never read: flow control fills up
    with pytest.raises(PeerTimeout, match="peer accepted nothing"):
        for _ in range(256):  # far more than any receive window
            await writer.write_chunk(b"\0" * (1024 * 1024), timeout=0.5)
    with pytest.raises(StreamClosed, match="no longer usable"):
        await writer.write_chunk(b"more")  # half a frame may be out: the stream was reset, not reused
    with pytest.raises(StreamClosed, match="stream ended"):
        while await reader.read_frame(timeout=5) is not None:  # the reader sees the reset, not garbage
            pass


async def test_a_transfer_writer_sends_small_frames_together_and_a_reader_splits_them_apart(
    connection: tuple[PeerConnection, PeerConnection],
) -> None:
    """Small frames leave together (one write) and are read ahead together (one read), yet every frame
    arrives whole and in order, around large payloads and across the read-ahead's edges."""
    sender, receiver = connection
    writer = await sender.open_transfer()
    sizes = [0, 1, 700, 5000, 65536, 3 * 1024 * 1024, 17, 300_000, 9, 250_000, 1]
    payloads = [bytes([n % 251]) * size for n, size in enumerate(sizes * 20)]

    async def send() -> None:
        for payload in payloads:
            await writer.write_chunk(payload)
        await writer.finish()

    async def receive() -> list[bytes]:
        reader = await next_reader(receiver)
        got = []
        while (frame := await reader.read_frame(timeout=10)) is not None:
            got.append(frame[1])
        return got

    _, got = await asyncio.gather(send(), receive())
    assert got == payloads
    assert writer.counter.frames_sent == len(payloads) == len(got)
