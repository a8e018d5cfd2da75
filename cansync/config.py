"""The agent's configuration: config.yaml, then CANSYNC_<KEY> environment values, then flags.

The Rust agent's keys work unchanged; ours add data_dir, bind_addr, relays, pkarr_relays,
lan_discovery, the dashboard (web_addr, web_token), bandwidth limits and the log format. A bad value
is refused with a one-line message that names the key and the fix; a value that is legal but probably
not what was meant (a connect_ticket_file that does not exist yet) is reported by Config.warnings().
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PureWindowsPath
from typing import Any

from cansync.portable.windows_names import path_text_problem

DEFAULT_PKARR_RELAYS = ("https://pkarr.pubky.app", "https://pkarr.pubky.org")
DEFAULT_STORE_PORT = 3210
DEFAULT_WEB_ADDR = "127.0.0.1:3290"
LOG_FORMATS = ("text", "json")
MIN_LIMIT_KIBPS = 256
"""The lowest bandwidth limit: a peer gives up on a 4 MiB chunk that moves nothing new for 30 s, and
at 256 KiB/s one takes 16 s."""
ENV_PREFIX = "CANSYNC_"
# YAML reads backslashes in double quotes as escapes: "C:\Users" fails, and "C:\new" holds a newline
_WINDOWS_PATH_HINT = (
    "write Windows paths unquoted, in single quotes or with forward slashes (data_dir: 'C:\\Users\\me\\cansync'), "
    "never in double quotes, where YAML reads backslashes as escapes"
)


class ConfigError(ValueError):
    """A configuration the agent cannot start with; the message says which key and how to fix it."""


@dataclass(frozen=True)
class Config:
    # secrets stay out of repr(), so a config that ends up in a log or a traceback shows none of them
    sync_passphrase: str | None = field(default=None, repr=False)
    can_service_url: str | None = None
    sync_api_key: str | None = field(default=None, repr=False)
    poll_interval_secs: float = 3.0
    ticket_file: Path | None = None
    connect_ticket_file: Path | None = None
    data_dir: Path = Path("cansync-data")
    bind_addr: str = "0.0.0.0:0"
    relays: tuple[str, ...] | None = None  # None: iroh's default relays; () turns relays off
    pkarr_relays: tuple[str, ...] = DEFAULT_PKARR_RELAYS
    lan_discovery: bool = True
    store_port: int = DEFAULT_STORE_PORT  # port of the embedded store when can_service_url is unset
    transfer_stall_secs: float = 30.0  # a transfer that moves no byte for this long is cut off and retried
    rendezvous_scan_secs: float = 15.0  # how often the 8 pkarr slots are read (the Rust agent: 15 s)
    rendezvous_publish_secs: float = 60.0  # how often our slot and address record are re-published (Rust: 60 s)
    web_addr: str = DEFAULT_WEB_ADDR  # the dashboard, JSON API and /metrics; "" turns them off
    web_token: str | None = field(default=None, repr=False)  # required when web_addr is not a loopback address
    max_send_kbps: int = 0  # KiB/s over all peers (as Syncthing's maxSendKbps); 0 = unlimited
    max_recv_kbps: int = 0
    log_format: str = "text"  # "text" or "json" (one object per line, for log shippers)
    source: str = field(default="defaults", compare=False)

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"

    @property
    def node_key_path(self) -> Path:
        return self.data_dir / "node.key"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def embedded_store_root(self) -> Path:
        return self.data_dir / "store"

    @property
    def web_enabled(self) -> bool:
        return bool(self.web_addr)

    def warnings(self) -> list[str]:
        """One-line notes on values that are legal but may not be what was meant (logged once at start)."""
        notes = []
        path = self.connect_ticket_file
        if path is not None and not path.exists():
            notes.append(
                f"connect_ticket_file {path} does not exist yet: the agent dials the peer in it once it appears "
                "(copy the peer's ticket.json there, or unset connect_ticket_file)"
            )
        return notes

    def require_passphrase(self) -> str:
        if not self.sync_passphrase:
            raise ConfigError(
                "sync_passphrase is not set: put `sync_passphrase: <phrase>` in config.yaml, set "
                "CANSYNC_SYNC_PASSPHRASE, or pass --passphrase (use the same phrase on every machine)"
            )
        return self.sync_passphrase


_KEYS = {f.name for f in fields(Config)} - {"source"}
_PATH_KEYS = {"ticket_file", "connect_ticket_file", "data_dir"}


def _coerce(key: str, value: Any, base_dir: Path) -> Any:
    """Turn one raw value into the type Config holds, or say what is wrong with it."""
    if key in _PATH_KEYS:
        if value is None and key != "data_dir":
            return None
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise ConfigError(f"{key} must be a path, got {value!r}")
        path = Path(value).expanduser()
        path = path if path.is_absolute() else base_dir / path
        problem = path_text_problem(str(path), windows=isinstance(path, PureWindowsPath))
        if problem is not None:
            fix = _WINDOWS_PATH_HINT if any(ord(c) < 32 for c in str(value)) else "choose another name"
            raise ConfigError(f"{key} {str(value)!r} cannot be used here: {problem}; {fix}")
        return path
    if key in ("relays", "pkarr_relays"):
        if value is None and key == "relays":
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not all(isinstance(u, str) for u in value):
            raise ConfigError(f"{key} must be a list of URLs (an empty list [] turns it off), got {value!r}")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{key} entry {url!r} is not an http(s) URL")
        return tuple(value)
    if key in ("poll_interval_secs", "transfer_stall_secs", "rendezvous_scan_secs", "rendezvous_publish_secs"):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}")
        return float(value)
    if key == "store_port":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            raise ConfigError(f"store_port must be a port number 0-65535, got {value!r}")
        return value
    if key in ("max_send_kbps", "max_recv_kbps"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} must be a whole number of KiB/s, 0 for unlimited, got {value!r}")
        if 0 < value < MIN_LIMIT_KIBPS:
            raise ConfigError(
                f"{key} must be 0 (unlimited) or at least {MIN_LIMIT_KIBPS} KiB/s, got {value}: "
                "below that a peer cuts off a 4 MiB chunk as stalled"
            )
        return value
    if key == "log_format":
        if value not in LOG_FORMATS:
            raise ConfigError(f"log_format must be text or json, got {value!r}")
        return value
    if key == "web_addr":
        return _web_addr(value)
    if key == "web_token":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise ConfigError("web_token must be a non-empty string (or leave it unset on a loopback web_addr)")
        return str(value)
    if key == "lan_discovery":
        if not isinstance(value, bool):
            raise ConfigError(f"lan_discovery must be true or false, got {value!r}")
        return value
    if key == "bind_addr":
        host, sep, port = str(value).rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"bind_addr must look like 0.0.0.0:0 (host:port), got {value!r}")
        return str(value)
    if key == "can_service_url":
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise ConfigError(f"can_service_url must be an http(s) URL such as http://127.0.0.1:3210, got {value!r}")
        return value.rstrip("/")
    # passphrase, sync key: strings (numbers in YAML are accepted as their text)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{key} must be a string")
    return str(value)


def _web_addr(value: Any) -> str:
    if value is None or value == "":
        return ""  # the dashboard is off
    host, port = _split_host_port(str(value))
    if host is None or port is None or not 0 <= port <= 65535:
        raise ConfigError(
            f"web_addr must look like {DEFAULT_WEB_ADDR} (host:port; an empty string turns the dashboard off), "
            f"got {value!r}"
        )
    return str(value)


def _split_host_port(addr: str) -> tuple[str | None, int | None]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None, None
    return host.removeprefix("[").removesuffix("]"), int(port)


def is_loopback_addr(addr: str) -> bool:
    """True when host:port listens only on this machine (127.0.0.0/8, ::1, localhost)."""
    host, _port = _split_host_port(addr)
    return host is not None and is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback IPs (a bare host, IPv6 with or without brackets)."""
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def _check_together(config: Config) -> None:
    """Rules that span keys or look at the machine: said at config time, never as a traceback later."""
    if config.web_addr and not config.web_token and not is_loopback_addr(config.web_addr):
        raise ConfigError(
            f"web_addr {config.web_addr} is reachable from other machines but web_token is not set: set web_token "
            f"(CANSYNC_WEB_TOKEN or --web-token) to a long random string, or use {DEFAULT_WEB_ADDR}"
        )
    for place in (config.data_dir, *config.data_dir.parents):
        if place.exists():
            if not place.is_dir():
                where = "" if place == config.data_dir else f" (its parent {place} is)"
                raise ConfigError(
                    f"data_dir {config.data_dir} cannot be a directory: a file is in the way{where}; "
                    "set data_dir (or --data-dir / CANSYNC_DATA_DIR) to a directory, or move the file away"
                )
            break


