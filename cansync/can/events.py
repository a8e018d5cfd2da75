"""What the store's /sync/events stream tells the agent."""

from __future__ import annotations

from dataclasses import dataclass

NEW_ASSET = "new_asset"  # an ingest or an accepted push
META_CHANGED = "meta_changed"  # tags, description or trash state changed


@dataclass(frozen=True)
class StoreEvent:
    kind: str  # NEW_ASSET or META_CHANGED
    hash: str
    changed_seq: int  # the store's change clock; resume with since=<this>
    timestamp: int | None = None  # the asset's timestamp (ms), on NEW_ASSET
