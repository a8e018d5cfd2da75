"""The embedded default: `cansync run` with no can_service_url starts `cansync store serve` beside it.

The store runs as its own process and the agent reaches it only over HTTP, exactly as it reaches a
real CAN Service. Its sync key is generated once and kept in data_dir when none is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from pathlib import Path

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0


class EmbeddedStoreError(RuntimeError):
    pass


def embedded_sync_key(data_dir: Path, configured: str | None) -> str:
    """The configured key, else the one kept in data_dir/sync_api_key (made on first use, mode 0600)."""
    if configured:
        return configured
    path = data_dir / "sync_api_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


class EmbeddedStore:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    async def start(cls, root: Path, *, port: int, sync_key: str, host: str = "127.0.0.1") -> EmbeddedStore:
        root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["CANSYNC_STORE_SYNC_KEY"] = sync_key  # not on the command line, where `ps` shows it
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cansync.cli", "store", "serve",
            "--root", str(root), "--port", str(port), "--host", host,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(_ready_line(process.stdout), READY_TIMEOUT)
        except (TimeoutError, EmbeddedStoreError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise EmbeddedStoreError(
                f"the embedded store did not start (root {root}, port {port}); is the port in use? "
                "set store_port, or can_service_url to use a running CAN Service"
            ) from None
        url = line.split(" ", 1)[1].strip()
        log.info("embedded store serving %s at %s", root, url)
        # keep draining its stdout so it never blocks on a full pipe
        asyncio.create_task(_drain(process.stdout), name="embedded-store-stdout")
        return cls(process, url)

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def _ready_line(stream: asyncio.StreamReader) -> str:
    while True:
        raw = await stream.readline()
        if not raw:
            raise EmbeddedStoreError("the embedded store exited before it was ready")
        line = raw.decode(errors="replace").strip()
        if line.startswith("READY "):
            return line


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
