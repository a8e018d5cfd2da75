"""Start a real `cansync run` process for end-to-end tests, configured by a real config.yaml.

Agents are paired by ticket files, with relays, pkarr and LAN discovery off unless a test turns
them on, and run the same command line a user runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

_LAUNCH = "import sys; from cansync.cli import main; sys.exit(main())"


class AgentStartError(RuntimeError):
    pass


@dataclass
class AgentProcess:
    name: str
    home: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    endpoint_id: str = ""

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def ticket_path(self) -> Path:
        return self.home / "ticket.json"

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return int(self.process.returncode)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run another cansync command against this agent's config (journal, status, ticket)."""
        result = subprocess.run(
            [sys.executable, "-c", _LAUNCH, *args, "-c", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"cansync {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def journal(self, *filters: str) -> list[dict[str, Any]]:
        out = self.cli("journal", "inspect", "--json", *filters).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def write_agent_config(home: Path, **settings: Any) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "data_dir": str(home / "data"),
        "bind_addr": "127.0.0.1:0",
        "relays": [],
        "pkarr_relays": [],
        "lan_discovery": False,
        "poll_interval_secs": 1,
        "ticket_file": str(home / "ticket.json"),
        "web_addr": "",  # several agents share one machine in a test: a test that wants the dashboard sets a port
    }
    config.update({k: (str(v) if isinstance(v, Path) else v) for k, v in settings.items()})
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(
    home: Path, name: str, *, timeout: float = 30.0, env: dict[str, str] | None = None, log_level: str = "DEBUG"
) -> AgentProcess:
    """Start `cansync run -c home/config.yaml` and wait until it reports its endpoint id."""
    config_path = home / "config.yaml"
    ready = home / "ready"
    ready.unlink(missing_ok=True)
    log_path = home / "agent.log"
    log = open(log_path, "ab")  # noqa: SIM115  (the child keeps it)
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, "run", "-c", str(config_path), "--ready-file", str(ready),
         "--log-level", log_level],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    log.close()
    agent = AgentProcess(name, home, config_path, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            agent.endpoint_id = ready.read_text().strip()
            return agent
        if process.poll() is not None:
            raise AgentStartError(f"agent {name} exited with {process.returncode}:\n{agent.log_text()[-4000:]}")
        time.sleep(0.05)
    agent.stop()
    raise AgentStartError(f"agent {name} did not start in {timeout} s:\n{agent.log_text()[-4000:]}")
