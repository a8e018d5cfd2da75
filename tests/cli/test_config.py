"""Configuration mistakes are refused at config time in one line that names the key and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cansync.config import DEFAULT_WEB_ADDR, Config, ConfigError, is_loopback_addr, load_config

CANSYNC = Path(sys.executable).parent / "cansync"


def cansync(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CANSYNC), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_new_keys_have_their_documented_defaults(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"data_dir": str(tmp_path)})
    assert config.web_addr == DEFAULT_WEB_ADDR == "127.0.0.1:3290" and config.web_enabled
    assert config.web_token is None
    assert (config.max_send_kbps, config.max_recv_kbps) == (0, 0)
    assert config.log_format == "text"
    assert config.warnings() == []


def test_new_keys_from_file_environment_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("web_addr: '0.0.0.0:4000'\nweb_token: s3cret\nmax_send_kbps: 2000\nlog_format: json\n")
    env = {"CANSYNC_MAX_RECV_KBPS": "8000", "CANSYNC_WEB_TOKEN": "from-env"}
    config = load_config(path, overrides={"max_send_kbps": 300}, environ=env)
    assert (config.web_addr, config.web_token) == ("0.0.0.0:4000", "from-env")
    assert (config.max_send_kbps, config.max_recv_kbps, config.log_format) == (300, 8000, "json")
    assert "s3cret" not in repr(config) and "from-env" not in repr(config)
    off = load_config(path, environ={"CANSYNC_WEB_ADDR": "''"})
    assert off.web_addr == "" and not off.web_enabled


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"max_send_kbps": -1}, "max_send_kbps must be a whole number of KiB/s"),
        ({"max_recv_kbps": 1.5}, "max_recv_kbps must be a whole number"),
        ({"max_send_kbps": 100}, "max_send_kbps must be 0 (unlimited) or at least 256 KiB/s"),
        ({"log_format": "xml"}, "log_format must be text or json"),
        ({"web_addr": "3290"}, "web_addr must look like 127.0.0.1:3290"),
        ({"web_token": ""}, "web_token must be a non-empty string"),
        ({"web_addr": "0.0.0.0:3290"}, "set web_token"),
        ({"web_addr": "192.168.1.5:3290"}, "reachable from other machines but web_token is not set"),
    ],
)
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, raw: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides={"data_dir": str(tmp_path), **raw}, environ={})
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_loopback_addresses() -> None:
    assert all(is_loopback_addr(a) for a in ("127.0.0.1:3290", "127.9.9.9:1", "[::1]:3290", "localhost:80"))
    assert not any(is_loopback_addr(a) for a in ("0.0.0.0:3290", "[::]:1", "example.org:80", "10.0.0.1:2"))
    assert load_config(overrides={"web_addr": "[::1]:3290"}, environ={}).web_token is None


def test_a_data_dir_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    for data_dir in (blocker, blocker / "below"):
        with pytest.raises(ConfigError) as caught:
            load_config(overrides={"data_dir": str(data_dir)}, environ={})
        assert f"data_dir {data_dir} cannot be a directory: a file is in the way" in str(caught.value)
        assert "set data_dir" in str(caught.value)
    for command in (["run", "--passphrase", "p"], ["status"], ["journal", "inspect"], ["ticket"]):
        result = cansync(*command, "--data-dir", str(blocker))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "configuration error: data_dir" in result.stderr and "a file is in the way" in result.stderr
    assert blocker.read_text() == "not a directory"


def test_a_missing_connect_ticket_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    ticket = tmp_path / "peer" / "ticket.json"
    config = load_config(overrides={"data_dir": str(tmp_path), "connect_ticket_file": str(ticket)}, environ={})
    [warning] = config.warnings()
    assert warning.startswith(f"connect_ticket_file {ticket} does not exist yet") and "\n" not in warning
    ticket.parent.mkdir()
    ticket.write_text("{}")
    assert config.warnings() == []


def test_the_default_config_is_valid() -> None:
    assert Config().web_enabled and Config().warnings() == []
