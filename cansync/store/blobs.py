"""Asset files on disk: flat files under storage_root, `.trash/` for trashed ones, and the temp files
incoming content is streamed into (hashed on the way) before an atomic rename gives them their name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cansync.portable.file_system import fsync_directory
from cansync.store.hashing import ContentHasher, new_content_hasher
from cansync.store.records import AssetRecord

TRASH_DIR_NAME = ".trash"
INCOMING_PREFIX = ".incoming-"
SYNC_THREADS = 8  # concurrent fsyncs of a batch (measured: 256 small files in 18 ms, 46 ms one by one)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows' fsync needs write access; POSIX takes either
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IncomingBlob:
    """Content arriving in chunks: written to a temp file in storage_root and hashed as it goes.
    Its methods block (disk I/O): call them from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hasher: ContentHasher = new_content_hasher()
        self._file: BinaryIO | None = open(path, "xb")  # noqa: SIM115  (closed in finish/discard)

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "write after finish"
        self._hasher.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def finish(self, durable: bool = True) -> str:
        """Close the file and return the content's hash; durable=False leaves the fsync to the caller
        (a batch syncs all its files at once with sync_files)."""
        assert self._file is not None, "finish twice"
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._hasher.hexdigest()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.trash_dir = root / TRASH_DIR_NAME
        self.root.mkdir(parents=True, exist_ok=True)
        self.trash_dir.mkdir(exist_ok=True)

    def remove_leftover_incoming(self) -> int:
        """Temp files of transfers cut off by a crash never became assets: remove them at start."""
        removed = 0
        for path in self.root.glob(f"{INCOMING_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def new_incoming(self) -> IncomingBlob:
        return IncomingBlob(self.root / f"{INCOMING_PREFIX}{uuid.uuid4().hex}.part")

    def path_for(self, record: AssetRecord) -> Path:
        return (self.trash_dir if record.trashed else self.root) / record.file_name

    def adopt(self, incoming: IncomingBlob, record: AssetRecord, sync_dir: bool = True) -> Path:
        """Give a finished temp file its asset name (atomic rename within storage_root); sync_dir=False
        leaves syncing the directory to the caller (once per batch)."""
        final = self.path_for(record)
        os.replace(incoming.path, final)
        if sync_dir:
            self._sync_dir(final.parent)
        return final

    @staticmethod
    def sync_files(paths: Sequence[Path]) -> None:
        """fsync these files, several at once: the file system can then commit them in one go, where
        one after the other each waits for its own journal commit."""
        if len(paths) <= 1:
            for path in paths:
                _fsync_file(path)
            return
        with ThreadPoolExecutor(max_workers=min(SYNC_THREADS, len(paths)), thread_name_prefix="fsync") as pool:
            for _ in pool.map(_fsync_file, paths):
                pass  # map re-raises the first failure

    def sync_dir(self, directory: Path) -> None:
        self._sync_dir(directory)

    def relocate(self, before: AssetRecord, after: AssetRecord) -> None:
        """Move an asset's file when its trash state or tags (part of its name) change."""
        old, new = self.path_for(before), self.path_for(after)
        if old != new:
            os.replace(old, new)
            self._sync_dir(new.parent)
            if old.parent != new.parent:
                self._sync_dir(old.parent)

    def open_content(self, record: AssetRecord) -> BinaryIO:
        return open(self.path_for(record), "rb")  # noqa: SIM115  (the caller closes it)

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        fsync_directory(directory)
