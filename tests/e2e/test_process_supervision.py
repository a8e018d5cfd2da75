"""The default setup (`cansync run` with its embedded store on port 3210) survives `kill -9` of the agent.

Real processes only: the agent, the store it starts, a second agent sending to it, a foreign program on the
port. The tests run inside tests/isolate.sh, whose network namespace is their own, so port 3210 is free
there unless a test takes it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from cansync.config import DEFAULT_STORE_PORT
from tests.e2e.conftest import PASSPHRASE, Cluster
from tests.helpers import plain_http
from tests.helpers.agent_process import AgentProcess, start_agent, write_agent_config
from tests.helpers.assets import ingest, make_bytes
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import start_store_process, wait_until

MiB = 1024 * 1024
STORE_URL = f"http://127.0.0.1:{DEFAULT_STORE_PORT}"
API = f"{STORE_URL}/api/v1/can/0"
_LAUNCH = "import sys; from cansync.cli import main; sys.exit(main())"


def gone(process: psutil.Process) -> bool:
    """Ended, or dead and waiting to be reaped (a zombie holds no port, lock or file)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _serves_a_store(process: psutil.Process) -> bool:
    try:
        command = process.cmdline()
    except (psutil.ZombieProcess, psutil.NoSuchProcess):  # a short-lived child that ended: not a store
        return False
    return "store" in command and "serve" in command


def embedded_store_of(agent: AgentProcess) -> psutil.Process:
    stores = [child for child in psutil.Process(agent.process.pid).children() if _serves_a_store(child)]
    assert len(stores) == 1, f"expected one embedded store under agent {agent.process.pid}, found {stores}"
    return stores[0]


def listed_hashes() -> set[str]:
    response = plain_http.get(f"{API}/list", timeout=30)
    response.raise_for_status()
    return {record["hash"] for record in response.json()["data"]}


