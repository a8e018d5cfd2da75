"""Checks of a store root on disk, shared by the store tests."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def asset_files(root: Path) -> list[Path]:
    """Every asset file (live and trashed), ignoring the index and temp files."""
    live = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
    trashed = [p for p in (root / ".trash").iterdir() if p.is_file()] if (root / ".trash").exists() else []
    return sorted(live + trashed)


def leftover_temp_files(root: Path) -> list[Path]:
    return sorted(root.glob(".incoming-*"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def index_rows(root: Path) -> list[tuple[str, str, int, int]]:
    """(hash, file_name, trashed, size) of every row in .can.db, read with plain sqlite3."""
    with sqlite3.connect(f"file:{root / '.can.db'}?mode=ro", uri=True) as conn:
        return list(conn.execute("SELECT hash, file_name, trashed, size FROM assets ORDER BY hash"))


def check_index_matches_files(root: Path) -> int:
    """Every file's bytes hash to the hash in its name; every index row has its file and only that.
    Returns the number of assets."""
    files = asset_files(root)
    for path in files:
        name_hash = path.name.split(".", 1)[0].split("_")[1]
        assert file_sha256(path) == name_hash, f"{path} does not hash to its name"
    rows = index_rows(root)
    expected = sorted((root / ".trash" / name) if trashed else (root / name) for _h, name, trashed, _s in rows)
    assert expected == files, f"index rows and files differ:\nrows: {expected}\nfiles: {files}"
    for asset_hash, name, trashed, size in rows:
        path = (root / ".trash" / name) if trashed else (root / name)
        assert path.stat().st_size == size
        assert asset_hash in name
    assert leftover_temp_files(root) == []
    return len(rows)
