"""Range-based set reconciliation of two sets of asset digests, sans-io: what two peers say to each other at
their first meeting so that each learns which ids the other holds that it lacks, at a cost that follows
the size of the difference rather than the size of the sets.

The problem
-----------
Two agents meet for the first time (or one has lost its watermark for the other). Each holds a set of
asset ids: SHA-256 digests, 32 bytes each. Until both know the difference, the naive answer is to send
every id; at a million assets that is 32 MB of bare ids each way even when the stores are identical.
The watermark path (`DigestRequest(since=...)`) carries deltas after a first meeting; this module
replaces the full exchange of that first meeting.

The protocol
------------
Both sides keep their ids sorted (`DigestSet`). A *range* is a half-open interval `[lower, upper)` of the
32-byte key space. A bound is written as a byte prefix of at most 32 bytes, with no trailing zero byte,
standing for that prefix followed by zero bytes; `b""` is the first key and `None`, as an upper bound,
lies past the last key. Raw `bytes` comparison of a 32-byte id with a bound, or of two such bounds, agrees
with the order of the keys they stand for, so the sorted set can be searched with `bisect` directly.

A message (`ReconcileMessage`) carries sorted, disjoint range items and two lists of ids:

- `RangeFingerprint(lower, upper, fingerprint)`: "this is a 16-byte digest of my ids in the range".
  The receiver computes its own. Equal: the range is settled and nothing is said about it again.
  Different: if the receiver holds at most `id_list_threshold` ids there, it answers with a `RangeIds`
  of the range; otherwise it splits the range into `branching` buckets holding equal numbers of *its*
  ids and answers with a fingerprint of each.
- `RangeIds(lower, upper, ids)`: "these are all my ids in the range". The receiver now knows the whole
  difference within the range: ids it lacks (it will request them) and ids the sender lacks (it will
  advertise them). It records both and tells the sender, in the message-level lists below. The range
  is settled.
- `ids_you_lack`: ids the sender holds and the receiver lacks, found by answering a `RangeIds`.
- `ids_i_lack`: ids the receiver listed in a `RangeIds` that the sender lacks.
- `more`: the sender has items still queued that did not fit in this message (see limits below).

The initiator opens with one item over the whole key space: a fingerprint, or its ids if it holds no
more than the threshold. Each side answers every message that carries range items or `more`; a reply
may be empty. A side stops when the message it received asks for nothing and it has nothing queued
(`respond` returns None), or when it has sent a message that asks for nothing and the peer's last
message announced nothing more. At that point `have_not` (ids to request) and `they_lack` (ids to
advertise) are exactly the difference, on both sides.

Why the cost follows the difference
-----------------------------------
Equal sets cost one fingerprint and an empty reply: 1 round trip, 27 bytes encoded. When sets differ,
only ranges whose fingerprints differ are split, and a range differs only if it holds a difference. A
difference of `d` ids among `n` is therefore followed down at most `d` paths of the bucket tree, each of
depth about `log_B(n / T)` for branching `B` and threshold `T`, and each level of a path costs one round
of `B` fingerprints: O(d · B · log_B(n / T)) fingerprints, then at most `d` id lists of about `T` ids.
Near the root the paths share ranges, so the top levels cost `B`, `B²`, ... fingerprints, not `d · B`.

Each side splits by the count of its own ids, so every split divides the splitter's count in the range
by `B`; the two sides alternate, and a range is closed by an id list once either count is at most `T`.
The number of messages is therefore at most about `2 · log_B(n / T) + 4` for any two sets, however the
ids are distributed (splitting by key prefix would be as good for uniform digests, but a run of ids
sharing a long prefix would then cost one round per shared byte).

Parameters
----------
- `branching` B = 16: a split costs `B` fingerprints (about 21 bytes each on the wire) and saves a
  level of depth. With 1,000 differences among a million ids, B = 16 carries the exchange in 0.90 MB
  and 8 messages (20,000 fingerprints, 1,000 id lists of 13,700 ids); B = 8 in 0.57 MB and 9
  messages; B = 32 in 1.16 MB and 7 messages. Bytes and rounds trade evenly over a home uplink
  (0.3 MB at 10 Mbit/s is about one relayed round trip), so the middle is chosen.
- `id_list_threshold` T = 16: a range with at most T of the answerer's ids is settled by listing
  them (32 bytes each) rather than split again. Splitting a range of c ids costs about 21·B + 32·c/B
  bytes and a round; listing costs 32·c. For B = 16 they meet near c = 11; T = 16 saves a round.
  T must be at least 1: a range holding one id would otherwise split into itself forever.
- Limits per message: `MAX_RANGES_PER_MESSAGE` range items, `MAX_IDS_PER_MESSAGE` ids counted over id
  lists and both difference lists. A side whose answer does not fit keeps the rest queued, sends what
  fits with `more` set, and sends the rest in its next messages: bytes do not grow, only rounds, by one
  round trip per `MAX_IDS_PER_MESSAGE` ids of difference (a large difference is bounded by the ids
  themselves, 32 bytes each, and the transfer of the assets dwarfs it).

Fingerprints
------------
The fingerprint of a range is the first 16 bytes of SHA-256 over (the sum of its ids read as 256-bit
big-endian integers, modulo 2^256, as 32 bytes) followed by (the count of its ids, as 8 bytes). The sum
is incremental: `DigestSet` keeps running sums at every 16th id, so any range's fingerprint costs two
running sums, at most 15 id additions each, and one hash, whatever the size of the range.

A sum rather than XOR: XOR cancels in pairs and is linear over GF(2), so a set of ids whose XOR is zero
can be found by Gaussian elimination among a few hundred digests and then vanishes from every XOR
fingerprint. Modular addition has no such shortcut for a handful of ids (it is a k-sum problem), costs
the same in Python, and the count separates sets of different sizes outright. Hashing the pair spreads
every bit of the sum into the 16 bytes sent, so two honest different ranges collide with probability
2^-128.

An adversary who can choose ids (by choosing content) could still, with lattice or generalized-birthday
methods, build two different sets of equal size and equal sum, and so hide a difference from this
exchange. That matters little here: a peer that knows the passphrase is trusted with the contents of
the set anyway (it can simply not advertise an asset, or delete one), and a collision does not corrupt
anything: it only delays detection of that difference until the next full reconciliation. A peer that
breaks the rules outright (claims we lack an id we hold, or that it lacks an id we never had) is
refused with `PeerReconcileError`.

Use in an agent
---------------
At a first meeting with a peer, or when the watermark for that peer is lost, each agent builds a
`DigestSet` of its store's digests (bytes, not hex) and a `Reconciler` over it; the dialing side calls
`initiate()`, then both pass each received message to `respond()` and send what it returns, until it
returns None or `finished` is true. `have_not` feeds the wants and `they_lack` the adverts. Each side
reads its store's change clock before it builds its set and sends it along; the peer keeps it as its
watermark, so anything that changed during the exchange, and every later meeting, travels by `since=`
as today. The messages travel encoded by `cansync.wire.reconcile_codec`.

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

DIGEST_SIZE: Final = 32
FINGERPRINT_SIZE: Final = 16
MAX_RANGES_PER_MESSAGE: Final = 32_768
MAX_IDS_PER_MESSAGE: Final = 32_768  # 1 MiB of ids
DEFAULT_BRANCHING: Final = 16
DEFAULT_ID_LIST_THRESHOLD: Final = 16

_SUM_MODULUS: Final = 1 << (8 * DIGEST_SIZE)
_CHECKPOINT_INTERVAL: Final = 16  # a running sum kept every 16 ids: 1/16 of the memory of a full prefix array


class PeerReconcileError(ValueError):
    """A reconciliation message that breaks the protocol: the peer's fault, and the exchange must end."""


