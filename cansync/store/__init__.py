"""A CAN Service-compatible store (`cansync store serve`): a separate program the agent reaches over HTTP.

In-process use (the agent's embedded store)::

    settings = load_store_settings(root=data_dir / "store", port=3210, sync_key=key)
    running = await start_store(settings)   # running.url, await running.aclose()
"""

from cansync.store.server import RunningStore, build_app, run_store, start_store
from cansync.store.settings import StoreConfigError, StoreSettings, load_store_settings

__all__ = [
    "RunningStore",
    "StoreConfigError",
    "StoreSettings",
    "build_app",
    "load_store_settings",
    "run_store",
    "start_store",
]
