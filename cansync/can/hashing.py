"""The store's id rule as the agent sees it: an asset's digest is the SHA-256 of its content.

The original CAN Service's rule was not recoverable (it may hash the timestamp too); this is the one
place to change if a real store turns out to differ. Digests from a store are otherwise opaque ids.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

HASH_RULE_NAME = "sha256(content)"


class ContentHasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_content_hasher() -> ContentHasher:
    return hashlib.sha256()
