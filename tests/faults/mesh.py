"""Three (or more) real stores and real `cansync run` agents on 127.0.0.1, wired in a ring.

Each agent reaches its store through a CuttableLink (so a test can drop the SSE stream and every
other store connection), agent i dials agent i+1 by ticket file, and one node may keep its data_dir
on a SmallDisk. Everything here is a real process; the helpers only start, stop and read them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.proxy_thread import CuttableLink
from tests.faults.small_disk import SmallDisk
from tests.helpers.agent_process import AgentProcess, AgentStartError, write_agent_config
from tests.helpers.store_process import StoreProcess, start_store_process

_LAUNCH = "import sys; from cansync.cli import main; sys.exit(main())"
AGENT_START_TIMEOUT = 45.0


@dataclass
class MeshNode:
    name: str
    home: Path
    store: StoreProcess
    link: CuttableLink
    passphrase: str
    sync_key: str
    disk: SmallDisk | None = None
    agent: AgentProcess | None = None
    agent_starts: int = 0
    connect_to: Path | None = field(default=None)

    @property
    def api(self) -> str:
        """The store's public API, reached directly (users are not behind the agent's proxy)."""
        return self.store.api

    @property
    def prefix(self) -> list[str]:
        return self.disk.prefix if self.disk is not None else []

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def data_path(self, relative: str) -> Path:
        """A file under data_dir as this test process can open it (through the small disk if any)."""
        path = self.data_dir / relative
        return self.disk.outside(path) if self.disk is not None else path

    def write_config(self) -> Path:
        settings: dict[str, object] = {
            "sync_passphrase": self.passphrase,
            "can_service_url": self.link.url,
            "sync_api_key": self.sync_key,
        }
        if self.connect_to is not None:
            settings["connect_ticket_file"] = self.connect_to
        return write_agent_config(self.home, **settings)

    def start_agent(self) -> AgentProcess:
        """`cansync run -c home/config.yaml` (under nsenter when the data_dir is on the small disk)."""
        config_path = self.home / "config.yaml"
        ready = self.home / "ready"
        ready.unlink(missing_ok=True)
        log_path = self.home / "agent.log"
        command = [
            *self.prefix, sys.executable, "-c", _LAUNCH, "run", "-c", str(config_path),
            "--ready-file", str(ready), "--log-level", "DEBUG",
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            log.write(f"===== start {self.agent_starts + 1} of agent {self.name} =====\n".encode())
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        self.agent_starts += 1
        agent = AgentProcess(self.name, self.home, config_path, process, log_path)
        deadline = time.monotonic() + AGENT_START_TIMEOUT
        while time.monotonic() < deadline:
            text = ready.read_text().strip() if ready.exists() else ""
            if text:
                agent.endpoint_id = text
                self.agent = agent
                return agent
            if process.poll() is not None:
                tail = agent.log_text()[-4000:]
                raise AgentStartError(f"agent {self.name} exited with {process.returncode}:\n{tail}")
            time.sleep(0.05)
        agent.stop()
        tail = agent.log_text()[-4000:]
        raise AgentStartError(f"agent {self.name} did not start in {AGENT_START_TIMEOUT} s:\n{tail}")

    def agent_running(self) -> bool:
        return self.agent is not None and self.agent.is_running()

    def kill_store(self) -> None:
        self.store.kill()

    def restart_store(self) -> None:
        """Start the store again on its old root and port (the proxy still points there)."""
        if self.store.is_running():
            self.store.stop()
        self.store = start_store_process(self.store.root, port=self.store.port, sync_key=self.sync_key)

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Another cansync command against this node's config (journal, status, ticket), as a user runs it."""
        return subprocess.run(
            [*self.prefix, sys.executable, "-c", _LAUNCH, *args, "-c", str(self.home / "config.yaml")],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cli_process(self, *args: str) -> subprocess.Popen[str]:
        """The same, started in the background (several nodes' checks run at once)."""
        return subprocess.Popen(
            [*self.prefix, sys.executable, "-c", _LAUNCH, *args, "-c", str(self.home / "config.yaml")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def journal_rows(self, sql: str, *params: object) -> list[tuple]:
        """Read the journal directly (read-only): [] while it does not exist yet or is locked."""
        path = self.data_path("journal.db")
        if not path.exists():
            return []
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []


class Mesh:
    """Nodes a, b, c...: a dials b, b dials c, ..., and with three or more the last dials a (with two,
    only a dials b: a pair that dials each other at once is a different test)."""

    def __init__(
        self,
        base: Path,
        *,
        size: int = 3,
        passphrase: str,
        sync_key: str,
        small_disk_node: int | None = None,
        small_disk_mib: int = 32,
    ) -> None:
        self.base = base
        self.nodes: list[MeshNode] = []
        try:
            for index in range(size):
                name = "abcdefgh"[index]
                home = base / name
                home.mkdir(parents=True, exist_ok=True)
                disk = SmallDisk(home / "data", small_disk_mib) if index == small_disk_node else None
                store = start_store_process(home / "store", sync_key=sync_key)
                node = MeshNode(name, home, store, CuttableLink(store.port), passphrase, sync_key, disk)
                self.nodes.append(node)
            for index, node in enumerate(self.nodes):
                if index + 1 < size or size > 2:
                    node.connect_to = self.nodes[(index + 1) % size].home / "ticket.json"
                node.write_config()
            for node in self.nodes:
                node.start_agent()
        except BaseException:
            self.close()
            raise

    def node(self, name: str) -> MeshNode:
        return next(n for n in self.nodes if n.name == name)

    def close(self) -> None:
        """Stop every agent at once (each may take seconds to end), then every store."""
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(lambda node: node.agent.stop() if node.agent is not None else None, self.nodes))
        for node in self.nodes:
            node.store.stop()
            node.link.close()
            if node.disk is not None:
                # the tmpfs dies with its namespace: keep a copy of the journal for the post-mortem
                with contextlib.suppress(OSError):
                    shutil.copytree(node.disk.outside(node.data_dir), node.home / "data-copy", dirs_exist_ok=True)
                node.disk.close()