class ReconcilerMisuse(RuntimeError):
    """Our own code called the reconciler out of order (`initiate()` twice, or after the exchange began)."""


# ---------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class RangeFingerprint:
    """The sender's fingerprint of its ids in `[lower, upper)`; `upper` None is past the last key."""

    lower: bytes
    upper: bytes | None
    fingerprint: bytes


@dataclass(frozen=True, slots=True)
class RangeIds:
    """All of the sender's ids in `[lower, upper)`, ascending."""

    lower: bytes
    upper: bytes | None
    ids: tuple[bytes, ...]


RangeItem = RangeFingerprint | RangeIds


@dataclass(frozen=True, slots=True)
class ReconcileMessage:
    """One message of the exchange: range items sorted and disjoint, and ids learned by answering id lists.

    `ids_you_lack`: ids the sender holds that the receiver does not. `ids_i_lack`: ids the receiver listed
    that the sender does not hold. `more`: the sender has queued items that did not fit; answer even if
    nothing else here asks for an answer."""

    ranges: tuple[RangeItem, ...] = ()
    ids_you_lack: tuple[bytes, ...] = ()
    ids_i_lack: tuple[bytes, ...] = ()
    more: bool = False

    @property
    def expects_reply(self) -> bool:
        return bool(self.ranges) or self.more

    @property
    def id_count(self) -> int:
        listed = sum(len(item.ids) for item in self.ranges if isinstance(item, RangeIds))
        return listed + len(self.ids_you_lack) + len(self.ids_i_lack)


