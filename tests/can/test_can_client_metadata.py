"""CanClient.metadata: records without content, through /sync/pull with meta_only."""

from __future__ import annotations

import httpx

from cansync.can import CanClient
from tests.helpers.assets import ingest
from tests.helpers.store_process import StoreProcess


async def test_metadata_returns_records_without_content_and_skips_unknown(store: StoreProcess, client: CanClient):
    first = ingest(store.api, b"x" * 5000, "one.txt", tags="red,blue")
    second = ingest(store.api, b"y" * 70, "two.txt")
    httpx.post(f"{store.api}/asset/{second}/trash").raise_for_status()
    unknown = "0" * 64
    records = await client.metadata([first, unknown, second])
    assert [r.hash for r in records] == [first, second]
    assert records[0].size == 5000 and sorted(records[0].tags) == ["blue", "red"]
    assert records[1].trashed is True and records[1].meta_updated_ms > 0
    # the content still comes whole through a normal pull afterwards: the meta-only answer left no bytes behind
    async with client.pull([first]) as assets:
        contents = [b"".join([chunk async for chunk in asset.content()]) async for asset in assets]
    assert contents == [b"x" * 5000]
