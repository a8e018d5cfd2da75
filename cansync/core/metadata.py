"""Metadata (tags, description, trash) as a last-writer-wins register.

The later `updated_ms` wins; a tie goes to the larger origin endpoint id. Because the order is total,
folding the same changes in any arrival order settles on the same value on every peer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MetaValue:
    updated_ms: int
    origin: str
    tags: tuple[str, ...] = ()
    description: str = ""
    trashed: bool = False

    @property
    def order_key(self) -> tuple[int, str, tuple[str, ...], str, bool]:
        # updated_ms then origin decide; the rest only breaks ties between two different edits that
        # claim the same clock and origin, so even that case settles identically everywhere.
        return (self.updated_ms, self.origin, self.tags, self.description, self.trashed)

    def beats(self, other: MetaValue | None) -> bool:
        return other is None or self.order_key > other.order_key

    def to_data(self) -> dict[str, Any]:
        return {
            "updated_ms": self.updated_ms,
            "origin": self.origin,
            "tags": list(self.tags),
            "description": self.description,
            "trashed": self.trashed,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> MetaValue:
        return cls(
            updated_ms=int(data["updated_ms"]),
            origin=str(data.get("origin", "")),
            tags=tuple(str(t) for t in data.get("tags", ())),
            description=str(data.get("description", "")),
            trashed=bool(data.get("trashed", False)),
        )
