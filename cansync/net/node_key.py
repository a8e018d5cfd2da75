"""The node's persisted Ed25519 key (its endpoint id) and the lock that keeps one agent per identity.

The key is 32 raw bytes in `<data_dir>/node.key` (mode 0600 where mode bits mean access), created
atomically on first run. An exclusive lock on `<data_dir>/node.lock` (`PidLock`: the same on Linux, macOS
and Windows, the holder's pid in `node.pid`), held for the agent's lifetime, stops a second agent from
running with the same identity (iroh itself would let both bind).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from types import TracebackType

import iroh

from cansync.portable.file_system import fsync_directory, readable_by_others
from cansync.portable.pid_lock import LockHeld, PidLock

log = logging.getLogger(__name__)

KEY_FILE = "node.key"
LOCK_FILE = "node.lock"
KEY_SIZE = 32


class NodeKeyError(Exception):
    """The node key file is unusable; the message names the file."""


class NodeKeyLocked(NodeKeyError):
    """Another process holds this data_dir's identity."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"data_dir {data_dir} is in use by {holder} (lock {data_dir / LOCK_FILE}): two agents must not "
            f"run with one node key; stop that agent or give this one another data_dir"
        )
        self.data_dir = data_dir
        self.pid = pid


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_directory(path.parent)


def load_or_create_key(data_dir: Path) -> bytes:
    """The 32-byte secret key in data_dir, made on first use. Call with the lock held."""
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(KEY_SIZE)
        _write_atomically(path, key, 0o600)
        log.info("created a new node key in %s", path)
        return key
    except OSError as exc:
        raise NodeKeyError(f"cannot read node key {path}: {exc.strerror or exc}") from exc
    if len(key) != KEY_SIZE:
        raise NodeKeyError(
            f"node key {path} holds {len(key)} bytes, expected {KEY_SIZE}: restore it from a backup, or "
            f"delete it to start with a new identity (peers will see a new endpoint id)"
        )
    if readable_by_others(path):
        log.warning("node key %s was readable by others; restricting it to mode 0600", path)
        path.chmod(0o600)
    return key


def endpoint_id_of(secret_key: bytes) -> str:
    return str(iroh.SecretKey.from_bytes(secret_key).public())


class NodeIdentity:
    """The held identity of this node: secret key, endpoint id, and the lock on data_dir."""

    def __init__(self, data_dir: Path, secret_key: bytes, lock: PidLock) -> None:
        self.data_dir = data_dir
        self.secret_key = secret_key
        self.endpoint_id = endpoint_id_of(secret_key)
        self._lock = lock

    @classmethod
    def acquire(cls, data_dir: str | os.PathLike[str]) -> NodeIdentity:
        """Lock data_dir (or raise NodeKeyLocked naming the holder), then load or create the key."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = PidLock(data_dir / LOCK_FILE)
        try:
            lock.acquire()
        except LockHeld as held:
            raise NodeKeyLocked(data_dir, held.pid) from None
        try:
            return cls(data_dir, load_or_create_key(data_dir), lock)
        except BaseException:
            lock.release()
            raise

    @property
    def held(self) -> bool:
        return self._lock.held

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> NodeIdentity:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
