"""A store's answer is freed when the caller drops it, not when the cycle collector next runs.

httpx's Response and its stream wrapper point at each other (encode/httpx#3733), so a body kept on the
Response lives as long as that cycle. On an agent holding millions of objects the collector's full pass is
rare, and a million-asset store's hash pages stayed resident (about 40 MB after a first meeting)."""

from __future__ import annotations

import gc
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from cansync.can import CanClient
from cansync.wire.pb import can_sync_pb2

ASSETS = 1500  # a page of them is about 120 KB


@contextmanager
def collector_off(garbage: list[object]) -> Iterator[None]:
    """Run the block with the cycle collector off, then put in `garbage` what only it could have freed."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage += gc.garbage
        gc.garbage.clear()
        gc.set_debug(0)
        gc.enable()


def bytes_held_by(garbage: list[object]) -> int:
    """The size of the bytes objects that cyclic garbage points at (what a pending cycle keeps resident)."""
    seen: set[int] = set()
    total = 0
    for obj in garbage:
        for referent in gc.get_referents(obj):
            if isinstance(referent, bytes | bytearray) and id(referent) not in seen:
                seen.add(id(referent))
                total += sys.getsizeof(referent)
    return total


async def test_answers_are_not_kept_alive_by_a_cycle(client: CanClient) -> None:
    contents = [f"memory {i}".encode() for i in range(ASSETS)]
    metas = [can_sync_pb2.AssetMeta(hash=hashlib.sha256(c).hexdigest(), size=len(c), timestamp=1) for c in contents]
    await client.push_batch(list(zip(metas, contents, strict=True)))
    pages: list[int] = []
    garbage: list[object] = []
    with collector_off(garbage):
        for _ in range(3):
            pages += [len(page.assets) async for page in client.hashes_pages(0, page_size=ASSETS)]
        records = await client.metadata([m.hash for m in metas])
    assert pages == [ASSETS] * 3 and len(records) == ASSETS
    held = bytes_held_by(garbage)
    garbage.clear()
    # each of these answers is over 100 KB: one body kept by a cycle is seen at once
    assert held < 16 * 1024, f"{held} bytes of the store's answers waited for the cycle collector"
