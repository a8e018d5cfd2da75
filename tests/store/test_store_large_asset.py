"""A 1 GiB asset goes in (multipart ingest) and out (/sync/pull) while the store's RSS stays under
150 MB: content is streamed to and from disk, never held whole. The test never holds it whole either."""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx

from cansync.wire.pb import can_sync_pb2
from tests.helpers.store_process import TEST_SYNC_KEY as SYNC_KEY
from tests.helpers.store_process import StoreProcess

GIB = 1024**3
CHUNK = 1024 * 1024
RSS_LIMIT = 150 * 1024 * 1024
BOUNDARY = "cansync-large-asset-boundary"


def generated_chunks(total: int) -> Iterator[bytes]:
    """Deterministic, non-repeating content made on the fly: a random block stamped with a counter."""
    block = os.urandom(CHUNK)
    for index in range(total // CHUNK):
        yield struct.pack(">Q", index) + block[8:]


class RssSampler:
    def __init__(self, store: StoreProcess, interval: float = 0.05) -> None:
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[int] = []

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.samples.append(self._store.rss_bytes())

    @contextmanager
    def sampling(self) -> Iterator[RssSampler]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


async def multipart_body(expected: hashlib._Hash) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="tags"\r\n\r\nbig\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for chunk in generated_chunks(GIB):
        expected.update(chunk)
        yield chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_one_gib_ingest_and_pull_keep_the_store_small(store: StoreProcess) -> None:
    sampler = RssSampler(store)
    expected = hashlib.sha256()
    async with httpx.AsyncClient(timeout=120.0, trust_env=False) as http:
        with sampler.sampling():
            response = await http.post(
                f"{store.api}/ingest",
                content=multipart_body(expected),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            )
            assert response.status_code == 200, response.text
            record = response.json()["data"]
            assert record["hash"] == expected.hexdigest()
            assert record["size"] == GIB

            pulled = hashlib.sha256()
            received = 0
            request = can_sync_pb2.PullRequest(hashes=[record["hash"]]).SerializeToString()
            async with http.stream(
                "POST", f"{store.url}/sync/pull", content=request, headers={"X-Sync-Key": SYNC_KEY}
            ) as pull:
                assert pull.status_code == 200
                header = bytearray()
                async for chunk in pull.aiter_raw():
                    if len(header) < 4 or len(header) < 4 + struct.unpack(">I", header[:4])[0]:
                        header += chunk
                        if len(header) < 4 or len(header) < 4 + struct.unpack(">I", header[:4])[0]:
                            continue
                        end = 4 + struct.unpack(">I", header[:4])[0]
                        item = can_sync_pb2.PullItem.FromString(bytes(header[4:end]))
                        chunk = bytes(header[end:])
                    pulled.update(chunk)
                    received += len(chunk)
    assert item.found and item.meta.size == GIB and item.meta.tags == ["big"]
    assert received == GIB
    assert pulled.hexdigest() == expected.hexdigest()
    assert len(sampler.samples) > 20, "too few RSS samples to judge"
    peak = max(sampler.samples)
    assert peak < RSS_LIMIT, f"store RSS peaked at {peak / 2**20:.0f} MiB"
    on_disk = store.root / f"{record['timestamp']}_{record['hash']}_big.bin"
    assert on_disk.stat().st_size == GIB
