"""Two (or more) real stores and real agents on 127.0.0.1, paired by ticket files."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.agent_process import AgentProcess, start_agent, write_agent_config
from tests.helpers.store_process import StoreProcess, start_store_process

PASSPHRASE = "correct horse battery staple"
SYNC_KEY = "e2e-sync-key"


@dataclass
class Node:
    name: str
    home: Path
    store: StoreProcess
    agent: AgentProcess | None = None

    @property
    def api(self) -> str:
        return self.store.api

    def start_agent(self, *, log_level: str = "DEBUG", **settings: object) -> AgentProcess:
        write_agent_config(
            self.home,
            sync_passphrase=settings.pop("sync_passphrase", PASSPHRASE),
            can_service_url=self.store.url,
            sync_api_key=settings.pop("sync_api_key", SYNC_KEY),
            **settings,
        )
        self.agent = start_agent(self.home, self.name, log_level=log_level)
        return self.agent


class Cluster:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes: list[Node] = []

    def add(self, name: str) -> Node:
        home = self.base / name
        store = start_store_process(home / "store", sync_key=SYNC_KEY)
        node = Node(name, home, store)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        """Stop every agent at once, then every store: one by one, a mesh of six took 14 s to tear down."""
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(lambda node: node.agent.stop() if node.agent is not None else None, self.nodes))
            list(pool.map(lambda node: node.store.stop(), self.nodes))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(tmp_path)
    try:
        yield group
    finally:
        group.close()
        for node in group.nodes:
            if node.agent is not None and node.agent.log_path.exists():
                tail = node.agent.log_text()[-3000:]
                print(f"----- agent {node.name} log tail -----\n{tail}")
