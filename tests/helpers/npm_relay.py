"""The npm pkarr relay on loopback for the whole test session (discovery and end-to-end tests share it)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HARNESS_DIR = Path(__file__).resolve().parents[1] / "pkarr_relay"
RELAY_SCRIPT = HARNESS_DIR / "local-relay.mjs"
JS_CLIENT = HARNESS_DIR / "js-client.mjs"
READY_TIMEOUT = 10.0
INSTALL_HINT = "run `npm ci --prefix tests/pkarr_relay --ignore-scripts` (tests/run.sh does it)"


@dataclass(frozen=True)
class NpmRelay:
    url: str
    log_path: Path


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the pkarr relay tests need Node.js 18+ (they never skip)", pytrace=False)
    if not (HARNESS_DIR / "node_modules" / "pkarr" / "package.json").exists():
        pytest.fail(f"the npm pkarr package is not installed in {HARNESS_DIR}: {INSTALL_HINT}", pytrace=False)
    return node


@pytest.fixture(scope="session")
def npm_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmRelay]:
    """The npm pkarr@1.3.0 relay over a private 3-node DHT, all on 127.0.0.1, for the whole session."""
    node = _require_node()
    log_path = tmp_path_factory.mktemp("npm-relay") / "relay.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [node, str(RELAY_SCRIPT), "0", "3"], stdout=log_file, stderr=subprocess.STDOUT, cwd=HARNESS_DIR
        )
    try:
        url = None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and url is None:
            for line in log_path.read_text().splitlines():
                if line.startswith("READY "):
                    url = line.split()[1]
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if url is None:
            proc.kill()
            pytest.fail(f"the npm pkarr relay did not start; its log:\n{log_path.read_text()}", pytrace=False)
        yield NpmRelay(url, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
