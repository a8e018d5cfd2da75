"""Talk to a real store the way a user and the agent do: ingest over HTTP, list digests, check files."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Sequence
from pathlib import Path

from cansync.can import CanClient
from cansync.wire.pb import can_sync_pb2
from tests.helpers import plain_http

_ASSET_FILE = re.compile(r"^(\d+)_([0-9a-f]{64})")


def make_bytes(seed: int, size: int) -> bytes:
    """Deterministic incompressible bytes (built in blocks: randbytes overflows past 256 MiB)."""
    block = 8 * 1024 * 1024
    rng = random.Random(seed)
    return b"".join(rng.randbytes(min(block, size - start)) for start in range(0, size, block))


def ingest(api: str, content: bytes, name: str = "file.bin", tags: str = "") -> str:
    """POST /ingest (multipart) and return the new asset's hash."""
    data = {"tags": tags} if tags else {}
    response = plain_http.post(f"{api}/ingest", files={"file": (name, content)}, data=data, timeout=120)
    response.raise_for_status()
    return str(response.json()["data"]["hash"])


def push_many(url: str, sync_key: str, files: Sequence[tuple[bytes, str]]) -> list[str]:
    """Put many files into a store through /sync/push_batch, a durability barrier per batch instead of
    one per file (2,000 small ingests take ~45 s one by one); returns their hashes in order."""

    async def push() -> list[str]:
        metas = [
            can_sync_pb2.AssetMeta(hash=hashlib.sha256(content).hexdigest(), size=len(content), human_file_name=name)
            for content, name in files
        ]
        async with CanClient(url, sync_key, timeout=120) as can:
            results = await can.push_batch([(meta, content) for meta, (content, _) in zip(metas, files, strict=True)])
        refused = [r for r in results if r.outcome == can_sync_pb2.PUSH_REFUSED]
        assert not refused, refused[:3]
        return [meta.hash for meta in metas]

    return asyncio.run(push())


def store_digests(url: str, sync_key: str) -> dict[str, can_sync_pb2.AssetDigest]:
    response = plain_http.post(f"{url}/sync/hashes", headers={"X-Sync-Key": sync_key}, content=b"", timeout=60)
    response.raise_for_status()
    answer = can_sync_pb2.HashesResponse.FromString(response.content)
    return {d.hash: d for d in answer.assets}


def asset_files(root: Path) -> dict[str, Path]:
    """hash -> file for every asset file under a store root (live and trashed)."""
    found: dict[str, Path] = {}
    for folder in (root, root / ".trash"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = _ASSET_FILE.match(path.name)
            if path.is_file() and match:
                found[match.group(2)] = path
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def assert_files_match_names(root: Path) -> int:
    """Every asset file's bytes hash to the hash in its name; returns how many files were checked."""
    files = asset_files(root)
    for asset, path in files.items():
        assert file_sha256(path) == asset, f"{path} does not hash to its name"
    return len(files)
