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
