"""The store's one hash rule: an asset's id is the lower-case hex SHA-256 of its content.

Everything that computes or checks an asset id goes through this module, so a different rule (the
original CAN Service may hash the timestamp too) is a change in one place.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

HASH_HEX_LENGTH = 64
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


class ContentHasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_content_hasher() -> ContentHasher:
    """A hasher to feed the content in chunks; its hexdigest() is the asset id."""
    return hashlib.sha256()


def content_hash(data: bytes) -> str:
    """The asset id of a small content held in memory (ingest/data, tests)."""
    hasher = new_content_hasher()
    hasher.update(data)
    return hasher.hexdigest()


def is_asset_hash(value: str) -> bool:
    """True when value has the form of an asset id (64 lower-case hex digits)."""
    return bool(_HASH_PATTERN.fullmatch(value))
