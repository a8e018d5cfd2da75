"""Incoming content is staged under data_dir/staging until it is verified and pushed into the store.

One file per asset. The machine lets at most one transfer, or one push, own an asset at a time, so a
staged file is never written by two transfers, nor cut back while a push reads it. The journal says how
far a transfer got (its last checkpoint); the staged file is cut back to that point before a transfer
resumes, so what the journal says arrived is exactly what is on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from cansync.can.hashing import new_content_hasher

READ_BLOCK = 4 * 1024 * 1024
SUFFIX = ".part"


class StagingLost(OSError):
    """The staged bytes a resume would start from are gone (the file is missing or shorter)."""


class StagingArea:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, asset: str) -> Path:
        if len(asset) != 64 or any(c not in "0123456789abcdef" for c in asset):
            raise ValueError(f"not an asset digest: {asset!r}")
        return self.root / f"{asset}{SUFFIX}"

    def open_for_append(self, asset: str, offset: int) -> StagedFile:
        return StagedFile(self.path(asset), offset)

    def write_whole(self, assets: list[tuple[str, bytes]]) -> None:
        """Stage small assets received whole (verified already): one file each, no checkpoint needed."""
        for asset, content in assets:
            with open(self.path(asset), "wb") as handle:
                handle.write(content)

    def measure(self, asset: str) -> tuple[int, str | None]:
        """The staged copy's length and the digest of its bytes; (0, None) when there is none."""
        hasher = new_content_hasher()
        size = 0
        try:
            with open(self.path(asset), "rb") as handle:
                while block := handle.read(READ_BLOCK):
                    hasher.update(block)
                    size += len(block)
        except FileNotFoundError:
            return 0, None
        return size, hasher.hexdigest()

    def discard(self, asset: str) -> None:
        self.path(asset).unlink(missing_ok=True)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove staged files of assets not in `keep` (left behind by a crash between a push and its
        cleanup, or by an older version); returns the assets removed."""
        removed = []
        for path in self.root.glob(f"*{SUFFIX}"):
            asset = path.name[: -len(SUFFIX)]
            if asset not in keep:
                path.unlink(missing_ok=True)
                removed.append(asset)
        return removed


class StagedFile:
    """Appends content at a resume offset and hashes everything, including what was staged before."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self._hasher = new_content_hasher()
        self._file: BinaryIO
        if offset:
            try:
                self._file = open(path, "r+b")  # noqa: SIM115  (closed in close())
            except FileNotFoundError:
                raise StagingLost(f"staged file {path} is gone; its checkpoint said {offset} bytes") from None
            try:
                self._rehash_prefix(offset)
            except BaseException:
                self._file.close()
                raise
        else:
            self._file = open(path, "wb")  # noqa: SIM115  (closed in close())
        self.size = offset

    def _rehash_prefix(self, offset: int) -> None:
        """Hash the bytes a resume keeps, and cut off anything staged beyond them."""
        size = os.fstat(self._file.fileno()).st_size
        if size < offset:  # truncate() would pad it with zeros, which would then fail the hash
            raise StagingLost(f"staged file {self.path} holds {size} bytes, less than its checkpoint {offset}")
        self._file.truncate(offset)
        self._file.seek(0)
        remaining = offset
        while remaining:
            block = self._file.read(min(READ_BLOCK, remaining))
            if not block:
                raise StagingLost(f"staged file {self.path} is shorter than its checkpoint {offset}")
            self._hasher.update(block)
            remaining -= len(block)
        self._file.seek(offset)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)

    def flush(self) -> None:
        # reaching the page cache is enough to survive the agent being killed; the journal's
        # checkpoint is written after this returns, so it never claims bytes the file lacks
        self._file.flush()

    def write_through(self, chunk: bytes) -> None:
        """write() then flush(): one call, so a worker thread can do both."""
        self.write(chunk)
        self.flush()

    def digest(self) -> str:
        return self._hasher.hexdigest()

    def close(self) -> None:
        self._file.close()