def write_embedded_config(home: Path) -> Path:
    """No can_service_url and no store_port: the embedded store on port 3210, as `cansync run` starts by default."""
    return write_agent_config(home, sync_passphrase=PASSPHRASE)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    """Every agent a test starts. Afterwards the agents are stopped and any embedded store of tmp_path still
    running (one that outlived its agent when a test fails) is killed, so it cannot hold the port for the next
    test."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()
        print(f"----- agent {agent.name} log tail -----\n{agent.log_text()[-3000:]}")
    for process in psutil.process_iter():
        try:
            command = " ".join(process.cmdline())
            if "--parent-pid" in command and str(tmp_path) in command and not gone(process):
                process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def test_kill_9_of_the_agent_ends_its_embedded_store_and_the_same_command_comes_up_again(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    home = tmp_path / "node"
    write_embedded_config(home)
    agents.append(first := start_agent(home, "first"))
    store = embedded_store_of(first)
    kept = ingest(API, b"kept across the crash", "kept.txt")

    first.kill9()
    assert wait_until(lambda: gone(store), timeout=15), f"store {store.pid} outlived its killed agent"
    assert "store stopping: parent" in first.log_text()  # it stopped itself, cleanly, on seeing its parent go

    agents.append(second := start_agent(home, "second"))
    assert embedded_store_of(second).pid != store.pid
    assert kept in listed_hashes()

    replacement = embedded_store_of(second)
    assert second.stop() == 0
    assert wait_until(lambda: gone(replacement), timeout=15), "a clean stop of the agent left its store running"


def test_a_restart_replaces_a_live_store_that_its_killed_agent_left_behind(
    tmp_path: Path, agents: list[AgentProcess]
) -> None:
    home = tmp_path / "node"
    write_embedded_config(home)
    agents.append(first := start_agent(home, "first"))
    orphan = embedded_store_of(first)
    kept = ingest(API, b"served by the orphan", "orphan.txt")
    orphan.suspend()  # a hung store: its watch on the parent cannot run, so it outlives the agent
    first.kill9()
    assert not gone(orphan)

    agents.append(second := start_agent(home, "second"))
    assert wait_until(lambda: gone(orphan), timeout=15)
    assert embedded_store_of(second).pid != orphan.pid
    assert kept in listed_hashes()
    assert f"left running by a previous agent (pid {orphan.pid})" in second.log_text()


def _run_until_exit(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LAUNCH, "run", "-c", str(home / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_foreign_program_on_the_store_port_is_named_in_one_line_with_the_fix(tmp_path: Path) -> None:
    listener = (
        "import socket, sys, time\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {DEFAULT_STORE_PORT})); s.listen()\n"
        "print('listening', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", listener], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        home = tmp_path / "node"
        write_embedded_config(home)
        result = _run_until_exit(home)
    finally:
        holder.kill()
        holder.wait(10)
    assert result.returncode == 1, result.stderr
    told = [line for line in result.stderr.splitlines() if line.startswith("cansync run:")]
    assert told == [
        f"cansync run: port {DEFAULT_STORE_PORT} on 127.0.0.1 is in use by process {holder.pid} "
        f"({psutil.Process().name()}), not by this agent's store: set store_port to a free port, or set "
        f"can_service_url to the CAN Service already listening there (http://127.0.0.1:{DEFAULT_STORE_PORT}) "
        "to sync that one"
    ], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("parent", ["none", "alive"])
def test_a_store_on_the_agents_root_that_is_not_its_orphan_is_named_and_left_alone(tmp_path: Path, parent: str) -> None:
    """Started by hand (no --parent-pid), or by a process that is still alive: not ours to end."""
    home = tmp_path / "node"
    write_embedded_config(home)
    extra = ["--parent-pid", str(os.getpid())] if parent == "alive" else []
    by_hand = start_store_process(home / "data" / "store", port=0, extra_args=extra, stdin=subprocess.PIPE)
    try:
        result = _run_until_exit(home)
        assert by_hand.is_running(), "the agent ended a store that was not its own"
    finally:
        by_hand.stop()
    assert result.returncode == 1, result.stderr
    told = [line for line in result.stderr.splitlines() if line.startswith("cansync run:")]
    assert len(told) == 1 and f"is in use by process {by_hand.pid}" in told[0], result.stderr
    assert "can_service_url" in told[0] and "Traceback" not in result.stderr


def _asset_sha256(asset: str) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", f"{API}/asset/{asset}", timeout=120) as response:
        response.raise_for_status()
        for block in response.iter_bytes(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def test_kill_9_of_the_default_setup_mid_transfer_then_the_same_command_finishes_the_sync(
    cluster: Cluster, agents: list[AgentProcess]
) -> None:
    sender = cluster.add("sender")
    size = 96 * MiB  # the kill comes after 4 checkpoints (one per chunk of 1 MiB): ~90 MiB are still to come
    asset = ingest(sender.api, make_bytes(11, size), "big.bin")
    home = cluster.base / "receiver"
    write_embedded_config(home)
    agents.append(receiver := start_agent(home, "receiver"))
    sender.start_agent(connect_ticket_file=home / "ticket.json")

    def progress() -> tuple[int, int]:
        rows = journal_rows(
            home,
            "SELECT sum(kind='transfer_checkpointed'), sum(kind='transfer_completed') FROM events WHERE hash=?",
            asset,
        )
        return (rows[0][0] or 0, rows[0][1] or 0) if rows else (0, 0)

    assert wait_until(lambda: progress()[0] >= 4, timeout=120, interval=0.02), "the transfer never got going"
    store = embedded_store_of(receiver)
    receiver.kill9()
    assert progress()[1] == 0, "the transfer finished before the kill: nothing was cut off"
    assert wait_until(lambda: gone(store), timeout=15), f"store {store.pid} outlived its killed agent"

    agents.append(start_agent(home, "receiver again"))
    assert wait_until(lambda: asset in listed_hashes(), timeout=180, interval=0.5), "the sync never finished"
    assert _asset_sha256(asset) == asset
    assert progress()[1] == 1
    starts = journal_rows(
        home, "SELECT json_extract(data,'$.offset') FROM events WHERE kind='transfer_started' AND hash=?", asset
    )
    print(f"transfer starts at offsets {[offset for (offset,) in starts]} of {size} bytes")
