"""Our set of assets as a reconciliation needs it (sorted 32-byte digests with range fingerprints), kept
between meetings: building it for a million assets takes a second or more, and a first meeting with
several peers, or one right after start, should not pay that each time.

The set is taken from the journal's view of our store, together with the journal seq it was taken at;
a reconciliation counts anything that became ours after that seq as unknown to the peer, so an older
set is never wrong, only less exact. It is rebuilt when our assets have changed since.
"""

from __future__ import annotations

import asyncio

from cansync.core.machine import SyncState
from cansync.core.reconcile import DigestSet


class OwnDigestSet:
    def __init__(self) -> None:
        self._built: tuple[DigestSet, int, int, int] | None = None  # set, base seq, assets, store watermark
        self._lock = asyncio.Lock()

    async def get(self, state: SyncState) -> tuple[DigestSet, int, int]:
        """(the set, the journal seq it was taken at, our store's clock then), rebuilt if our assets changed."""
        async with self._lock:
            built = self._built
            if built is None or built[2] != len(state.local):
                ids, base_seq, watermark = state.local.raw_ids(), state.last_seq, state.store_watermark
                digests = await asyncio.to_thread(_digest_set, ids)
                built = self._built = (digests, base_seq, len(ids), watermark)
            return built[0], built[1], built[3]


def _digest_set(ids: list[bytes]) -> DigestSet:
    """Blocking: runs in a worker thread."""
    return DigestSet(ids)
