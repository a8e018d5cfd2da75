"""One store per storage root: two stores writing one index and one set of files would corrupt both.

The lock is `<root>/.store.lock` and its holder's pid is in `<root>/.store.pid`, so the agent can tell a
store it left behind (an orphan of a killed agent) from a stranger.
"""

from __future__ import annotations

from pathlib import Path

from cansync.portable.pid_lock import LockHeld, PidLock

ROOT_LOCK_FILE = ".store.lock"


class StoreRootInUse(Exception):
    def __init__(self, root: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"storage root {root} is in use by {holder} (lock {root / ROOT_LOCK_FILE}): stop that store, "
            f"or give this one another --root"
        )
        self.root = root
        self.pid = pid


def root_lock_path(root: Path) -> Path:
    return root / ROOT_LOCK_FILE


def lock_store_root(root: Path) -> PidLock:
    """Hold the root's lock until released, or raise StoreRootInUse naming the holder."""
    lock = PidLock(root_lock_path(root))
    try:
        return lock.acquire()
    except LockHeld as held:
        raise StoreRootInUse(root, held.pid) from None
