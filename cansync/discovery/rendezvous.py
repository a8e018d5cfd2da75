"""The can-sync pkarr rendezvous: 8 slots per passphrase, each a pkarr key every peer can derive.

Compatible with the Rust agent: slot i's Ed25519 seed is BLAKE3(`can-sync-rendezvous:{passphrase}:{i}`), a
peer claims a slot by publishing a `_can_sync` TXT record holding its endpoint id in lowercase hex (TTL
300 s, republished every 60 s), and every peer reads all 8 slots every 15 s.

Slot policy (ours; the Rust one is not known):
- claim: the slot that already holds our id, else an empty slot (404; the order is spread by our id so
  peers starting together rarely pick the same one), else the stalest record older than its TTL;
  if all 8 hold fresh records of live peers, hold none and keep discovering through scans.
- after each publish and on every scan, check our slot. If another peer's fresh record replaced ours:
  the lower endpoint id keeps the slot. The lower id re-publishes once against a given rival; if that
  rival writes over it again (it does not follow this rule), we yield too, so no one ping-pongs.
  A record in our slot whose owner now holds a newer record in another slot is an orphan: re-publish.
- the one who yields moves to another empty or stale slot, or holds none and retries on later scans.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import blake3
import httpx

from cansync.discovery.pkarr_packet import (
    Keypair,
    PkarrError,
    SignedPacket,
    TimestampSource,
    TxtRecord,
    parse_endpoint_id_hex,
)
from cansync.discovery.pkarr_relay import (
    DEFAULT_REQUEST_TIMEOUT,
    PkarrRelayClient,
    PublishOutcome,
    PublishResult,
    Resolution,
    ResolveOutcome,
    ResolveResult,
)

log = logging.getLogger(__name__)

NUM_SLOTS = 8
RECORD_NAME = "_can_sync"
PUBLISH_INTERVAL = 60.0
SCAN_INTERVAL = 15.0
RECORD_TTL = 300

PeerCallback = Callable[[str, int], Awaitable[None] | None]


# --- slot keys ------------------------------------------------------------------------------------------


def slot_seed(passphrase: str, slot: int) -> bytes:
    """The 32-byte Ed25519 seed of slot `slot` (0..7) for `passphrase`."""
    if not 0 <= slot < NUM_SLOTS:
        raise ValueError(f"rendezvous slot must be 0..{NUM_SLOTS - 1}, got {slot}")
    return blake3.blake3(f"can-sync-rendezvous:{passphrase}:{slot}".encode()).digest()


@dataclass(frozen=True)
class SlotKey:
    index: int
    seed: bytes = field(repr=False)
    public_key: bytes
    z32: str

    @property
    def keypair(self) -> Keypair:
        return Keypair(seed=self.seed, public_key=self.public_key)


def slot_keys(passphrase: str) -> list[SlotKey]:
    keys = []
    for index in range(NUM_SLOTS):
        keypair = Keypair.from_seed(slot_seed(passphrase, index))
        keys.append(SlotKey(index, keypair.seed, keypair.public_key, keypair.z32))
    return keys


# --- what a slot holds ------------------------------------------------------------------------------------


class SlotState(StrEnum):
    EMPTY = "empty"  # a relay answered 404 and none had a record
    HELD = "held"  # a fresh record holding an endpoint id
    STALE = "stale"  # a record older than its TTL: free to take
    SQUATTED = "squatted"  # a fresh record that is not a can-sync endpoint id
    UNKNOWN = "unknown"  # no relay gave an answer


@dataclass(frozen=True)
class SlotObservation:
    index: int
    state: SlotState
    endpoint_id: str | None = None
    timestamp: int | None = None
    age_seconds: float | None = None
    squatter_text: str | None = None

    @property
    def claimable(self) -> bool:
        return self.state in (SlotState.EMPTY, SlotState.STALE)


def _record_view(packet: SignedPacket, now: float) -> tuple[str | None, str | None, float, bool]:
    """(endpoint id, squatter text, age, fresh) for one verified slot packet."""
    records = packet.txt(RECORD_NAME)
    age = packet.age_seconds(now)
    ttl = min((r.ttl for r in records), default=min((r.ttl for r in packet.records), default=0))
    endpoint_id = next((eid for r in records if (eid := parse_endpoint_id_hex(r.value)) is not None), None)
    squatter_text = None
    if endpoint_id is None:
        squatter_text = records[0].value if records else f"no {RECORD_NAME} TXT record"
    return endpoint_id, squatter_text, age, age <= ttl


def observe_slot(index: int, resolution: Resolution, now: float) -> SlotObservation:
    packet = resolution.packet
    if packet is None:
        said_empty = any(r.outcome is ResolveOutcome.NOT_FOUND for r in resolution.results)
        return SlotObservation(index, SlotState.EMPTY if said_empty else SlotState.UNKNOWN)
    endpoint_id, squatter_text, age, fresh = _record_view(packet, now)
    if not fresh:
        state = SlotState.STALE
    else:
        state = SlotState.HELD if endpoint_id is not None else SlotState.SQUATTED
    return SlotObservation(index, state, endpoint_id, packet.timestamp, age, squatter_text)


# --- the rendezvous -----------------------------------------------------------------------------------------


class _Decision(StrEnum):
    KEEP = "keep"
    REPUBLISH = "republish"
    MOVE = "move"


class Rendezvous:
    """Claims one slot, keeps it published, and reports every other peer found in the slots."""

    def __init__(
        self,
        passphrase: str,
        endpoint_id_hex: str,
        relays: Sequence[str],
        on_peer: PeerCallback,
        *,
        publish_interval: float = PUBLISH_INTERVAL,
        scan_interval: float = SCAN_INTERVAL,
        ttl: int = RECORD_TTL,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        our_id = parse_endpoint_id_hex(endpoint_id_hex)
        if our_id is None:
            raise ValueError(f"endpoint id must be 64 hex characters, got {endpoint_id_hex!r}")
        if not relays:
            raise ValueError("the rendezvous needs at least one pkarr relay URL (config key pkarr_relays)")
        self.endpoint_id = our_id
        self.claimed_slot: int | None = None
        self._slots = slot_keys(passphrase)  # the passphrase itself is not kept
        self._on_peer = on_peer
        self._publish_interval = publish_interval
        self._scan_interval = scan_interval
        self._ttl = ttl
        self._clock = clock
        self._client = PkarrRelayClient(relays, http=http, request_timeout=request_timeout)
        self._timestamps = TimestampSource(clock)
        self._latest: dict[int, SlotObservation] = {}
        self._reasserted: set[tuple[int, str]] = set()
        self._logged_once: set[tuple[object, ...]] = set()
        self._relay_trouble: dict[str, str] = {}
        self._told_slotless: str | None = None  # why we hold no slot, as last logged (said once per reason)

    @property
    def slots(self) -> list[SlotKey]:
        return list(self._slots)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Rendezvous:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Scan and publish until cancelled. Relay trouble is logged and retried, never raised."""
        loop = asyncio.get_running_loop()
        try:
            await self._guarded(self.scan_once)  # the first scan also claims and publishes
            next_publish = loop.time() + self._publish_interval
            next_scan = loop.time() + self._scan_interval
            while True:
                await asyncio.sleep(max(0.0, min(next_publish, next_scan) - loop.time()))
                now = loop.time()
                if now >= next_publish:
                    await self._guarded(self.publish_once)
                    next_publish = loop.time() + self._publish_interval
                if now >= next_scan:
                    await self._guarded(self.scan_once)
                    next_scan = loop.time() + self._scan_interval
        finally:
            await self.aclose()

    async def _guarded(self, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except (httpx.HTTPError, PkarrError, OSError) as exc:
            log.warning("rendezvous: %s failed (%s); trying again next round", step.__name__, exc)
        except Exception:  # keep discovering whatever a relay or a callback did; the traceback says what
            log.exception("rendezvous: unexpected error in %s; trying again next round", step.__name__)

    # -- scanning ---------------------------------------------------------------------------------------

    async def scan_once(self) -> dict[int, str | None]:
        """Read all 8 slots; report other peers; claim or defend our slot. Returns slot -> fresh id or None.

        The map includes our own id where we hold a slot; `on_peer` is only called for the others.
        """
        observations = await self._observe_all()
        found = {i: (o.endpoint_id if o.state is SlotState.HELD else None) for i, o in observations.items()}
        for index, endpoint_id in found.items():
            if endpoint_id is not None and endpoint_id != self.endpoint_id:
                await self._report_peer(endpoint_id, index)
        if self.claimed_slot is None:
            if await self._claim(exclude=set()) is not None:
                await self._publish_and_verify()
        else:
            decision = self._judge(observations[self.claimed_slot])
            if decision is not _Decision.KEEP:
                await self._act(decision)
        return found

    async def _observe_all(self) -> dict[int, SlotObservation]:
        resolutions = await asyncio.gather(*(self._client.resolve(s.public_key) for s in self._slots))
        now = self._clock()
        self._note_relay_health(r for res in resolutions for r in res.results)
        observations = {}
        for slot, resolution in zip(self._slots, resolutions, strict=True):
            self._log_bad_answers(slot, resolution)
            observations[slot.index] = observe_slot(slot.index, resolution, now)
        self._latest = observations
        return observations

    async def _observe(self, index: int) -> SlotObservation:
        resolution = await self._client.resolve(self._slots[index].public_key)
        self._note_relay_health(resolution.results)
        self._log_bad_answers(self._slots[index], resolution)
        observation = observe_slot(index, resolution, self._clock())
        self._latest[index] = observation
        return observation

    async def _report_peer(self, endpoint_id: str, slot: int) -> None:
        try:
            result = self._on_peer(endpoint_id, slot)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the callback is the caller's code: its failure must not stop discovery
            log.exception("rendezvous: on_peer callback failed for peer %s (slot %d)", endpoint_id, slot)

    # -- publishing -------------------------------------------------------------------------------------

    async def publish_once(self) -> int | None:
        """Publish our record (claiming a slot first if we hold none); the slot now held, or None."""
        if self.claimed_slot is None:
            if not self._latest:
                await self._observe_all()
            if await self._claim(exclude=set()) is None:
                return None
        return await self._publish_and_verify()

    async def _publish(self, index: int) -> list[PublishResult]:
        slot = self._slots[index]
        record = TxtRecord(RECORD_NAME, self.endpoint_id, self._ttl)
        packet = SignedPacket.build(slot.keypair, [record], self._timestamps.next(slot.public_key))
        results = await self._client.publish(packet)
        self._note_relay_health(results)
        return results

    async def _publish_and_verify(self) -> int | None:
        """Publish to the claimed slot, then read it back and act on what is there (bounded retries)."""
        for _ in range(2 * NUM_SLOTS):
            index = self.claimed_slot
            if index is None:
                return None
            results = await self._publish(index)
            if all(r.status is None for r in results):
                return None  # no relay reachable: keep the claim, try again next round
            stored = any(r.outcome is PublishOutcome.STORED for r in results)
            observation = await self._observe(index)
            decision = self._judge(observation)
            if decision is _Decision.KEEP:
                return index if stored or observation.endpoint_id == self.endpoint_id else None
            if decision is _Decision.REPUBLISH and not stored and observation.claimable:
                return None  # the relays are not taking writes right now: next round, not a tight loop
            if decision is _Decision.MOVE and await self._claim(exclude={index}) is None:
                return None
        return self.claimed_slot

    async def _act(self, decision: _Decision) -> None:
        if decision is _Decision.MOVE:
            previous = self.claimed_slot
            if await self._claim(exclude={previous} if previous is not None else set()) is None:
                return
        await self._publish_and_verify()

    # -- slot policy ------------------------------------------------------------------------------------

    def _judge(self, observation: SlotObservation) -> _Decision:
        """What to do about our claimed slot given what it holds now."""
        index = observation.index
        if observation.state is SlotState.UNKNOWN:
            return _Decision.KEEP
        if observation.state is SlotState.HELD and observation.endpoint_id == self.endpoint_id:
            return _Decision.KEEP
        if observation.state in (SlotState.EMPTY, SlotState.STALE):
            return _Decision.REPUBLISH  # the relay lost it or we fell behind: put it back now
        if observation.state is SlotState.SQUATTED:
            log.warning("rendezvous: slot %d was overwritten by a non-can-sync record; moving", index)
            return _Decision.MOVE
        rival = observation.endpoint_id
        assert rival is not None
        if self._rival_moved_on(rival, observation):
            return _Decision.REPUBLISH
        if self.endpoint_id < rival and (index, rival) not in self._reasserted:
            self._reasserted.add((index, rival))
            log.info("rendezvous: peer %s wrote over our slot %d; the lower id keeps it, re-publishing", rival, index)
            return _Decision.REPUBLISH
        log.info("rendezvous: peer %s holds our slot %d; moving to another slot", rival, index)
        return _Decision.MOVE

    def _rival_moved_on(self, rival: str, in_our_slot: SlotObservation) -> bool:
        """True when the rival holds a newer fresh record elsewhere: the one in our slot is an orphan."""
        for other in self._latest.values():
            if (
                other.index != in_our_slot.index
                and other.state is SlotState.HELD
                and other.endpoint_id == rival
                and (other.timestamp or 0) > (in_our_slot.timestamp or 0)
            ):
                return True
        return False

    def _preference(self, index: int) -> bytes:
        # Spread first choices: each peer ranks the empty slots in its own pseudo-random order.
        return blake3.blake3(f"{self.endpoint_id}:{index}".encode()).digest()

    def _choose(self, observations: dict[int, SlotObservation], exclude: set[int]) -> int | None:
        candidates = [o for i, o in observations.items() if i not in exclude]
        ours = [o for o in candidates if o.endpoint_id == self.endpoint_id and o.state is not SlotState.UNKNOWN]
        if ours:
            return max(ours, key=lambda o: o.timestamp or 0).index
        empty = [o.index for o in candidates if o.state is SlotState.EMPTY]
        if empty:
            return min(empty, key=self._preference)
        stale = [o for o in candidates if o.state is SlotState.STALE]
        if stale:
            return min(stale, key=lambda o: (o.timestamp or 0, self._preference(o.index))).index
        return None

    async def _claim(self, exclude: set[int]) -> int | None:
        """Pick a free slot (re-reading it first so we do not write over a peer that just took it)."""
        excluded = set(exclude)
        while True:
            choice = self._choose(self._latest, excluded)
            if choice is None:
                break
            observation = await self._observe(choice)
            if observation.claimable or observation.endpoint_id == self.endpoint_id:
                if self.claimed_slot != choice:
                    log.info("rendezvous: claiming slot %d (pk:%s)", choice, self._slots[choice].z32)
                self.claimed_slot = choice
                self._reasserted.clear()
                self._told_slotless = None
                return choice
            excluded.add(choice)
        self.claimed_slot = None
        self._reasserted.clear()
        why = self._why_slotless()
        if self._told_slotless != why:
            self._told_slotless = why
            if why.startswith("no pkarr relay"):
                log.warning("rendezvous: %s; holding no slot and retrying on each scan", why)
            else:
                log.info("rendezvous: %s; discovering without one and retrying on each scan", why)
        return None

    def _why_slotless(self) -> str:
        """Say what kept us from a slot: relays that cannot be read are not slots full of live peers."""
        states = [o.state for o in self._latest.values()]
        unread = states.count(SlotState.UNKNOWN)
        if len(states) < NUM_SLOTS or unread == NUM_SLOTS:
            relays = ", ".join(
                f"{relay} ({self._relay_trouble[relay]})" if relay in self._relay_trouble else relay
                for relay in self._client.relays
            )
            return (
                f"no pkarr relay answered: none of the {NUM_SLOTS} slots could be read (relays unreachable: {relays})"
            )
        if unread == 0:
            return f"no free slot: all {NUM_SLOTS} slots hold live peers"
        return f"no free slot: {NUM_SLOTS - unread} slots hold live peers and {unread} could not be read"

    # -- logging ----------------------------------------------------------------------------------------

    def _log_once(self, key: tuple[object, ...], message: str, *args: object) -> None:
        if key not in self._logged_once:
            self._logged_once.add(key)
            log.warning(message, *args)

    def _log_bad_answers(self, slot: SlotKey, resolution: Resolution) -> None:
        for result in resolution.results:
            if result.outcome is ResolveOutcome.INVALID:
                self._log_once(
                    ("invalid", slot.index, result.relay, result.detail),
                    "rendezvous: relay %s gave an invalid record for slot %d (pk:%s): %s; ignoring it",
                    result.relay,
                    slot.index,
                    slot.z32,
                    result.detail,
                )
        packet = resolution.packet
        if packet is not None:
            endpoint_id, squatter_text, _age, _fresh = _record_view(packet, self._clock())
            if endpoint_id is None:
                self._log_once(
                    ("squatter", slot.index, packet.timestamp),
                    "rendezvous: slot %d (pk:%s) holds a record that is not a can-sync endpoint id (%r); ignoring it",
                    slot.index,
                    slot.z32,
                    (squatter_text or "")[:80],
                )

    def _note_relay_health(self, results: Iterable[PublishResult | ResolveResult]) -> None:
        """Log when a relay starts failing and when it recovers, not on every request."""
        troubles: dict[str, str] = {}
        healthy: set[str] = set()
        for result in results:
            failing = result.outcome in (
                PublishOutcome.UNAVAILABLE,
                PublishOutcome.RATE_LIMITED,
                ResolveOutcome.UNAVAILABLE,
                ResolveOutcome.RATE_LIMITED,
            )
            if failing:
                status = f"HTTP {result.status}" if result.status is not None else ""
                troubles.setdefault(result.relay, " ".join(p for p in (status, result.detail) if p) or "failed")
            else:
                healthy.add(result.relay)
        for relay, detail in troubles.items():
            if relay in healthy:
                continue
            if relay not in self._relay_trouble:
                log.warning("rendezvous: pkarr relay %s is failing (%s); will keep trying", relay, detail)
            self._relay_trouble[relay] = detail
        for relay in healthy:
            if self._relay_trouble.pop(relay, None) is not None:
                log.info("rendezvous: pkarr relay %s answers again", relay)


# --- a one-shot look at the slots, for the CLI ------------------------------------------------------------


@dataclass(frozen=True)
class RelaySlotAnswer:
    relay: str
    status: str  # found | empty | squatted | invalid | unreachable | rate_limited | refused
    http_status: int | None = None
    endpoint_id: str | None = None
    age_seconds: float | None = None
    fresh: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class SlotReport:
    index: int
    public_key_z32: str
    answers: tuple[RelaySlotAnswer, ...]


def _answer(result: ResolveResult, now: float) -> RelaySlotAnswer:
    outcome = result.outcome
    if outcome is ResolveOutcome.FOUND and result.packet is not None:
        endpoint_id, squatter_text, age, fresh = _record_view(result.packet, now)
        if endpoint_id is None:
            return RelaySlotAnswer(result.relay, "squatted", result.status, None, age, fresh, squatter_text or "")
        return RelaySlotAnswer(result.relay, "found", result.status, endpoint_id, age, fresh)
    status = {
        ResolveOutcome.NOT_FOUND: "empty",
        ResolveOutcome.INVALID: "invalid",
        ResolveOutcome.RATE_LIMITED: "rate_limited",
        ResolveOutcome.REJECTED: "refused",
        ResolveOutcome.UNAVAILABLE: "unreachable",
    }.get(outcome, "unreachable")
    return RelaySlotAnswer(result.relay, status, result.status, detail=result.detail)


async def resolve_slots(
    passphrase: str,
    relays: Sequence[str],
    http: httpx.AsyncClient | None = None,
    *,
    clock: Callable[[], float] = time.time,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> list[SlotReport]:
    """Ask every relay about every slot once; one report per slot with each relay's answer."""
    keys = slot_keys(passphrase)
    async with PkarrRelayClient(relays, http=http, request_timeout=request_timeout) as client:
        resolutions = await asyncio.gather(*(client.resolve(k.public_key) for k in keys))
    now = clock()
    return [
        SlotReport(key.index, key.z32, tuple(_answer(r, now) for r in resolution.results))
        for key, resolution in zip(keys, resolutions, strict=True)
    ]
