"""Filling a store root with many synthetic assets at once, for benches (issue 14: two stores of a million
assets each, built in well under a minute through the store's own code, not a million HTTP calls).

Asset number n has the content `synthetic_content(n)` and the timestamp BULK_TIMESTAMP_BASE + n, so two
stores loaded with overlapping numbers hold the same records for the numbers they share. Records and
file names come from the store's own rules (AssetStore.new_record), rows go in through the index in one
transaction. For speed the files are not synced one by one: a bench store is rebuilt, never recovered
after a power cut. With `link_from`, files another bulk-loaded store already holds are hard-linked
instead of written (asset files never change in place, so sharing them is safe): the second of two big
stores then costs a fraction of the first.

    bulk_load(root_a, range(0, 1_000_000))
    bulk_load(root_b, range(500, 1_000_500), link_from=root_a)
"""

from __future__ import annotations

import errno
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cansync.store.assets import AssetStore
from cansync.store.blobs import BlobStore
from cansync.store.hashing import content_hash
from cansync.store.index import INDEX_FILE_NAME, AssetIndex
from cansync.store.records import AssetRecord, NewAssetFields
from cansync.store.root_lock import lock_store_root

BULK_TIMESTAMP_BASE = 1_600_000_000_000  # asset n's timestamp is this + n (ms)
_FIELDS_MIME = "application/octet-stream"
_FIELDS_EXTENSION = "bin"
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_NOT_LINKABLE = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def synthetic_content(number: int) -> bytes:
    """Asset number n's content: a few distinct bytes."""
    return b"cansync bulk asset %d" % number


def synthetic_record(number: int) -> AssetRecord:
    """Asset number n's record, as the store makes it (changed_seq not yet given)."""
    content = synthetic_content(number)
    fields = NewAssetFields(mime_type=_FIELDS_MIME, extension=_FIELDS_EXTENSION, timestamp=BULK_TIMESTAMP_BASE + number)
    return AssetStore.new_record(content_hash(content), len(content), fields)


class _RecordMaker:
    """synthetic_record at a fifth of its cost: the store's rules applied once, to a template, and only
    what differs per asset filled in; checked against the full rules before any is made."""

    def __init__(self, sample_number: int) -> None:
        self._template = synthetic_record(sample_number)
        if self.make(sample_number) != self._template:
            raise RuntimeError("the store's record rules changed: update cansync/store/bulk_load.py")

    def make(self, number: int) -> AssetRecord:
        content = synthetic_content(number)
        asset_hash = hashlib.sha256(content).hexdigest()
        timestamp = BULK_TIMESTAMP_BASE + number
        template = self._template
        return AssetRecord(
            hash=asset_hash,
            timestamp=timestamp,
            size=len(content),
            file_name=f"{timestamp}_{asset_hash}.{template.extension}",
            mime_type=template.mime_type,
            extension=template.extension,
        )


@dataclass(frozen=True)
class BulkLoadReport:
    assets: int  # added by this load
    skipped: int  # numbers the store held already
    linked: int  # files hard-linked from link_from instead of written
    seconds: float
    watermark: int  # the store's change clock after the load


class _Files:
    """Writes (or links) asset files into a root through a directory descriptor: no path lookups."""

    def __init__(self, root: Path, link_from: Path | None) -> None:
        self._dir_fd = os.open(root, os.O_RDONLY)
        self._link_fd = os.open(link_from, os.O_RDONLY) if link_from is not None else None
        self.linked = 0

    def close(self) -> None:
        os.close(self._dir_fd)
        if self._link_fd is not None:
            os.close(self._link_fd)

    def put(self, name: str, content: bytes) -> None:
        try:
            self._put(name, content)
        except FileExistsError:  # a file no index row names (a load or a push cut off by a crash)
            self.remove(name)
            self._put(name, content)

    def _put(self, name: str, content: bytes) -> None:
        if self._link_fd is not None:
            try:
                os.link(name, name, src_dir_fd=self._link_fd, dst_dir_fd=self._dir_fd)
                self.linked += 1
                return
            except FileNotFoundError:
                pass  # not in the other store: write it
            except OSError as exc:
                if exc.errno not in _NOT_LINKABLE:
                    raise
                os.close(self._link_fd)  # another file system, or no hard links there: write them all
                self._link_fd = None
        fd = os.open(name, _CREATE_FLAGS, 0o644, dir_fd=self._dir_fd)
        try:
            os.write(fd, content)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self._dir_fd)
        except FileNotFoundError:
            pass


def bulk_load(root: Path, numbers: Sequence[int], *, link_from: Path | None = None) -> BulkLoadReport:
    """Add asset n for every n in numbers (distinct, as a range is) to the store at root, made when
    missing. The root must not be served meanwhile: its lock is held for the load (StoreRootInUse
    otherwise). Numbers the store holds already are skipped. All or nothing: on an error the rows are
    rolled back and the files this load wrote removed."""
    started = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    lock = lock_store_root(root)
    try:
        BlobStore(root)  # the layout: root and .trash
        index = AssetIndex(root / INDEX_FILE_NAME)
        try:
            before = index.held_hashes() if index.watermark() else set()
            files = _Files(root, link_from)
            skipped = 0

            def records() -> Iterator[AssetRecord]:
                nonlocal skipped
                if not numbers:
                    return
                make = _RecordMaker(numbers[0]).make
                for number in numbers:
                    record = make(number)
                    if record.hash in before:
                        skipped += 1
                        continue
                    files.put(record.file_name, synthetic_content(number))
                    yield record

            try:
                added = index.bulk_insert(records())
            except BaseException as exc:
                for number in numbers:  # the rows are gone: so go the files written for them
                    record = synthetic_record(number)
                    if record.hash not in before:
                        files.remove(record.file_name)
                if isinstance(exc, sqlite3.IntegrityError):
                    raise ValueError(f"bulk_load of {root}: the numbers must be distinct ({exc})") from exc
                raise
            finally:
                files.close()
            watermark = index.watermark()
        finally:
            index.close()
    finally:
        lock.release()
    seconds = time.perf_counter() - started
    return BulkLoadReport(assets=added, skipped=skipped, linked=files.linked, seconds=seconds, watermark=watermark)
