"""One entry of the store's change clock: what changed (a new asset, or its metadata/trash state)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChangeKind(StrEnum):
    NEW_ASSET = "new_asset"  # an ingest or an accepted push
    META_CHANGED = "meta_changed"  # tags, description or trash state changed


@dataclass(frozen=True)
class Change:
    seq: int  # the store's changed_seq after this change: strictly increasing
    hash: str
    kind: ChangeKind
    timestamp: int  # the asset's timestamp (ms since epoch)


MAX_CHANGE_SEQ = (1 << 63) - 1  # SQLite integers are signed 64-bit


def parse_change_seq(raw: str) -> int:
    """A `since` value from a request: a change clock reading, 0 to 2**63-1. ValueError says what is wrong."""
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"since must be a whole number (a changed_seq), got {raw[:40]!r}") from None
    if not 0 <= value <= MAX_CHANGE_SEQ:
        raise ValueError(f"since must be between 0 and {MAX_CHANGE_SEQ}, got {raw[:40]}")
    return value