def is_bound(value: object) -> bool:
    """True for a bound as messages carry it: at most 32 bytes with no trailing zero byte."""
    return type(value) is bytes and len(value) <= DIGEST_SIZE and not value.endswith(b"\x00")


def bound_below(lower: bytes, upper: bytes | None) -> bool:
    """True when bound `lower` lies strictly below bound `upper` (None is past every key)."""
    return upper is None or lower < upper


def separating_bound(before: bytes, after: bytes) -> bytes:
    """The shortest bound above `before` and at most `after`, for two ids with `before < after`."""
    common = 0
    while before[common] == after[common]:
        common += 1
    return after[: common + 1]  # its last byte exceeds before's byte there, so it is not zero


# ---------------------------------------------------------------------------------------------- the set


class _KeyView(Sequence[bytes]):
    """The ids of a packed blob as a sequence, so `bisect` searches the blob without unpacking it."""

    __slots__ = ("_blob", "_count")

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._count = len(blob) // DIGEST_SIZE

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]  # ints only: bisect never slices
        start = index * DIGEST_SIZE
        return self._blob[start : start + DIGEST_SIZE]


def _fingerprint(total: int, count: int) -> bytes:
    payload = (total % _SUM_MODULUS).to_bytes(DIGEST_SIZE, "big") + count.to_bytes(8, "big")
    return hashlib.sha256(payload).digest()[:FINGERPRINT_SIZE]


class DigestSet:
    """An immutable sorted set of 32-byte digests with the fingerprint of any range.

    The ids are packed in one `bytes` (32 bytes per id, no per-object overhead) with a running sum every
    16th id: about 34 MB for a million ids."""

    __slots__ = ("_blob", "_keys", "_checkpoints")

    def __init__(self, digests: Iterable[bytes]) -> None:
        ordered = sorted(digests if isinstance(digests, set | frozenset) else set(digests))
        if ordered and {len(digest) for digest in ordered} != {DIGEST_SIZE}:
            raise ValueError(f"every digest must be {DIGEST_SIZE} bytes")
        self._blob = b"".join(ordered)
        self._keys = _KeyView(self._blob)
        checkpoints = [0]
        total = 0
        for start in range(0, len(ordered), _CHECKPOINT_INTERVAL):
            total += sum(map(int.from_bytes, ordered[start : start + _CHECKPOINT_INTERVAL]))
            checkpoints.append(total)
        self._checkpoints = checkpoints

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, digest: object) -> bool:
        if type(digest) is not bytes or len(digest) != DIGEST_SIZE:
            return False
        index = bisect.bisect_left(self._keys, digest)
        return index < len(self._keys) and self._keys[index] == digest

    def __iter__(self) -> Iterator[bytes]:
        blob = self._blob
        return (blob[start : start + DIGEST_SIZE] for start in range(0, len(blob), DIGEST_SIZE))

    def key(self, index: int) -> bytes:
        return self._keys[index]

    def keys(self, start: int, stop: int) -> tuple[bytes, ...]:
        """The ids at positions `start` to `stop` (exclusive)."""
        blob = self._blob
        return tuple(blob[at : at + DIGEST_SIZE] for at in range(start * DIGEST_SIZE, stop * DIGEST_SIZE, DIGEST_SIZE))

    def position(self, bound: bytes | None) -> int:
        """How many ids lie below `bound` (all of them for None)."""
        return len(self._keys) if bound is None else bisect.bisect_left(self._keys, bound)

    def positions(self, lower: bytes, upper: bytes | None) -> tuple[int, int]:
        """The positions `start, stop` of the ids in `[lower, upper)`."""
        start = bisect.bisect_left(self._keys, lower)
        stop = len(self._keys) if upper is None else bisect.bisect_left(self._keys, upper, lo=start)
        return start, stop

    def _running_sum(self, stop: int) -> int:
        block, rest = divmod(stop, _CHECKPOINT_INTERVAL)
        total = self._checkpoints[block]
        if rest:
            total += sum(map(int.from_bytes, self.keys(stop - rest, stop)))
        return total

    def fingerprint(self, start: int, stop: int) -> bytes:
        """The 16-byte fingerprint of the ids at positions `start` to `stop` (exclusive)."""
        return _fingerprint(self._running_sum(stop) - self._running_sum(start), stop - start)

    def separator(self, index: int) -> bytes:
        """The shortest bound between the id at `index - 1` and the id at `index` (0 < index < len)."""
        return separating_bound(self._keys[index - 1], self._keys[index])


