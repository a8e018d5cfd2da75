"""A store whose disk fills up mid-write: a clear 507, no partial asset visible, and it keeps serving.

The store runs on a 6 MiB tmpfs mounted in a mount namespace of its own (inside the test's network
namespace), so "disk full" is real and nothing outside is touched.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cansync.wire.pb import can_sync_pb2
from tests.helpers.assets import ingest, store_digests

KEY = "disk-full-key"
MiB = 1024 * 1024


@pytest.fixture
def small_store(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "root"
    root.mkdir()
    launch = "import sys; from cansync.cli import main; sys.exit(main())"
    script = (
        f"mount -t tmpfs -o size=6m tmpfs {root} && exec {sys.executable} -c '{launch}' "
        f"store serve --root {root} --port 0 --host 127.0.0.1 --sync-key {KEY}"
    )
    proc = subprocess.Popen(["unshare", "-m", "bash", "-c", script], stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(20)
    assert lines and lines[0].startswith("READY "), f"the store on a small tmpfs did not start: {lines!r}"
    try:
        yield lines[0].split()[1]
    finally:
        proc.terminate()
        proc.wait(15)


def push_body(content: bytes) -> bytes:
    meta = can_sync_pb2.AssetMeta(
        hash=hashlib.sha256(content).hexdigest(), timestamp=1_700_000_000_000, size=len(content)
    ).SerializeToString()
    return struct.pack(">I", len(meta)) + meta + content


def test_a_full_disk_refuses_with_507_and_leaves_nothing_partial(small_store: str, tmp_path: Path):
    api = f"{small_store}/api/v1/can/0"
    kept = ingest(api, b"k" * (2 * MiB), "kept.bin")
    too_big = bytes(range(256)) * (8 * MiB // 256)
    answer = httpx.post(f"{small_store}/sync/push", content=push_body(too_big), headers={"X-Sync-Key": KEY}, timeout=60)
    assert answer.status_code == 507
    assert answer.json() == {
        "status": "error",
        "error": "no space left in the store's storage_root: free some space and send it again",
    }
    upload = httpx.post(f"{api}/ingest", files={"file": ("big.bin", too_big)}, timeout=60)
    assert upload.status_code == 507
    assert set(store_digests(small_store, KEY)) == {kept}
    # still serving, and the space the refused writes took was given back: 2 + 3 MiB fit in 6 MiB only
    # if no partial temp file of the refused 8 MiB writes is left on the disk
    small = ingest(api, b"s" * (3 * MiB), "small.bin")
    assert set(store_digests(small_store, KEY)) == {kept, small}


def test_a_batch_that_fills_the_disk_is_refused_whole_and_gives_the_space_back(small_store: str) -> None:
    api = f"{small_store}/api/v1/can/0"
    kept = ingest(api, b"k" * (2 * MiB), "kept.bin")
    fits = [bytes([i]) * MiB for i in range(2)]  # these two fit; the third does not
    too_big = bytes(range(256)) * (8 * MiB // 256)
    body = b"".join(push_body(content) for content in [*fits, too_big])
    answer = httpx.post(f"{small_store}/sync/push_batch", content=body, headers={"X-Sync-Key": KEY}, timeout=60)
    assert answer.status_code == 507, answer.text
    assert "no space left" in answer.json()["error"]
    assert set(store_digests(small_store, KEY)) == {kept}  # not even the assets that fitted
    # the staged files of the whole batch are gone: 2 + 3 MiB fit in 6 MiB only without them
    small = ingest(api, b"s" * (3 * MiB), "small.bin")
    assert set(store_digests(small_store, KEY)) == {kept, small}
