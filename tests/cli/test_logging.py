"""Logs a person can read: per-request and migration lines only at DEBUG, JSON lines that parse, short errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import iroh
import pytest
from iroh.iroh_ffi import uniffi_set_event_loop

from cansync.cli.logging_setup import OutageLog, configure_logging, one_line_error
from tests.helpers.store_process import TEST_SYNC_KEY, StoreProcess, running_store

# A process that logs as every cansync command does, then talks to a real store and opens (migrates) a
# journal: the requests and the migration are exactly what filled the agent's log before.
CLIENT_SCRIPT = """
import asyncio, logging, sys
from cansync.cli.logging_setup import configure_logging
from cansync.can.client import CanClient
from cansync.journal.recorder import Journal

async def main(url, key, journal_path):
    log = logging.getLogger("cansync.agent.runtime")
    log.info("agent started")
    async with CanClient(url, key) as can:
        for since in range(5):
            await can.hashes(since=since)
        await can.metadata(["0" * 64])
    journal = await Journal.open(journal_path)
    await journal.close()
    try:
        raise RuntimeError("the store went away")
    except RuntimeError:
        log.exception("a failure worth a traceback")
    log.info("agent stopped")

configure_logging(sys.argv[1], sys.argv[2])
asyncio.run(main(sys.argv[3], sys.argv[4], sys.argv[5]))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreProcess]:
    with running_store(tmp_path_factory.mktemp("logging") / "store", sync_key=TEST_SYNC_KEY) as process:
        yield process


