"""The token bucket on an injected clock (no waiting on wall time), and limiters wired into real streams."""

from __future__ import annotations

import asyncio
import os
import secrets

import pytest

from cansync.net.bandwidth import KIB, MIN_BURST_BYTES, BandwidthLimiter, TokenBucket, limiter_for
from cansync.net.endpoint import open_endpoint
from cansync.net.streams import HEADER_SIZE, LIMITED_SLICE
from cansync.wire.frames import FrameType
from cansync.wire.pb import peer_pb2
from tests.net.conftest import connect_pair


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds  # "sleeping" moves the clock; nothing waits on wall time


def test_a_full_bucket_lets_a_burst_through_then_charges_the_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1000, burst=500, clock=clock)
    assert bucket.reserve(300) == 0 and bucket.reserve(200) == 0
    assert bucket.reserve(250) == pytest.approx(0.25)  # 250 bytes of debt at 1000 B/s
    assert bucket.reserve(1000) == pytest.approx(1.25)  # queued behind the first debt
    clock.now += 1.25
    assert bucket.tokens == pytest.approx(0)
    clock.now += 60
    assert bucket.tokens == 500  # refills to the burst, never beyond
    assert bucket.reserve(0) == 0


def test_a_clock_that_goes_back_does_not_mint_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=100, clock=clock)
    bucket.reserve(100)
    clock.now -= 50
    assert bucket.tokens == 0
    clock.now += 50.5  # back where it was, plus half a second
    assert bucket.tokens == pytest.approx(50)


def test_bad_arguments_are_refused() -> None:
    clock = FakeClock()
    for rate, burst in ((0, 1), (1, 0), (-5, 10)):
        with pytest.raises(ValueError):
            TokenBucket(rate=rate, burst=burst, clock=clock)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=1, clock=clock).reserve(-1)
    with pytest.raises(ValueError, match="0 means no limiter"):
        BandwidthLimiter(0)
    assert limiter_for(0) is None
    limiter = limiter_for(2000)
    assert limiter is not None and limiter.bucket.rate == 2000 * KIB


async def test_streams_sharing_a_limiter_move_at_its_rate_together() -> None:
    clock = FakeClock()
    limiter = BandwidthLimiter(2000, clock=clock, sleep=clock.sleep)
    rate = 2000 * KIB
    started = clock.now

    async def stream(slices: int) -> None:
        for _ in range(slices):
            await limiter.consume(LIMITED_SLICE)

    # three streams, 10 s of traffic at the limit between them
    total_slices = int(10 * rate / LIMITED_SLICE)
    await asyncio.gather(
        stream(total_slices // 3), stream(total_slices // 3), stream(total_slices - 2 * (total_slices // 3))
    )
    moved = total_slices * LIMITED_SLICE
    elapsed = clock.now - started
    assert limiter.bytes_passed == moved
    # the clock ran as long as the bytes need at the rate, less only the first burst
    assert elapsed == pytest.approx((moved - limiter.bucket.burst) / rate, rel=1e-6)
    assert rate <= moved / elapsed <= rate * 1.01  # the burst is 0.5% of 10 s at this rate
    assert limiter.bucket.burst == max(MIN_BURST_BYTES, rate * 0.05)


async def test_limiters_reach_every_stream_of_an_endpoint() -> None:
    # Real endpoints and streams; rates so high nothing waits: this checks the wiring, not the timing.
    send_limiter, recv_limiter = BandwidthLimiter(10**7), BandwidthLimiter(10**7)
    sender = await open_endpoint(secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=[], send_limiter=send_limiter)
    receiver = await open_endpoint(
        secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=[], recv_limiter=recv_limiter
    )
    try:
        outgoing, incoming = await connect_pair(sender, receiver)
        assert (outgoing.send_limiter, incoming.recv_limiter) == (send_limiter, recv_limiter)
        payload = os.urandom(LIMITED_SLICE * 5 + 17)  # not a whole number of slices
        writer = await outgoing.open_transfer()
        await writer.write_chunk(payload)
        await writer.write_message(peer_pb2.Goodbye(reason="done"))
        await writer.finish()
        reader = await incoming.accept_transfer(timeout=10)
        assert reader is not None and reader.limiter is recv_limiter
        assert await reader.read_frame() == (FrameType.CHUNK, payload)
        assert await reader.expect(FrameType.GOODBYE) == peer_pb2.Goodbye(reason="done")
        framed = 2 * HEADER_SIZE + len(payload) + len(peer_pb2.Goodbye(reason="done").SerializeToString())
        assert send_limiter.bytes_passed == framed == writer.counter.bytes_sent
        assert recv_limiter.bytes_passed == framed == reader.counter.bytes_received
    finally:
        await sender.close()
        await receiver.close()
