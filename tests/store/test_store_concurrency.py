"""Eight clients ingesting, pushing, trashing and retagging at once: afterwards the index and the files
agree (every file's bytes hash to its name, every index row has its file) and nothing is duplicated."""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
from store_files import check_index_matches_files, index_rows
from test_store_sync_api import push_body

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess

CLIENTS = 8
PER_CLIENT = 6
SHARED = [os.urandom(200_000 + i) for i in range(4)]  # every client sends these: dedupe races


async def one_client(store: StoreProcess, n: int) -> set[str]:
    headers = {"X-Sync-Key": SYNC_KEY}
    sent: set[str] = set()
    async with httpx.AsyncClient(timeout=60.0, trust_env=False) as http:
        for i in range(PER_CLIENT):
            content = os.urandom(50_000 * (i + 1)) + f"client {n} item {i}".encode()
            digest = hashlib.sha256(content).hexdigest()
            if i % 2:
                meta = can_sync_pb2.AssetMeta(
                    hash=digest, timestamp=1_700_000_000_000 + n * 100 + i, size=len(content), tags=[f"c{n}"]
                )
                response = await http.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=headers)
            else:
                response = await http.post(
                    f"{store.api}/ingest", files={"file": (f"{n}-{i}.bin", content)}, data={"tags": f"c{n},even"}
                )
            assert response.status_code == 200, response.text
            sent.add(digest)
        for j, content in enumerate(SHARED):
            digest = hashlib.sha256(content).hexdigest()
            if (n + j) % 2:
                meta = can_sync_pb2.AssetMeta(hash=digest, timestamp=1_600_000_000_000 + j, size=len(content))
                response = await http.post(f"{store.url}/sync/push", content=push_body(meta, content), headers=headers)
            else:
                response = await http.post(f"{store.api}/ingest", files={"file": (f"shared{j}", content)})
            assert response.status_code == 200, response.text
            sent.add(digest)
            # and churn the shared asset's metadata while the others are still writing
            if n % 3 == 0:
                await http.post(f"{store.api}/asset/{digest}/trash")
            elif n % 3 == 1:
                await http.post(f"{store.api}/asset/{digest}/restore")
            else:
                await http.patch(f"{store.api}/asset/{digest}", json={"tags": f"by{n},shared"})
        bad = os.urandom(1000)
        wrong = can_sync_pb2.AssetMeta(hash=hashlib.sha256(b"not it").hexdigest(), size=len(bad))
        response = await http.post(f"{store.url}/sync/push", content=push_body(wrong, bad), headers=headers)
        assert response.status_code == 400
    return sent


async def test_eight_clients_at_once_leave_index_and_files_in_agreement(store: StoreProcess) -> None:
    results = await asyncio.gather(*(one_client(store, n) for n in range(CLIENTS)))
    expected = set().union(*results)
    assert len(expected) == CLIENTS * PER_CLIENT + len(SHARED)
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
        listed = (await http.get(f"{store.api}/list", params={"include_trashed": "true"})).json()["data"]
        digests = can_sync_pb2.HashesResponse.FromString(
            (await http.post(f"{store.url}/sync/hashes", headers={"X-Sync-Key": SYNC_KEY})).content
        )
    assert sorted(r["hash"] for r in listed) == sorted(expected)
    seqs = sorted(d.changed_seq for d in digests.assets)
    assert len(set(seqs)) == len(seqs) and seqs[-1] == digests.watermark
    assert store.stop() == 0
    assert check_index_matches_files(store.root) == len(expected)
    assert {row[0] for row in index_rows(store.root)} == expected
