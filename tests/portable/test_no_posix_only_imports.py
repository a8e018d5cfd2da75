"""cansync starts where fcntl, termios, resource and pwd do not exist (Windows), and so never imports them.

Every Python process these tests start has tests/portable/posix_free on PYTHONPATH, whose sitecustomize
refuses those modules to cansync's own code (see there). One process imports every module of the package
and runs the pieces of the agent's start-up that once used them: the node key lock, the interface scan,
the signal setup. Another is a whole `cansync run` with its embedded store and LAN discovery, stopped by
SIGTERM.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import cansync
from tests.helpers.agent_process import start_agent, write_agent_config

POSIX_FREE = Path(__file__).parent / "posix_free"
REFUSED = "posix-only import refused"

START_UP = """
import asyncio, importlib, pkgutil, signal, sys, tempfile
import cansync

try:
    exec("import fcntl", {"__name__": "cansync.probe"})
except ModuleNotFoundError:
    print("blocker active")

modules = [info.name for info in pkgutil.walk_packages(cansync.__path__, "cansync.")]
for name in modules:
    if not name.endswith(".__main__"):  # running the command line is what importing __main__ does
        importlib.import_module(name)
print("imported", len(modules))

from cansync.net.node_key import NodeIdentity
with tempfile.TemporaryDirectory() as data_dir:
    with NodeIdentity.acquire(data_dir) as identity:
        print("node key locked", identity.held)

from cansync.discovery.lan import multicast_interfaces
print("interfaces", multicast_interfaces())

from cansync.portable.stop_signals import stop_on_signals

async def main():
    stopped = asyncio.Event()
    with stop_on_signals(stopped.set):
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stopped.wait(), 10)
    print("stopped by SIGTERM")

asyncio.run(main())
"""


def posix_free_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(POSIX_FREE), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def test_every_module_imports_and_the_start_up_pieces_run_without_posix_only_modules() -> None:
    result = subprocess.run(
        [sys.executable, "-c", START_UP],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **posix_free_env()},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    refused = [line for line in result.stderr.splitlines() if REFUSED in line]
    assert refused == [f"{REFUSED}: fcntl imported by cansync.probe"], result.stderr  # the blocker's self-test only
    expected = len(list(pkgutil.walk_packages(cansync.__path__, "cansync.")))
    assert result.stdout.splitlines() == [
        "blocker active",
        f"imported {expected}",
        "node key locked True",
        "interfaces ['127.0.0.1']",  # lo, up and multicast in tests/isolate.sh's namespace
        "stopped by SIGTERM",
    ]


def test_the_agent_with_its_embedded_store_runs_and_stops_without_posix_only_modules(tmp_path: Path) -> None:
    home = tmp_path / "node"
    write_agent_config(home, sync_passphrase="no fcntl here", lan_discovery=True, store_port=0)
    agent = start_agent(home, "posix-free", env=posix_free_env())
    try:
        assert (home / "data" / "node.pid").read_text().strip() == str(agent.process.pid)
    finally:
        code = agent.stop()
    log = agent.log_text()
    assert code == 0, log[-3000:]
    assert REFUSED not in log, log[-3000:]
    assert log.count("refused to cansync") >= 2, "the agent and its store should both run under the blocker"
    assert "lan discovery: listening for" in log and "on interface 127.0.0.1" in log  # the interface scan ran
    assert "store stopping: parent closed the store's standard input" in log  # the portable clean stop
