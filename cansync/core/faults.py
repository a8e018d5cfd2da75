"""Whose fault a failed transfer is, and what happens to its staged bytes.

The shells report what went wrong in their own terms (`Failure`); this table alone turns that into
the fault that decides strikes and retries (`events.Fault`), whether the staged bytes are thrown away,
and whether only the push into our store failed. A peer is charged only for what its bytes or its
answers got wrong: a cut link, a slow stream or our own disk never count against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cansync.core.events import Direction, Event, Fault, TransferFailed


class Failure(StrEnum):
    CONTENT_MISMATCH = "content_mismatch"  # all bytes arrived and hash to something else
    OVERRUN = "overrun"  # more bytes than the header said
    MALFORMED_STREAM = "malformed_stream"  # a frame a transfer stream may not carry, or a cut-short stream
    UNAVAILABLE = "unavailable"  # the peer said it cannot serve what it advertised
    PEER_TROUBLE = "peer_trouble"  # the peer cannot serve it now: its store failed or its stream broke
    STALLED = "stalled"  # nothing arrived for the stall limit
    LINK_LOST = "link_lost"  # the stream or connection went away
    STAGING_FAILED = "staging_failed"  # our disk refused the bytes (full, read-only)
    STAGING_LOST = "staging_lost"  # our staged file is gone or shorter than its checkpoint
    STORE_UNAVAILABLE = "store_unavailable"  # our store is down or failed on its side
    STORE_REFUSED = "store_refused"  # our store refused the verified asset (the sender's record is bad)
    SOURCE_UNAVAILABLE = "source_unavailable"  # sending: our store could not give us the asset


@dataclass(frozen=True, slots=True)
class Verdict:
    fault: Fault
    discard: bool  # throw the staged bytes away: the next request starts at byte 0
    stage: str  # "transfer", or "store" when the bytes were verified and only the push failed
    defer: bool  # asking again at once would most likely fail the same way: wait a little first


_VERDICTS = {
    Failure.CONTENT_MISMATCH: Verdict(Fault.PEER, True, "transfer", False),
    Failure.OVERRUN: Verdict(Fault.PEER, True, "transfer", False),
    Failure.MALFORMED_STREAM: Verdict(Fault.PEER, False, "transfer", False),
    Failure.UNAVAILABLE: Verdict(Fault.PEER, False, "transfer", True),
    Failure.PEER_TROUBLE: Verdict(Fault.LINK, False, "transfer", True),  # a true answer: no strike
    Failure.STALLED: Verdict(Fault.LINK, False, "transfer", False),
    Failure.LINK_LOST: Verdict(Fault.LINK, False, "transfer", False),
    Failure.STAGING_FAILED: Verdict(Fault.OURS, False, "transfer", True),
    Failure.STAGING_LOST: Verdict(Fault.OURS, True, "transfer", False),
    Failure.STORE_UNAVAILABLE: Verdict(Fault.OURS, False, "store", True),
    Failure.STORE_REFUSED: Verdict(Fault.PEER, True, "store", False),
    Failure.SOURCE_UNAVAILABLE: Verdict(Fault.OURS, False, "transfer", True),
}


def verdict(failure: Failure) -> Verdict:
    return _VERDICTS[failure]


def failed_transfer(peer: str, asset: str, direction: Direction, failure: Failure, reason: str) -> Event:
    """The `transfer_failed` event of a failure, judged by the table above."""
    judged = _VERDICTS[failure]
    payload = TransferFailed(direction, reason, judged.fault, judged.discard, judged.stage, judged.defer)
    return Event.of(payload, peer=peer, hash=asset)
