"""What the fuzzed store must look like: the error envelope, and a snapshot of everything it holds.

A snapshot is the files under the store root (recursively, so a traversal that escaped into a
subdirectory shows) plus the sibling entries of the root (so one that escaped upward shows), and the
change clock; the digest set comes from POST /sync/hashes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from cansync.store.blobs import INCOMING_PREFIX
from cansync.wire.pb import can_sync_pb2

from .hostile_values import sha256_hex

# the store's own files beside the assets: its index, and the lock (with its holder's pid) on its root
INDEX_FILES = {".can.db", ".can.db-wal", ".can.db-shm", ".can.db-journal", ".store.lock", ".store.pid"}


def assert_error_envelope(response: httpx.Response, what: str) -> None:
    """A refusal: 4xx and {"status": "error", "error": "<message>"}."""
    assert 400 <= response.status_code < 500, (
        f"{what}: expected a 4xx, got {response.status_code}: {response.text[:500]}"
    )
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"{what}: {response.status_code} body is not JSON: {response.content[:200]!r}") from exc
    assert isinstance(body, dict) and body.get("status") == "error", f"{what}: not an error envelope: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], f"{what}: empty error message: {body!r}"
    assert set(body) == {"status", "error"}, f"{what}: extra keys in the envelope: {body!r}"


@dataclass(frozen=True)
class DiskState:
    files: frozenset[str]  # paths relative to the root, index files left out
    siblings: frozenset[str]  # names beside the root in its parent directory

    @staticmethod
    def of(root: Path) -> DiskState:
        files = frozenset(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in INDEX_FILES
        )
        return DiskState(files=files, siblings=frozenset(p.name for p in root.parent.iterdir()))

    def asset_hashes(self) -> set[str]:
        return {Path(f).name.split(".", 1)[0].split("_")[1] for f in self.files}


def digest_set(client: httpx.Client, url: str, key: str) -> tuple[dict[str, can_sync_pb2.AssetDigest], int]:
    response = client.post(f"{url}/sync/hashes", headers={"X-Sync-Key": key})
    assert response.status_code == 200, response.text
    answer = can_sync_pb2.HashesResponse.FromString(response.content)
    return {d.hash: d for d in answer.assets}, answer.watermark


def clock_unmoved(client: httpx.Client, url: str, key: str, watermark: int) -> bool:
    """True when the store's change clock is still at watermark (no write happened)."""
    response = client.post(f"{url}/sync/hashes?since={watermark}", headers={"X-Sync-Key": key})
    assert response.status_code == 200, response.text
    answer = can_sync_pb2.HashesResponse.FromString(response.content)
    return answer.watermark == watermark and not answer.assets


def check_disk_matches_digests(root: Path, digests: dict[str, can_sync_pb2.AssetDigest]) -> None:
    """Each asset file hashes to the hash in its name, sits where its trash flag says, one per digest."""
    state = DiskState.of(root)
    assert not [f for f in state.files if Path(f).name.startswith(INCOMING_PREFIX)], "temp files left behind"
    by_hash: dict[str, str] = {}
    for rel in state.files:
        path = root / rel
        parent = Path(rel).parent
        assert str(parent) in (".", ".trash"), f"asset file outside the root or .trash: {rel}"
        name_hash = Path(rel).name.split(".", 1)[0].split("_")[1]
        assert sha256_hex(path.read_bytes()) == name_hash, f"{rel} does not hash to its name"
        assert name_hash not in by_hash, f"two files for {name_hash}: {by_hash[name_hash]} and {rel}"
        by_hash[name_hash] = rel
        assert (str(parent) == ".trash") == digests[name_hash].trashed, f"{rel} is in the wrong directory"
    assert set(by_hash) == set(digests), f"files and /sync/hashes differ: {set(by_hash) ^ set(digests)}"