def fingerprint_of(digests: Iterable[bytes]) -> bytes:
    """The fingerprint of a collection of distinct ids, computed directly (the definition, for checks)."""
    count = 0
    total = 0
    for digest in digests:
        total += int.from_bytes(digest)
        count += 1
    return _fingerprint(total, count)


# ---------------------------------------------------------------------------------------------- the exchange


class Reconciler:
    """One side of one reconciliation, sans-io: messages in, messages out, the difference learned.

    The side that speaks first calls `initiate()` once; both sides then pass every message received to
    `respond()` and send what it returns. When `finished`, `have_not` holds the ids the peer has and we
    lack (to request) and `they_lack` the ids we have and the peer lacks (to advertise)."""

    def __init__(
        self,
        digests: DigestSet,
        *,
        branching: int = DEFAULT_BRANCHING,
        id_list_threshold: int = DEFAULT_ID_LIST_THRESHOLD,
        max_ranges: int = MAX_RANGES_PER_MESSAGE,
        max_ids: int = MAX_IDS_PER_MESSAGE,
    ) -> None:
        if not 2 <= branching <= max_ranges:
            raise ValueError(f"branching must be between 2 and max_ranges ({max_ranges}), got {branching}")
        if not 1 <= id_list_threshold <= max_ids:  # at 0 a range of one id would split into itself, forever
            raise ValueError(f"id_list_threshold must be between 1 and max_ids ({max_ids}), got {id_list_threshold}")
        if not 1 <= max_ranges <= MAX_RANGES_PER_MESSAGE or not 1 <= max_ids <= MAX_IDS_PER_MESSAGE:
            raise ValueError("max_ranges and max_ids must be positive and within the wire limits")
        self._digests = digests
        self._branching = branching
        self._threshold = id_list_threshold
        self._max_ranges = max_ranges
        self._max_ids = max_ids
        self._outbox: deque[RangeItem] = deque()
        self._queued_you_lack: list[bytes] = []
        self._queued_i_lack: list[bytes] = []
        self._have_not: set[bytes] = set()
        self._they_lack: set[bytes] = set()
        self._started = False
        self._finished = False
        self._peer_has_more = False
        self.messages_sent = 0
        self.messages_received = 0

    # ------------------------------------------------------------------ what we learned

    @property
    def finished(self) -> bool:
        """True once neither side has anything more to say."""
        return self._finished

    @property
    def have_not(self) -> frozenset[bytes]:
        """Ids the peer holds that we lack: to request."""
        return frozenset(self._have_not)

    @property
    def they_lack(self) -> frozenset[bytes]:
        """Ids we hold that the peer lacks: to advertise."""
        return frozenset(self._they_lack)

    # ------------------------------------------------------------------ the exchange

    def initiate(self) -> ReconcileMessage:
        """The opening message: one item over the whole key space."""
        if self._started:
            raise ReconcilerMisuse("initiate() is the first call of an exchange, and only once")
        self._started = True
        self._outbox.append(self._describe(b"", None, 0, len(self._digests)))
        return self._next_message()

    def respond(self, message: ReconcileMessage) -> ReconcileMessage | None:
        """Take the peer's message; return ours, or None when the exchange is over and nothing is to be sent."""
        if self._finished:
            raise PeerReconcileError("a reconciliation message arrived after the exchange ended")
        self._started = True
        self.messages_received += 1
        self._peer_has_more = message.more
        self._learn_differences(message)
        for item in message.ranges:
            self._answer(item)
        if not message.expects_reply and not self._has_queued():
            self._finished = True
            return None
        return self._next_message()

    # ------------------------------------------------------------------ inside

    def _learn_differences(self, message: ReconcileMessage) -> None:
        for digest in message.ids_you_lack:
            if digest in self._digests:
                raise PeerReconcileError(f"the peer says we lack {digest.hex()}, which we hold")
        for digest in message.ids_i_lack:
            if digest not in self._digests:
                raise PeerReconcileError(f"the peer says it lacks {digest.hex()}, which we do not hold")
        self._have_not.update(message.ids_you_lack)
        self._they_lack.update(message.ids_i_lack)

    def _answer(self, item: RangeItem) -> None:
        start, stop = self._digests.positions(item.lower, item.upper)
        if isinstance(item, RangeIds):
            self._settle(item, start, stop)
        elif self._digests.fingerprint(start, stop) != item.fingerprint:
            self._outbox.extend(self._split(item.lower, item.upper, start, stop))

    def _settle(self, item: RangeIds, start: int, stop: int) -> None:
        """The peer listed all its ids in a range: the difference there is now known to us; tell the peer."""
        mine = self._digests.keys(start, stop)
        mine_set = set(mine)
        theirs_set = set(item.ids)
        we_lack = [digest for digest in item.ids if digest not in mine_set]
        peer_lacks = [digest for digest in mine if digest not in theirs_set]
        self._have_not.update(we_lack)
        self._they_lack.update(peer_lacks)
        self._queued_i_lack.extend(we_lack)
        self._queued_you_lack.extend(peer_lacks)

    def _describe(self, lower: bytes, upper: bytes | None, start: int, stop: int) -> RangeItem:
        if stop - start <= self._threshold:
            return RangeIds(lower, upper, self._digests.keys(start, stop))
        return RangeFingerprint(lower, upper, self._digests.fingerprint(start, stop))

    def _split(self, lower: bytes, upper: bytes | None, start: int, stop: int) -> list[RangeItem]:
        """Our answer to a range whose fingerprints differ: our ids there, or fingerprints of buckets."""
        count = stop - start
        if count <= self._threshold:
            return [RangeIds(lower, upper, self._digests.keys(start, stop))]
        buckets = min(self._branching, count)
        cuts = [start + (count * bucket) // buckets for bucket in range(buckets + 1)]
        bounds: list[bytes | None] = [lower]
        bounds.extend(self._digests.separator(cut) for cut in cuts[1:-1])
        bounds.append(upper)
        items: list[RangeItem] = []
        for bucket in range(buckets):
            bucket_lower = bounds[bucket]
            assert bucket_lower is not None  # only the last upper bound can be None
            items.append(
                RangeFingerprint(
                    bucket_lower, bounds[bucket + 1], self._digests.fingerprint(cuts[bucket], cuts[bucket + 1])
                )
            )
        return items

    def _has_queued(self) -> bool:
        return bool(self._outbox or self._queued_you_lack or self._queued_i_lack)

    def _next_message(self) -> ReconcileMessage:
        ranges: list[RangeItem] = []
        id_budget = self._max_ids
        while self._outbox and len(ranges) < self._max_ranges:
            item = self._outbox[0]
            cost = len(item.ids) if isinstance(item, RangeIds) else 0
            if cost > id_budget:
                break
            self._outbox.popleft()
            ranges.append(item)
            id_budget -= cost
        ranges.sort(key=lambda item: item.lower)  # disjoint, so ordered by their lower bounds
        you_lack = _take_sorted(self._queued_you_lack, id_budget)
        i_lack = _take_sorted(self._queued_i_lack, id_budget - len(you_lack))
        message = ReconcileMessage(tuple(ranges), you_lack, i_lack, more=self._has_queued())
        self.messages_sent += 1
        if not message.expects_reply and not self._peer_has_more:
            self._finished = True
        return message


def _take_sorted(queue: list[bytes], limit: int) -> tuple[bytes, ...]:
    """Remove up to `limit` ids from the front of `queue` and return them ascending."""
    taken = queue[:limit]
    del queue[:limit]
    taken.sort()
    return tuple(taken)
