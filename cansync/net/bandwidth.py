"""Bandwidth limits: a token bucket per direction, shared by every stream of the agent.

`TokenBucket` is the pure arithmetic (the clock is passed in): `reserve(n)` takes n bytes' worth of
tokens, going into debt if it must, and says how long the caller has to wait before moving them.
Callers that reserve while others still wait queue up behind the debt, so the rate holds however many
streams share the bucket. `BandwidthLimiter` is the async face the streams use.

A limit of 0 means unlimited: `limiter_for(0)` is None, and the streams then skip limiting altogether,
so the unlimited path costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

KIB = 1024
BURST_SECONDS = 0.05
"""The bucket holds at most this many seconds of traffic: a link idle for a while starts with a short
burst, never with seconds of it (over a 10 s window 0.05 s is 0.5% above the limit)."""
MIN_BURST_BYTES = 64 * KIB


class TokenBucket:
    """Tokens are bytes; they refill at `rate` per second up to `burst`. Pure: `clock()` gives the time."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst <= 0:
            raise ValueError(f"burst must be positive, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)  # may go negative: the debt later callers wait out
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def reserve(self, amount: int) -> float:
        """Take `amount` bytes' worth; the seconds to wait before moving them (0 when they are there now)."""
        if amount < 0:
            raise ValueError(f"amount must not be negative, got {amount}")
        self._refill()
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class BandwidthLimiter:
    """Holds the bytes moved in one direction to `kib_per_s` KiB/s, whatever the number of streams."""

    def __init__(
        self,
        kib_per_s: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if kib_per_s <= 0:
            raise ValueError(f"a limit must be positive (0 means no limiter at all), got {kib_per_s}")
        rate = kib_per_s * KIB
        self.kib_per_s = kib_per_s
        self.bucket = TokenBucket(rate, max(MIN_BURST_BYTES, rate * BURST_SECONDS), clock)
        self._sleep = sleep
        self.bytes_passed = 0  # every byte let through so far (tests and the dashboard may read it)

    async def consume(self, amount: int) -> None:
        """Wait until `amount` more bytes may move (call before sending, or after reading)."""
        wait = self.bucket.reserve(amount)
        self.bytes_passed += amount
        if wait > 0:
            await self._sleep(wait)


def limiter_for(kib_per_s: int) -> BandwidthLimiter | None:
    """The limiter for a configured limit; None for 0 (unlimited)."""
    return BandwidthLimiter(kib_per_s) if kib_per_s > 0 else None