def run_client(store: StoreProcess, tmp_path: Path, level: str, log_format: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT, level, log_format, store.url, TEST_SYNC_KEY, str(tmp_path / "j.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_info_shows_our_lines_and_no_request_or_migration_lines(store: StoreProcess, tmp_path: Path) -> None:
    lines = run_client(store, tmp_path, "INFO", "text")
    ours = [line for line in lines if " cansync.agent.runtime: " in line]
    messages = [line.split(": ", 1)[1] for line in ours]
    assert messages == ["agent started", "a failure worth a traceback", "agent stopped"]
    assert not [line for line in lines if "HTTP Request" in line or "httpx" in line or "httpcore" in line]
    assert not [line for line in lines if "alembic" in line or "setup plugin" in line or "Running upgrade" in line]
    assert any(line.startswith("RuntimeError: the store went away") for line in lines)
    # the store served every request without writing a line per request
    assert "/sync/hashes" not in store.log_text() and "/sync/pull" not in store.log_text()
    assert f"store at {store.url} serving" in store.log_text()


def test_debug_lets_the_request_and_migration_lines_through(store: StoreProcess, tmp_path: Path) -> None:
    lines = run_client(store, tmp_path, "DEBUG", "text")
    requests = [line for line in lines if "HTTP Request: POST" in line and "/sync/hashes" in line]
    assert len(requests) == 5
    assert any(line.split()[3].startswith("alembic") for line in lines if len(line.split()) > 3)


def test_json_format_is_one_object_per_line(store: StoreProcess, tmp_path: Path) -> None:
    lines = run_client(store, tmp_path, "INFO", "json")
    records = [json.loads(line) for line in lines]  # every line parses on its own
    assert all(set(r) >= {"time", "level", "logger", "message"} and r["time"].endswith("Z") for r in records)
    messages = [r["message"] for r in records if r["logger"] == "cansync.agent.runtime"]
    assert messages == ["agent started", "a failure worth a traceback", "agent stopped"]
    [failure] = [r for r in records if r["message"] == "a failure worth a traceback"]
    assert failure["level"] == "ERROR" and "RuntimeError: the store went away" in failure["exception"]
    assert not [r for r in records if r["logger"].startswith(("httpx", "httpcore", "alembic", "aiosqlite"))]


def test_store_serve_logs_json_when_asked(tmp_path: Path) -> None:
    with running_store(tmp_path / "store", env={"CANSYNC_LOG_FORMAT": "json"}) as process:
        pass
    [started] = [json.loads(line) for line in process.log_text().splitlines() if "serving" in line]
    assert started["logger"] == "cansync.store" and started["level"] == "INFO"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging changes the root logger of this process: put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("httpx", "alembic")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def test_configuring_twice_replaces_the_handler_and_can_quiet_again(root_logging: None) -> None:
    first = configure_logging("DEBUG", "text")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.DEBUG
    second = configure_logging("INFO", "json")
    root = logging.getLogger()
    assert first not in root.handlers and second in root.handlers
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("alembic.runtime.plugins").getEffectiveLevel() == logging.WARNING
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        configure_logging("INFO", "xml")


# A chain as the bindings give it (iroh 1.2.0, a dial refused for its ALPN), kept as data.
IROH_CHAIN = (
    "ConnectError::Connecting (/github/home/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/iroh-1.4.1/"
    "src/endpoint.rs:1076:20)\nCaused by:\n    ConnectingError::ConnectionError (/rustc/58cf8f9c35b355199727627d07ae"
    "34a4e2846d67/library/core/src/task/poll.rs:258:39)\n    aborted by peer: the cryptographic handshake failed: "
    "error 120: peer doesn't support any known protocol"
)


def test_one_line_error_drops_rust_paths_and_headers() -> None:
    line = one_line_error(IROH_CHAIN)
    assert line == (
        "aborted by peer: the cryptographic handshake failed: error 120: peer doesn't support any known protocol"
    )
    anyhow = "connecting failed\n\nCaused by:\n    0: timed out\n    1: no route\n\nStack backtrace:\n   0: x.rs:1"
    assert one_line_error(anyhow) == "connecting failed: timed out: no route"
    debug = 'TransportError(Error { code: Code::crypto(78), frame: None, reason: "peer doesn\'t support it" })'
    assert one_line_error(debug) == "peer doesn't support it"
    assert one_line_error(RuntimeError("x" * 500), limit=50) == "x" * 49 + "…"
    assert one_line_error(ValueError()) == "ValueError"


async def test_one_line_error_on_a_real_iroh_failure() -> None:
    uniffi_set_event_loop(asyncio.get_running_loop())  # type: ignore[arg-type]

    def options(alpn: bytes) -> iroh.EndpointOptions:
        return iroh.EndpointOptions(
            preset=iroh.preset_minimal(), relay_mode=iroh.RelayMode.disabled(), bind_addr="127.0.0.1:0",
            secret_key=secrets.token_bytes(32), alpns=[alpn],
        )  # fmt: skip

    server = await iroh.Endpoint.bind(options(b"cansync-test/server"))
    client = await iroh.Endpoint.bind(options(b"cansync-test/client"))

    async def refuse_one() -> None:  # the server's side of the handshake, which fails on the ALPN
        incoming = await server.accept_next()
        assert incoming is not None
        with contextlib.suppress(iroh.IrohError):
            await (await incoming.accept()).connect()

    accepting = asyncio.create_task(refuse_one())
    try:
        with pytest.raises(iroh.IrohError) as caught:
            await asyncio.wait_for(client.connect(server.addr(), b"cansync-test/client"), 10)
        assert ".rs:" in caught.value.message()  # what used to reach the log
        line = one_line_error(caught.value)
        assert "\n" not in line and ".rs:" not in line and "Caused by" not in line
        assert "protocol" in line
    finally:
        accepting.cancel()
        await client.close()
        await server.close()


def test_outage_log_says_a_problem_once_then_rarely_then_when_over(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    log = logging.getLogger("cansync.test.outage")
    outages = OutageLog(log, repeat_secs=600, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=log.name)
    said = []
    for _ in range(80):  # a failure every 3 s for 4 minutes
        said.append(outages.problem("sync_api_key", "store refused our key: %s", "HTTP 403"))
        now[0] += 3
    assert said.count(True) == 1 and outages.active("sync_api_key")
    assert outages.problem("other", "another problem") is True  # one key's outage hides no other's
    now[0] += 600
    assert outages.problem("sync_api_key", "store refused our key: %s", "HTTP 403") is True
    assert outages.resolved("sync_api_key", "store accepts our key again") is True
    assert outages.resolved("sync_api_key", "said twice?") is False
    assert outages.problem("sync_api_key", "store refused our key: %s", "HTTP 401") is True  # a new outage
    messages = [r.getMessage() for r in caplog.records if r.name == log.name]
    assert messages[0] == "store refused our key: HTTP 403" and messages[1] == "another problem"
    assert messages[2].startswith("store refused our key: HTTP 403 (still so: 80 more time(s) since it was last said")
    assert messages[3:] == ["store accepts our key again", "store refused our key: HTTP 401"]
