"""Incoming content is staged under data_dir/staging until it is verified and pushed into the store.

The journal says how far a transfer got (its last checkpoint); the staged file is cut back to that
point before a transfer resumes, so what the journal says arrived is exactly what is on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from cansync.can.hashing import new_content_hasher

READ_BLOCK = 4 * 1024 * 1024


class StagingArea:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, asset: str) -> Path:
        if len(asset) != 64 or any(c not in "0123456789abcdef" for c in asset):
            raise ValueError(f"not an asset digest: {asset!r}")
        return self.root / f"{asset}.part"

    def resume_point(self, asset: str, journaled_offset: int) -> int:
        """Cut the staged file back to what the journal vouches for; return where to resume."""
        path = self.path(asset)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
        offset = min(size, journaled_offset)
        if size != offset:
            os.truncate(path, offset)
        return offset

    def open_for_append(self, asset: str, offset: int) -> StagedFile:
        return StagedFile(self.path(asset), offset)

    def discard(self, asset: str) -> None:
        self.path(asset).unlink(missing_ok=True)


class StagedFile:
    """Appends content at a resume offset and hashes everything, including what was staged before."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self._hasher = new_content_hasher()
        mode = "r+b" if offset and path.exists() else "wb"
        self._file = open(path, mode)  # noqa: SIM115  (closed in close())
        if offset:
            self._file.truncate(offset)
            self._file.seek(0)
            remaining = offset
            while remaining:
                block = self._file.read(min(READ_BLOCK, remaining))
                if not block:
                    raise OSError(f"staged file {path} is shorter than its checkpoint {offset}")
                self._hasher.update(block)
                remaining -= len(block)
            self._file.seek(offset)
        self.size = offset

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
