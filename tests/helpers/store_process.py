"""Start a real `cansync store serve` process on 127.0.0.1 for tests (any test directory may use it).

    with running_store(tmp_path / "store", sync_key="k") as store:
        httpx.get(f"{store.api}/list")
    store = start_store_process(root, port=0); ...; store.stop()

The process is the real command line, so tests exercise exactly what a user runs. Its stderr goes to
`<root>.log` beside the store root (shown when start-up fails).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

READY_PREFIX = "READY "
TEST_SYNC_KEY = "test-sync-key"  # the key start_store_process uses unless told otherwise
_LAUNCH = "import sys; from cansync.cli import main; sys.exit(main())"


class StoreStartError(RuntimeError):
    """The store process did not announce READY in time."""


def free_port() -> int:
    """A port that was free a moment ago (for tests that must know the port before the store starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StoreProcess:
    root: Path
    sync_key: str | None
    process: subprocess.Popen[str]
    url: str
    log_path: Path
    extra_args: tuple[str, ...] = ()
    _stdout_drain: threading.Thread | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def api(self) -> str:
        """The public API prefix, /api/v1/can/0."""
        return f"{self.url}/api/v1/can/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; kill if it does not stop in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, timeout: float = 20.0) -> StoreProcess:
        """Stop, then start again on the same root and port."""
        self.stop()
        return start_store_process(
            self.root, port=self.port, sync_key=self.sync_key, extra_args=self.extra_args, ready_timeout=timeout
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_store_process(
    root: Path,
    *,
    port: int | None = 0,
    sync_key: str | None = TEST_SYNC_KEY,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    ready_timeout: float = 20.0,
    stdin: int | None = None,
) -> StoreProcess:
    """Run `cansync store serve --root root --port port [--sync-key k] [extra_args]` and wait for READY.
    sync_key=None starts it without a key (the sync API disabled, unless a --config supplies one).
    stdin=subprocess.PIPE gives it a pipe on standard input (process.stdin), as `cansync run` does."""
    root.mkdir(parents=True, exist_ok=True)
    log_path = root.parent / f"{root.name}.log"
    args = [sys.executable, "-c", _LAUNCH, "store", "serve", "--root", str(root), "--host", "127.0.0.1"]
    if port is not None:  # None: leave the port to CAN_PORT / the config / the default
        args += ["--port", str(port)]
    if sync_key is not None:
        args += ["--sync-key", sync_key]
    args += list(extra_args)
    process_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "a") as log_file:
        process = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env=process_env,
            start_new_session=True,
        )
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(ready_timeout)
    line = lines[0].strip() if lines else ""
    if not line.startswith(READY_PREFIX):
        process.kill()
        process.wait(10)
        raise StoreStartError(
            f"store on {root} (port {port}) did not print READY within {ready_timeout} s; got {line!r}; "
            f"log {log_path}:\n{log_path.read_text(errors='replace')[-3000:]}"
        )
    drain = threading.Thread(target=process.stdout.read, daemon=True)  # keep the pipe from filling up
    drain.start()
    return StoreProcess(
        root=root,
        sync_key=sync_key,
        process=process,
        url=line[len(READY_PREFIX) :],
        log_path=log_path,
        extra_args=tuple(extra_args),
        _stdout_drain=drain,
    )


@contextmanager
def running_store(root: Path, **kwargs: object) -> Iterator[StoreProcess]:
    store = start_store_process(root, **kwargs)  # type: ignore[arg-type]
    try:
        yield store
    finally:
        store.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll predicate() until true or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
