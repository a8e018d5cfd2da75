"""The store's HTTP server: build the aiohttp app, run it in-process or as `cansync store serve`."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from dataclasses import dataclass

from aiohttp import web

from cansync.portable.pid_lock import PidLock
from cansync.portable.stop_signals import stop_on_signals
from cansync.store.assets import AssetStore
from cansync.store.envelope import envelope_errors
from cansync.store.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_PORT_IN_USE, EXIT_ROOT_IN_USE
from cansync.store.parent_watch import wait_for_parent_exit
from cansync.store.public_api import SETTINGS_KEY, STORE_KEY, add_public_routes
from cansync.store.root_lock import StoreRootInUse, lock_store_root
from cansync.store.settings import StoreSettings
from cansync.store.sync_api import add_sync_routes, sync_key_guard

JSON_BODY_LIMIT = 16 * 1024 * 1024  # ingest/data and PATCH bodies; streamed routes are not bounded by it
SHUTDOWN_GRACE_SECS = 5.0

log = logging.getLogger("cansync.store")


class PortInUse(OSError):
    """Another program listens on the store's port."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            errno.EADDRINUSE,
            f"port {port} on {host} is already in use by another program: pass --port (or set CAN_PORT) "
            f"to a free port, or stop that program",
        )
        self.host = host
        self.port = port


def build_app(store: AssetStore, settings: StoreSettings) -> web.Application:
    app = web.Application(middlewares=[envelope_errors, sync_key_guard], client_max_size=JSON_BODY_LIMIT)
    app[STORE_KEY] = store
    app[SETTINGS_KEY] = settings
    add_public_routes(app)
    add_sync_routes(app)

    async def end_streams(_app: web.Application) -> None:
        store.feed.close_all()  # SSE handlers return, so shutdown does not wait on them

    app.on_shutdown.append(end_streams)
    return app


@dataclass
class RunningStore:
    """A store serving in this process (the agent's embedded store, or the CLI)."""

    settings: StoreSettings
    store: AssetStore
    runner: web.AppRunner
    host: str
    port: int
    root_lock: PidLock

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def aclose(self) -> None:
        try:
            await self.runner.cleanup()
            self.store.close()
        finally:
            self.root_lock.release()


async def start_store(settings: StoreSettings) -> RunningStore:
    """Lock and open the store under settings.root and start serving; port 0 picks a free port.

    Raises StoreRootInUse when another store serves that root, PortInUse when the port is taken."""
    root_lock = lock_store_root(settings.root)
    try:
        return await _open_and_listen(settings, root_lock)
    except BaseException:
        root_lock.release()
        raise


async def _open_and_listen(settings: StoreSettings, root_lock: PidLock) -> RunningStore:
    store = await asyncio.to_thread(AssetStore, settings.root)
    store.bind_loop(asyncio.get_running_loop())
    runner = web.AppRunner(
        build_app(store, settings), handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECS
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        store.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(settings.host, settings.port) from exc
        raise OSError(exc.errno, f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
    host, port = runner.addresses[0][:2]
    return RunningStore(settings=settings, store=store, runner=runner, host=host, port=port, root_lock=root_lock)


async def serve_until_stopped(settings: StoreSettings, parent_pid: int | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM, or until the parent process (when given) is gone; announce
    `READY <url>` on stdout once listening."""
    running = await start_store(settings)
    stop = asyncio.Event()
    parent_watch = None
    if parent_pid is not None:
        parent_watch = asyncio.create_task(_stop_when_parent_exits(parent_pid, stop), name="parent-watch")
    try:
        with stop_on_signals(stop.set):
            print(f"READY {running.url}", flush=True)
            log.info(
                "store at %s serving %s (sync API %s)",
                running.url,
                settings.root,
                "enabled" if settings.sync_enabled else "disabled",
            )
            await stop.wait()
    finally:
        if parent_watch is not None:
            parent_watch.cancel()
        await running.aclose()


async def _stop_when_parent_exits(parent_pid: int, stop: asyncio.Event) -> None:
    reason = await wait_for_parent_exit(parent_pid)
    log.info("store stopping: %s", reason)
    stop.set()


def run_store(settings: StoreSettings, parent_pid: int | None = None) -> int:
    """`cansync store serve`; the exit code says why it ended (cansync.store.exit_codes). A store that has a
    parent leaves the message about a taken port or root to the parent, which knows the fix."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve_until_stopped(settings, parent_pid))
    except PortInUse as exc:
        if parent_pid is None:
            print(f"cansync store: {exc.strerror}", file=sys.stderr)
        return EXIT_PORT_IN_USE
    except StoreRootInUse as exc:
        if parent_pid is None:
            print(f"cansync store: {exc}", file=sys.stderr)
        return EXIT_ROOT_IN_USE
    except OSError as exc:
        print(f"cansync store: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
