"""Durability and permissions of files, where Windows and POSIX file systems differ in kind.

These are the only places where cansync asks which system it is on: a directory cannot be opened as a file
on Windows (and NTFS journals a rename itself), and Windows keeps access rights in ACLs, not in mode bits
(`stat` there reports every writable file as 0o666).
"""

from __future__ import annotations

import os
from pathlib import Path

POSIX_PERMISSIONS = os.name == "posix"  # mode bits say who may read a file


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or a new file in `directory` durable (on POSIX a directory is synced on its own)."""
    if not POSIX_PERMISSIONS:
        return
    fd = os.open(Path(directory), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def readable_by_others(path: str | os.PathLike[str]) -> bool:
    """Whether group or others may read or write `path` (never on Windows: its ACLs are not mode bits)."""
    return POSIX_PERMISSIONS and bool(Path(path).stat().st_mode & 0o077)
