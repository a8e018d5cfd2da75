"""pkarr relay client over HTTP (httpx, asyncio): PUT and GET a signed packet on several relays at once.

`PUT <relay>/<z32>` and `GET <relay>/<z32>`; the body is the relay payload. Status policy:
- any 2xx on PUT: stored (Rust relays say 204, the npm relay 200);
- 409 / 428: a more recent packet is already there (not an error when re-publishing);
- 412: compare-and-swap failed (we never send If-Match, so only an odd relay says it);
- 429: rate limited, leave that relay alone for a while (Retry-After when given);
- 400 / 413: the relay refused our packet, which is a bug on our side: logged as an error;
- 5xx, timeouts, refused connections: unavailable, try again on the next round.
Every fetched body is verified against the key it was fetched for before anyone sees it.
No query string and no If-Modified-Since are sent: the npm relay breaks on the first, and the body is
at most 1072 bytes, so conditional GETs would buy nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import httpx

from cansync.discovery import zbase32
from cansync.discovery.pkarr_packet import MAX_PAYLOAD_BYTES, PkarrError, SignedPacket

log = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 2.0  # seconds per request, connect to last byte
DEFAULT_RATE_LIMIT_BACKOFF = 30.0
MAX_RATE_LIMIT_BACKOFF = 300.0


class PublishOutcome(StrEnum):
    STORED = "stored"
    NOT_MOST_RECENT = "not_most_recent"  # 409/428: the relay holds something newer
    CAS_FAILED = "cas_failed"  # 412
    RATE_LIMITED = "rate_limited"  # 429, or still backing off from one
    REJECTED = "rejected"  # 400/413 and other 4xx: our packet or URL is wrong
    UNAVAILABLE = "unavailable"  # 5xx, timeout, connection refused


class ResolveOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"  # 404, or an empty 200 body
    INVALID = "invalid"  # a body that fails verification, or is too long
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"  # 4xx other than 404/429: our URL is wrong
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class PublishResult:
    relay: str
    outcome: PublishOutcome
    status: int | None  # HTTP status, None when no answer came
    detail: str = ""


@dataclass(frozen=True)
class ResolveResult:
    relay: str
    outcome: ResolveOutcome
    status: int | None
    packet: SignedPacket | None = None
    detail: str = ""


@dataclass(frozen=True)
class Resolution:
    """What all relays said about one key; `packet` is the most recent verified one, if any."""

    public_key: bytes
    packet: SignedPacket | None
    results: tuple[ResolveResult, ...]

    @property
    def any_answered(self) -> bool:
        """True when at least one relay gave an authoritative answer (found or not found)."""
        return any(r.outcome in (ResolveOutcome.FOUND, ResolveOutcome.NOT_FOUND) for r in self.results)


def relay_url(relay: str, public_key: bytes) -> str:
    """`<relay>/<z32>`: one path segment appended, so relays living under a path prefix work too."""
    return relay.rstrip("/") + "/" + zbase32.encode(public_key)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})" if str(exc) else "cannot connect"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after_seconds(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return DEFAULT_RATE_LIMIT_BACKOFF
    return min(max(seconds, 1.0), MAX_RATE_LIMIT_BACKOFF)


class PkarrRelayClient:
    """Publishes to and resolves from a fixed list of relays, all of them concurrently.

    Pass `http` to share one httpx.AsyncClient; otherwise one is made and closed by `aclose()`.
    """

    def __init__(
        self,
        relays: Sequence[str],
        *,
        http: httpx.AsyncClient | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        for relay in relays:
            if not relay.startswith(("http://", "https://")):
                raise ValueError(f"pkarr relay {relay!r} is not an http(s) URL")
        self.relays = tuple(relays)
        self._own_http = http is None
        self._http = http if http is not None else httpx.AsyncClient()
        self._timeout = request_timeout
        self._monotonic = monotonic
        self._backoff_until: dict[str, float] = {}

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> PkarrRelayClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- rate limiting ------------------------------------------------------------------------------

    def _backing_off(self, relay: str) -> bool:
        until = self._backoff_until.get(relay)
        if until is None:
            return False
        if self._monotonic() >= until:
            del self._backoff_until[relay]
            return False
        return True

    def _note_rate_limited(self, relay: str, response: httpx.Response) -> float:
        delay = _retry_after_seconds(response)
        self._backoff_until[relay] = self._monotonic() + delay
        return delay

    # -- publish ------------------------------------------------------------------------------------

    async def publish(self, packet: SignedPacket) -> list[PublishResult]:
        """PUT the packet on every relay at once; one result per relay, in relay order. Never raises for I/O."""
        payload = packet.relay_payload()
        return list(await asyncio.gather(*(self._put(relay, packet, payload) for relay in self.relays)))

    async def _put(self, relay: str, packet: SignedPacket, payload: bytes) -> PublishResult:
        if self._backing_off(relay):
            return PublishResult(relay, PublishOutcome.RATE_LIMITED, None, "still backing off after a 429")
        url = relay_url(relay, packet.public_key)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.put(url, content=payload, timeout=self._timeout)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return PublishResult(relay, PublishOutcome.UNAVAILABLE, None, _describe(exc))
        status = response.status_code
        reason = (response.text or response.reason_phrase or "").strip()[:200]
        if 200 <= status < 300:
            return PublishResult(relay, PublishOutcome.STORED, status)
        if status in (409, 428):
            return PublishResult(relay, PublishOutcome.NOT_MOST_RECENT, status, reason)
        if status == 412:
            return PublishResult(relay, PublishOutcome.CAS_FAILED, status, reason)
        if status == 429:
            delay = self._note_rate_limited(relay, response)
            return PublishResult(relay, PublishOutcome.RATE_LIMITED, status, f"backing off {delay:.0f} s")
        if status >= 500:
            return PublishResult(relay, PublishOutcome.UNAVAILABLE, status, reason)
        log.error(
            "pkarr relay %s refused our packet for pk:%s with HTTP %d (%s): this is a cansync bug",
            relay,
            packet.z32,
            status,
            reason or "no reason given",
        )
        return PublishResult(relay, PublishOutcome.REJECTED, status, reason)

    # -- resolve ------------------------------------------------------------------------------------

    async def resolve(self, public_key: bytes) -> Resolution:
        """GET the key from every relay at once; verify each body; keep the most recent packet."""
        results = tuple(await asyncio.gather(*(self._get(relay, public_key) for relay in self.relays)))
        best: SignedPacket | None = None
        for result in results:
            if result.packet is not None and (best is None or result.packet.more_recent_than(best)):
                best = result.packet
        return Resolution(public_key, best, results)

    async def _get(self, relay: str, public_key: bytes) -> ResolveResult:
        if self._backing_off(relay):
            return ResolveResult(relay, ResolveOutcome.RATE_LIMITED, None, detail="still backing off after a 429")
        url = relay_url(relay, public_key)
        try:
            # The overall deadline also covers a relay that drips bytes slowly enough to dodge read timeouts.
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("GET", url, timeout=self._timeout) as response:
                    status = response.status_code
                    body = bytearray()
                    too_long = False
                    if 200 <= status < 300:
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > MAX_PAYLOAD_BYTES:
                                too_long = True
                                break
                    else:
                        await response.aread()
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return ResolveResult(relay, ResolveOutcome.UNAVAILABLE, None, detail=_describe(exc))
        if status == 200 or status == 203:
            if too_long:
                return ResolveResult(
                    relay, ResolveOutcome.INVALID, status, detail=f"body over {MAX_PAYLOAD_BYTES} bytes"
                )
            if not body:
                # Old relays answer an empty 200 in a caching corner case: treat as nothing this round.
                return ResolveResult(relay, ResolveOutcome.NOT_FOUND, status, detail="empty 200 body")
            try:
                packet = SignedPacket.from_relay_payload(public_key, bytes(body))
            except PkarrError as exc:
                return ResolveResult(relay, ResolveOutcome.INVALID, status, detail=str(exc))
            return ResolveResult(relay, ResolveOutcome.FOUND, status, packet=packet)
        if status in (404, 304) or 200 <= status < 300:
            return ResolveResult(relay, ResolveOutcome.NOT_FOUND, status)
        if status == 429:
            delay = self._note_rate_limited(relay, response)
            return ResolveResult(relay, ResolveOutcome.RATE_LIMITED, status, detail=f"backing off {delay:.0f} s")
        if status >= 500:
            return ResolveResult(relay, ResolveOutcome.UNAVAILABLE, status, detail=f"HTTP {status}")
        return ResolveResult(relay, ResolveOutcome.REJECTED, status, detail=f"HTTP {status}")