class _BadYaml(ValueError):
    """A text that is not YAML; the message is the parser's, on one line."""


def _load_yaml(text: str) -> Any:
    # imported here: a command given flags alone (`cansync status --data-dir D`) skips 20 ms of imports
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _BadYaml(" ".join(str(exc).split())) from exc


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read config.yaml (if given), then CANSYNC_* environment values, then explicit overrides."""
    raw: dict[str, Any] = {}
    base_dir = Path.cwd()
    source = "defaults"
    if path is not None:
        cfg_path = Path(path)
        try:
            text = cfg_path.read_text(encoding="utf-8")  # not the locale's code page (Windows): passphrases differ
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {cfg_path} as UTF-8 text: {exc}") from exc
        try:
            loaded = _load_yaml(text)
        except _BadYaml as exc:
            hint = f"; {_WINDOWS_PATH_HINT}" if "escape" in str(exc) else ""
            raise ConfigError(f"{cfg_path} is not valid YAML: {exc}{hint}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{cfg_path} must be a YAML mapping of keys to values")
        unknown = sorted(set(loaded) - _KEYS)
        if unknown:
            raise ConfigError(
                f"{cfg_path}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(_KEYS))}"
            )
        raw.update(loaded)
        base_dir = cfg_path.resolve().parent
        source = str(cfg_path)
    env = os.environ if environ is None else environ
    for key in _KEYS:
        env_name = ENV_PREFIX + key.upper()
        if env_name in env:
            try:
                raw[key] = _load_yaml(env[env_name])
            except _BadYaml as exc:
                raise ConfigError(f"{env_name} is not a valid YAML value: {exc}") from exc
    for key, value in (overrides or {}).items():
        if key not in _KEYS:
            raise ConfigError(f"unknown setting {key}")
        if value is not None:
            raw[key] = value
    values = {key: _coerce(key, value, base_dir) for key, value in raw.items()}
    if "data_dir" not in values:
        values["data_dir"] = base_dir / Config.data_dir
    config = Config(**values, source=source)
    _check_together(config)
    return config
