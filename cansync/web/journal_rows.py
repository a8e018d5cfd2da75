"""The dashboard's audit: journal events as flat rows, found by hash prefix, peer and kind.

A running agent's AgentView.journal_rows can be this function over its own Journal.
"""

from __future__ import annotations

from typing import Any

from cansync.core.events import Event, EventKind
from cansync.journal.inspect import transfer_outcome
from cansync.journal.recorder import Journal

JOURNAL_ROW_KEYS = ("seq", "time_ms", "kind", "peer", "hash", "direction", "verified", "outcome", "size", "reason")
MAX_ROWS = 500
_KINDS = frozenset(k.value for k in EventKind)
_HEX = frozenset("0123456789abcdef")


async def journal_rows(
    journal: Journal, *, hash_prefix: str | None, peer: str | None, kind: str | None, limit: int
) -> list[dict[str, Any]]:
    """Matching events, newest first, at most `limit` (capped at MAX_ROWS). ValueError for a bad filter."""
    hash_prefix = _hex_filter("hash", hash_prefix)
    peer = _hex_filter("peer", peer)
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(sorted(_KINDS))}, got {kind!r}")
    events = await journal.latest_matching(
        hash_prefix=hash_prefix,
        peer_prefix=peer,
        kinds=None if kind is None else [kind],
        limit=max(1, min(limit, MAX_ROWS)),
    )
    return [journal_row(event) for event in events]


def journal_row(event: Event) -> dict[str, Any]:
    """One event as the audit shows it: who, what, which way, and whether what arrived was verified."""
    data = event.data
    direction = data.get("direction")
    verified: bool | None = None
    if event.kind is EventKind.ASSET_RECEIVED:
        direction, verified = "in", True  # the received-from-peer mark: verified and in our store
    elif event.kind is EventKind.TRANSFER_COMPLETED and direction == "in":
        verified = bool(data.get("verified", False))
    size = data.get("size")
    reason = data.get("reason")
    return {
        "seq": event.seq,
        "time_ms": event.time_ms,
        "kind": str(event.kind),
        "peer": event.peer,
        "hash": event.hash,
        "direction": direction if direction in ("in", "out") else None,
        "verified": verified,
        "outcome": transfer_outcome(str(event.kind), direction, verified),
        "size": size if isinstance(size, int) and not isinstance(size, bool) else None,
        "reason": None if reason is None else str(reason),
    }


def _hex_filter(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        return None
    if len(value) > 64 or not set(value) <= _HEX:
        raise ValueError(f"{name} must be hex (a prefix of at most 64 characters), got {value[:70]!r}")
    return value
