"""The store's HTTP server: build the aiohttp app, run it in-process or as `cansync store serve`."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

from aiohttp import web

from cansync.store.assets import AssetStore
from cansync.store.envelope import envelope_errors
from cansync.store.public_api import SETTINGS_KEY, STORE_KEY, add_public_routes
from cansync.store.settings import StoreSettings
from cansync.store.sync_api import add_sync_routes, sync_key_guard

JSON_BODY_LIMIT = 16 * 1024 * 1024  # ingest/data and PATCH bodies; streamed routes are not bounded by it
SHUTDOWN_GRACE_SECS = 5.0

log = logging.getLogger("cansync.store")


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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def aclose(self) -> None:
        await self.runner.cleanup()
        self.store.close()


async def start_store(settings: StoreSettings) -> RunningStore:
    """Open the store under settings.root and start serving; port 0 picks a free port."""
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
        raise OSError(exc.errno, f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from exc
    host, port = runner.addresses[0][:2]
    return RunningStore(settings=settings, store=store, runner=runner, host=host, port=port)


async def serve_until_stopped(settings: StoreSettings) -> None:
    """Serve until SIGTERM or SIGINT; announce `READY <url>` on stdout once listening."""
    running = await start_store(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY {running.url}", flush=True)
    log.info(
        "store at %s serving %s (sync API %s)",
        running.url,
        settings.root,
        "enabled" if settings.sync_enabled else "disabled",
    )
    try:
        await stop.wait()
    finally:
        await running.aclose()


def run_store(settings: StoreSettings) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve_until_stopped(settings))
    except OSError as exc:
        print(f"cansync store: {exc}", file=sys.stderr)
        return 1
    return 0
