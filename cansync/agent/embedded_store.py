"""The embedded default: `cansync run` with no can_service_url starts `cansync store serve` beside it.

The store runs as its own process and the agent reaches it only over HTTP, exactly as it reaches a
real CAN Service. Its sync key is generated once and kept in data_dir when none is configured.

The store ends with its agent on every system: it is started with `--parent-pid` and a pipe on its standard
input, and stops when either says the agent is gone (`cansync.store.parent_watch`); closing that pipe is also
how the agent stops it cleanly. A store an earlier agent left running is found by its storage root's lock and
replaced (`orphan_store`). A port held by another program is reported as such, with the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sys
from pathlib import Path

import psutil

from cansync.agent.orphan_store import describe, end_orphan, orphan_store, port_holder
from cansync.portable.pid_lock import lock_holder
from cansync.portable.timeouts import wait_for
from cansync.store.exit_codes import EXIT_PORT_IN_USE, EXIT_ROOT_IN_USE
from cansync.store.root_lock import root_lock_path

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
STOP_GRACE_SECS = 10.0


class EmbeddedStoreError(RuntimeError):
    pass


def embedded_sync_key(data_dir: Path, configured: str | None) -> str:
    """The configured key, else the one kept in data_dir/sync_api_key (made on first use, mode 0600)."""
    if configured:
        return configured
    path = data_dir / "sync_api_key"
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    key = secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


class EmbeddedStore:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    async def start(cls, root: Path, *, port: int, sync_key: str, host: str = "127.0.0.1") -> EmbeddedStore:
        root.mkdir(parents=True, exist_ok=True)
        await _replace_orphan_holding_root(root)
        try:
            return await cls._spawn(root, port=port, sync_key=sync_key, host=host)
        except _PortTaken as taken:
            # an older cansync's orphan holds the port without holding the root's lock: it is still ours
            orphan = orphan_store(taken.holder, root)
            if orphan is None:
                raise EmbeddedStoreError(_port_in_use_message(host, port, taken.holder)) from None
            await _end(orphan)
        try:
            return await cls._spawn(root, port=port, sync_key=sync_key, host=host)
        except _PortTaken as taken:
            raise EmbeddedStoreError(_port_in_use_message(host, port, taken.holder)) from None

    @classmethod
    async def _spawn(cls, root: Path, *, port: int, sync_key: str, host: str) -> EmbeddedStore:
        env = dict(os.environ)
        env["CANSYNC_STORE_SYNC_KEY"] = sync_key  # not on the command line, where `ps` shows it
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cansync.cli", "store", "serve",
            "--root", str(root), "--port", str(port), "--host", host, "--parent-pid", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,  # the store ends when this pipe closes: when we close it, or die
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            line = await wait_for(_ready_line(process.stdout), READY_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise EmbeddedStoreError(
                f"the embedded store did not start within {READY_TIMEOUT:.0f} s (root {root}, port {port}); "
                "its log lines above say why; set can_service_url to use a running CAN Service instead"
            ) from None
        except EmbeddedStoreError:
            code = await process.wait()
            if code == EXIT_PORT_IN_USE:
                raise _PortTaken(port_holder(port)) from None
            if code == EXIT_ROOT_IN_USE:
                holder = lock_holder(root_lock_path(root))
                raise EmbeddedStoreError(
                    f"the embedded store's root {root} is in use by {describe(holder.pid if holder else None)}, "
                    "which is not a store this agent left running: stop it, or give this agent another data_dir"
                ) from None
            raise EmbeddedStoreError(
                f"the embedded store exited with code {code} before it was ready (root {root}, port {port}); "
                "its log lines above say why"
            ) from None
        url = line.split(" ", 1)[1].strip()
        log.info("embedded store serving %s at %s", root, url)
        # keep draining its stdout so it never blocks on a full pipe
        asyncio.create_task(_drain(process.stdout), name="embedded-store-stdout")
        return cls(process, url)

    async def stop(self) -> None:
        """Close the store's standard input (its portable "stop now"), and kill it if it has not stopped soon."""
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await wait_for(self.process.wait(), STOP_GRACE_SECS)
            except TimeoutError:
                log.warning("the embedded store did not stop within %.0f s; killing it", STOP_GRACE_SECS)
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


class _PortTaken(Exception):
    def __init__(self, holder: int | None) -> None:
        self.holder = holder


def _port_in_use_message(host: str, port: int, holder: int | None) -> str:
    return (
        f"port {port} on {host} is in use by {describe(holder)}, not by this agent's store: set store_port "
        f"to a free port, or set can_service_url to the CAN Service already listening there "
        f"(http://{host}:{port}) to sync that one"
    )


async def _replace_orphan_holding_root(root: Path) -> None:
    held = lock_holder(root_lock_path(root))
    if held is None:
        return
    orphan = orphan_store(held.pid, root)
    if orphan is None:
        raise EmbeddedStoreError(
            f"the embedded store's root {root} is in use by {describe(held.pid)}, which is not a store that an "
            f"earlier agent of this data_dir left running: stop it (a store started by hand on this root can "
            f"be used with can_service_url instead), or give this agent another data_dir"
        )
    await _end(orphan)


async def _end(orphan: psutil.Process) -> None:
    if not await end_orphan(orphan):
        raise EmbeddedStoreError(
            f"the embedded store left running by a previous agent (pid {orphan.pid}) did not end even when "
            "killed: end it by hand, then start again"
        )


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
