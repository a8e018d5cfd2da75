"""Paged /sync/hashes on a real store process: `limit` with the change clock as the cursor.

A client that pages with since = the last watermark sees every asset under its latest change, misses
none and repeats none that did not change, even while the store keeps changing between pages; the last
page carries the store's clock, as an unpaged answer does; without a limit the answer is as before.
"""

from __future__ import annotations

import httpx
import pytest

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import StoreProcess


async def ingest(http: httpx.AsyncClient, store: StoreProcess, name: str) -> str:
    response = await http.post(f"{store.api}/ingest", files={"file": (f"{name}.txt", f"paged {name}".encode())})
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["hash"])


async def hashes(
    http: httpx.AsyncClient, store: StoreProcess, headers: dict, **params: int
) -> can_sync_pb2.HashesResponse:
    response = await http.post(f"{store.url}/sync/hashes", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return can_sync_pb2.HashesResponse.FromString(response.content)


async def test_pages_follow_the_change_clock_and_the_last_carries_the_store_clock(store, http, sync_headers) -> None:
    created = [await ingest(http, store, f"a{i}") for i in range(7)]
    await http.post(f"{store.api}/asset/{created[1]}/trash")  # changed_seq 8: created[1] moves to the end
    whole = await hashes(http, store, sync_headers)
    assert not whole.more and whole.watermark == 8
    order = [d.hash for d in whole.assets]
    assert order == created[:1] + created[2:] + created[1:2]

    pages = []
    since = 0
    while True:
        page = await hashes(http, store, sync_headers, since=since, limit=3)
        pages.append(page)
        if not page.more:
            break
        assert page.watermark == page.assets[-1].changed_seq  # a cut page: the cursor is its last digest
        since = page.watermark
    assert [len(p.assets) for p in pages] == [3, 3, 1]
    assert [p.more for p in pages] == [True, True, False]
    assert pages[-1].watermark == 8  # the clock, as the unpaged answer gives it
    assert [d.hash for p in pages for d in p.assets] == order
    assert [d for p in pages for d in p.assets] == list(whole.assets)


async def test_a_page_that_ends_exactly_at_the_last_asset_says_no_more(store, http, sync_headers) -> None:
    for i in range(4):
        await ingest(http, store, f"b{i}")
    page = await hashes(http, store, sync_headers, limit=4)
    assert len(page.assets) == 4 and not page.more and page.watermark == 4
    empty = await hashes(http, store, sync_headers, since=4, limit=10)
    assert list(empty.assets) == [] and not empty.more and empty.watermark == 4


async def test_the_limit_in_the_body_pages_too_and_the_query_wins(store, http, sync_headers) -> None:
    for i in range(5):
        await ingest(http, store, f"c{i}")
    body = can_sync_pb2.HashesRequest(since=1, limit=2).SerializeToString()
    response = await http.post(f"{store.url}/sync/hashes", content=body, headers=sync_headers)
    page = can_sync_pb2.HashesResponse.FromString(response.content)
    assert [d.changed_seq for d in page.assets] == [2, 3] and page.more and page.watermark == 3
    response = await http.post(f"{store.url}/sync/hashes", params={"limit": 1}, content=body, headers=sync_headers)
    page = can_sync_pb2.HashesResponse.FromString(response.content)
    assert [d.changed_seq for d in page.assets] == [2] and page.more and page.watermark == 2


async def test_paging_while_the_store_changes_misses_nothing_and_repeats_only_changes(
    store, http, sync_headers
) -> None:
    first = [await ingest(http, store, f"d{i}") for i in range(6)]
    seen: dict[str, list[int]] = {}
    since, pages = 0, 0
    while True:
        page = await hashes(http, store, sync_headers, since=since, limit=2)
        for digest in page.assets:
            seen.setdefault(digest.hash, []).append(digest.changed_seq)
        pages += 1
        if pages == 1:
            # between pages: a new asset, a change to an asset already listed, and to one not yet listed
            await ingest(http, store, "late")
            await http.post(f"{store.api}/asset/{first[0]}/trash")
            await http.post(f"{store.api}/asset/{first[4]}/trash")
        if not page.more:
            break
        since = page.watermark
    final = await hashes(http, store, sync_headers)
    assert page.watermark == final.watermark  # nothing changed after the last page
    # every asset, at its latest changed_seq, as one answer now would list it
    assert {h: seqs[-1] for h, seqs in seen.items()} == {d.hash: d.changed_seq for d in final.assets}
    assert seen[first[0]] == [1, 8]  # listed, changed after it was listed: listed again, newer
    assert len(seen[first[4]]) == 1  # changed before its page came: listed once, at its new seq
    assert all(len(seqs) == 1 for h, seqs in seen.items() if h != first[0])


@pytest.mark.parametrize("limit", ["-1", "abc", "1.5", ""])
async def test_a_bad_limit_is_refused_with_a_400(store, http, sync_headers, limit: str) -> None:
    response = await http.post(f"{store.url}/sync/hashes", params={"limit": limit}, headers=sync_headers)
    assert response.status_code == 400, response.text
    assert "limit" in response.json()["error"]
    body = can_sync_pb2.HashesRequest(limit=-5).SerializeToString()
    response = await http.post(f"{store.url}/sync/hashes", content=body, headers=sync_headers)
    assert response.status_code == 400 and "limit" in response.json()["error"]


async def test_limit_zero_means_no_limit(store, http, sync_headers) -> None:
    for i in range(3):
        await ingest(http, store, f"e{i}")
    page = await hashes(http, store, sync_headers, limit=0)
    assert len(page.assets) == 3 and not page.more and page.watermark == 3
