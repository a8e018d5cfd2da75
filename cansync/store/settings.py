"""How the store is started: storage root, address, sync key; from flags, CAN_PORT and config.yaml.

The store reads a CAN Service config.yaml (storage_root, sync_api_key, and keys it does not use such as
admin_token), not the agent's. Flags win over the environment (CAN_PORT, CANSYNC_STORE_SYNC_KEY), which
wins over the file, which wins over the defaults of the original (port 3210, ./can_data).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PORT = 3210
DEFAULT_HOST = "127.0.0.1"
DEFAULT_ROOT = Path("can_data")
SYNC_KEY_ENV = "CANSYNC_STORE_SYNC_KEY"  # lets a parent process pass the key without `ps` showing it
KNOWN_CONFIG_KEYS = frozenset(
    {
        "storage_root",
        "sync_api_key",
        "admin_token",
        "enable_thumbnail_cache",
        "verify_interval_hours",
        "rebuild_error_threshold",
        "port",
        "host",
    }
)


class StoreConfigError(ValueError):
    """A store setting that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True)
class StoreSettings:
    root: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sync_key: str | None = None  # None or "": the sync API is disabled
    sse_keepalive_secs: float = 15.0

    @property
    def sync_enabled(self) -> bool:
        return bool(self.sync_key)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StoreConfigError(f"cannot read store config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise StoreConfigError(f"store config {path} is not UTF-8 text: {exc}") from exc
    except yaml.YAMLError as exc:
        raise StoreConfigError(f"store config {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StoreConfigError(f"store config {path} must be a mapping such as `storage_root: ./can_data`")
    unknown = sorted(set(loaded) - KNOWN_CONFIG_KEYS)
    if unknown:
        raise StoreConfigError(
            f"store config {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_CONFIG_KEYS))}"
        )
    return loaded


def _port(value: Any, source: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise StoreConfigError(f"{source} must be a port number 0-65535, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise StoreConfigError(f"{source} must be a port number 0-65535, got {port}")
    return port


def load_store_settings(
    *,
    config_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    port: int | None = None,
    host: str | None = None,
    sync_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreSettings:
    env = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    base_dir = Path.cwd()
    if config_path is not None:
        file_values = _read_config(Path(config_path))
        base_dir = Path(config_path).resolve().parent
    if root is not None:
        resolved_root = Path(root)
    elif file_values.get("storage_root"):
        resolved_root = Path(str(file_values["storage_root"])).expanduser()
        if not resolved_root.is_absolute():
            resolved_root = base_dir / resolved_root
    else:
        resolved_root = Path.cwd() / DEFAULT_ROOT
    if port is not None:
        resolved_port = _port(port, "--port")
    elif env.get("CAN_PORT"):
        resolved_port = _port(env["CAN_PORT"], "CAN_PORT")
    elif "port" in file_values:
        resolved_port = _port(file_values["port"], f"port in {config_path}")
    else:
        resolved_port = DEFAULT_PORT
    key: Any
    if sync_key is not None:
        key = sync_key
    elif env.get(SYNC_KEY_ENV):
        key = env[SYNC_KEY_ENV]
    else:
        key = file_values.get("sync_api_key")
    if key is not None and not isinstance(key, str | int):
        raise StoreConfigError(f"sync_api_key in {config_path} must be a string")
    return StoreSettings(
        root=resolved_root.resolve(),
        host=host or str(file_values.get("host") or DEFAULT_HOST),
        port=resolved_port,
        sync_key=str(key) if key not in (None, "") else None,
    )
