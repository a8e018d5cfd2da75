"""bulk_load fills a store root that `cansync store serve` then serves like any other: /sync/hashes
lists every asset, pulls hash right, the index and the files agree, and the records are the ones a
push of the same asset makes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from store_files import asset_files, check_index_matches_files, leftover_temp_files
from test_store_sync_api import push_body, read_pull

from cansync.store.bulk_load import BULK_TIMESTAMP_BASE, bulk_load, synthetic_content, synthetic_record
from cansync.store.root_lock import StoreRootInUse
from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import running_store

HEADERS = {"X-Sync-Key": SYNC_KEY}


def digests(url: str, since: int = 0) -> list[can_sync_pb2.AssetDigest]:
    response = httpx.post(f"{url}/sync/hashes", params={"since": since}, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return list(can_sync_pb2.HashesResponse.FromString(response.content).assets)


def synthetic_hash(number: int) -> str:
    return hashlib.sha256(synthetic_content(number)).hexdigest()


def test_a_loaded_store_is_served_listed_and_pulled_like_any_other(tmp_path: Path) -> None:
    root = tmp_path / "store"
    report = bulk_load(root, range(300))
    assert (report.assets, report.skipped, report.linked, report.watermark) == (300, 0, 0, 300)
    assert check_index_matches_files(root) == 300
    with running_store(root, sync_key=SYNC_KEY) as store:
        listed = digests(store.url)
        assert [d.hash for d in listed] == [synthetic_hash(n) for n in range(300)]
        assert [d.changed_seq for d in listed] == list(range(1, 301))
        assert [d.timestamp for d in listed] == [BULK_TIMESTAMP_BASE + n for n in range(300)]
        pull = can_sync_pb2.PullRequest(hashes=[d.hash for d in listed])
        answer = httpx.post(f"{store.url}/sync/pull", content=pull.SerializeToString(), headers=HEADERS, timeout=30)
        items = read_pull(answer.content)
        assert [(item.hash, hashlib.sha256(content).hexdigest()) for item, content in items] == [
            (d.hash, d.hash) for d in listed
        ]
        # the clock goes on from the load: a push after it is change 301
        content = b"pushed after the bulk load"
        meta = can_sync_pb2.AssetMeta(hash=hashlib.sha256(content).hexdigest(), size=len(content))
        pushed = httpx.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=HEADERS, timeout=30)
        assert can_sync_pb2.PushResult.FromString(pushed.content).meta.changed_seq == 301
        assert [d.hash for d in digests(store.url, since=300)] == [meta.hash]
    assert check_index_matches_files(root) == 301


def test_a_loaded_record_is_the_one_a_push_of_the_same_asset_makes(tmp_path: Path) -> None:
    bulk_load(tmp_path / "loaded", range(5, 8))
    with running_store(tmp_path / "pushed", sync_key=SYNC_KEY) as store:
        for number in range(5, 8):
            content, record = synthetic_content(number), synthetic_record(number)
            meta = can_sync_pb2.AssetMeta(hash=record.hash, size=len(content), timestamp=record.timestamp)
            meta.mime_type, meta.extension = record.mime_type, record.extension
            response = httpx.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=HEADERS)
            assert response.status_code == 200, response.text
    loaded = {p.name for p in asset_files(tmp_path / "loaded")}
    pushed = {p.name for p in asset_files(tmp_path / "pushed")}
    assert loaded == pushed and len(loaded) == 3
    with running_store(tmp_path / "loaded", sync_key=SYNC_KEY) as store:
        request = can_sync_pb2.PullRequest(hashes=[synthetic_hash(6)], meta_only=True)
        response = httpx.post(f"{store.url}/sync/pull", headers=HEADERS, content=request.SerializeToString())
        [(item, _)] = read_pull(response.content)
    assert (item.meta.mime_type, item.meta.extension, item.meta.size) == (
        "application/octet-stream",
        "bin",
        len(synthetic_content(6)),
    )


def test_a_second_store_links_the_files_it_shares_with_the_first(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    bulk_load(first, range(0, 200))
    report = bulk_load(second, range(150, 250), link_from=first)
    assert (report.assets, report.linked) == (100, 50)
    assert check_index_matches_files(second) == 100
    shared = synthetic_record(170).file_name
    assert (first / shared).stat().st_ino == (second / shared).stat().st_ino
    with running_store(second, sync_key=SYNC_KEY) as store:
        assert {d.hash for d in digests(store.url)} == {synthetic_hash(n) for n in range(150, 250)}
    assert check_index_matches_files(first) == 200  # the first store is untouched


def test_loading_more_into_a_store_skips_what_it_holds(tmp_path: Path) -> None:
    root = tmp_path / "store"
    bulk_load(root, range(0, 100))
    report = bulk_load(root, range(80, 130))
    assert (report.assets, report.skipped, report.watermark) == (30, 20, 130)
    assert check_index_matches_files(root) == 130


def test_a_served_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with running_store(root, sync_key=SYNC_KEY), pytest.raises(StoreRootInUse):
        bulk_load(root, range(10))


def test_a_failed_load_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "store"
    bulk_load(root, range(0, 20))
    before = sorted(p.name for p in asset_files(root))
    with pytest.raises(ValueError, match="distinct"):
        bulk_load(root, [30, 31, 32, 31, 33])  # a number twice: the second insert fails it all
    assert sorted(p.name for p in asset_files(root)) == before
    assert leftover_temp_files(root) == [] and check_index_matches_files(root) == 20
    with running_store(root, sync_key=SYNC_KEY) as store:
        assert len(digests(store.url)) == 20
