"""An exclusive lock on a file, held for a process's lifetime, with the holder's pid beside it.

`filelock.lock_descriptor` locks a descriptor we open ourselves: flock on Linux and macOS, LockFileEx on
Windows, and the operating system drops the lock when its holder dies, however it dies. The lock file itself
is never written (Windows refuses reads of a locked byte to other processes, and opening it must not
truncate what a holder wrote), so the holder's pid goes to `<name>.pid`, for messages and for finding an
orphan.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from filelock import lock_descriptor, unlock_descriptor


class LockHeld(Exception):
    """Another process (or another holder in this one) holds the lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{path} is held by {holder}")
        self.path = path
        self.pid = pid


class PidLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def pid_path(self) -> Path:
        return self.path.with_suffix(".pid")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> PidLock:
        """Take the lock without waiting, or raise LockHeld naming the holder's pid when it is known."""
        if self._fd is not None:
            raise LockHeld(self.path, os.getpid())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            locked = lock_descriptor(fd, blocking=False)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            os.close(fd)
            raise LockHeld(self.path, self.holder_pid())
        try:
            self.pid_path.write_text(f"{os.getpid()}\n", encoding="ascii")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # the pid file goes first: once unlocked, a new holder may already have written its own
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        try:
            unlock_descriptor(fd)
        finally:
            os.close(fd)

    def holder_pid(self) -> int | None:
        """The pid the current holder wrote, or None when it is unknown (not yet written, or unreadable)."""
        try:
            text = self.pid_path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def __enter__(self) -> PidLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_holder(path: str | os.PathLike[str]) -> LockHeld | None:
    """Who holds the lock at `path` now: None when no one does (it is taken and released to find out)."""
    probe = PidLock(path)
    try:
        probe.acquire()
    except LockHeld as held:
        return held
    probe.release()
    return None
