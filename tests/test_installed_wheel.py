"""cansync as a user installs it: a wheel built from this checkout, installed into a fresh venv outside the
checkout, its commands run from yet another directory.

pip reaches no index here (the suite runs in a loopback-only namespace), so the build and the install
take every requirement from the wheelhouse tests/run.sh fills (tests/helpers/wheelhouse.py), and only
from there: pip's own configuration is set aside, so a requirement missing from it fails this test
instead of being found elsewhere on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from cansync.journal.database import head_revision as checkout_head_revision
from tests.helpers.store_process import READY_PREFIX, free_port, wait_until
from tests.helpers.wheelhouse import ROOT, ensure_current

PASSPHRASE = "wheel test passphrase"
SYNC_KEY = "wheel-test-sync-key"
STARTUP_TIMEOUT = 60.0  # a first start in a fresh venv imports everything cold
OFFLINE_AGENT_ENV = {"CANSYNC_RELAYS": "[]", "CANSYNC_PKARR_RELAYS": "[]", "CANSYNC_LAN_DISCOVERY": "false"}


def _run(command: Sequence[str | Path], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"`{' '.join(str(c) for c in command)}` failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
        f"{result.stderr[-5000:]}"
    )
    return result.stdout


def _pip_env() -> dict[str, str]:
    """The environment without pip's configuration: the wheelhouse is the only source of packages."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _copy_checkout(target: Path) -> Path:
    """The checkout as a fresh clone would have it: without .git and without what .gitignore names (the
    generated cansync/wire/pb above all: the build must make it, as on a user's machine)."""
    ignored = [".git"]
    for line in (ROOT / ".gitignore").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            ignored.append(line.strip().rstrip("/"))

    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(ROOT)
        return {
            name
            for name in names
            for pattern in ignored
            if fnmatch(name, pattern) or fnmatch((relative / name).as_posix(), pattern)
        }

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


@dataclass
class InstalledCansync:
    venv: Path
    workdir: Path  # neither the checkout nor the venv: where a user would run cansync

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cansync(self) -> Path:
        return self.venv / "bin" / "cansync"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        return env | {"PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **extra}

    def run(self, *args: str) -> str:
        return _run([self.cansync, *args], env=self.env(), cwd=self.workdir, timeout=120)

    def start(
        self, *args: str, log: Path, read_stdout: bool = False, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start `cansync *args` in the background, stderr (and stdout unless read_stdout) into log."""
        with log.open("a") as log_file:
            return subprocess.Popen(
                [str(self.cansync), *args],
                cwd=self.workdir,
                env=self.env(**(env or {})),
                stdout=subprocess.PIPE if read_stdout else log_file,
                stderr=log_file,
                text=True,
            )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledCansync:
    # pip_retries=0: where the wheelhouse must be filled here, say so at once rather than after pip's retries
    wheelhouse = ensure_current(pip_retries=0)
    base = tmp_path_factory.mktemp("installed")
    source = _copy_checkout(base / "source")
    offline = ["--no-index", "--find-links", str(wheelhouse)]
    dist = base / "dist"
    # a PEP 517 build in an isolated environment, as `pip install .` does: build-system.requires must suffice
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", dist, source], env=_pip_env(), cwd=base)
    (wheel,) = dist.glob("cansync-*.whl")
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", venv], env=_pip_env(), cwd=base)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", *offline, wheel], env=_pip_env(), cwd=base)
    workdir = base / "elsewhere"
    workdir.mkdir()
    return InstalledCansync(venv, workdir)


def test_the_installed_package_holds_its_generated_modules_and_its_migrations(installed: InstalledCansync) -> None:
    probe = (
        "import cansync, cansync.cli, cansync.wire.pb.can_sync_pb2, cansync.wire.pb.peer_pb2\n"
        "from cansync.journal.database import head_revision, script_location\n"
        "print(cansync.__file__); print(script_location()); print(head_revision())\n"
    )
    package_file, migrations, head = _run(
        [installed.python, "-c", probe], env=installed.env(), cwd=installed.workdir
    ).splitlines()
    site_packages = next((installed.venv / "lib").glob("python3*/site-packages"))
    assert Path(package_file) == site_packages / "cansync" / "__init__.py"
    assert Path(migrations) == site_packages / "cansync" / "journal" / "migrations"
    assert head == checkout_head_revision()  # this process runs the checkout's (editable) cansync


@contextmanager
def _serving_store(installed: InstalledCansync, root: Path, log: Path) -> Iterator[str]:
    """`cansync store serve` on root; yields its public API prefix; stops it with SIGTERM, which must exit 0."""
    process = installed.start(
        "store", "serve", "--root", str(root), "--port", "0", "--host", "127.0.0.1", "--sync-key", SYNC_KEY,
        log=log, read_stdout=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    try:
        first = lines[0].strip() if lines else ""
        assert first.startswith(READY_PREFIX), f"store did not print READY; got {first!r}:\n{log.read_text()}"
        threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe from filling up
        yield first[len(READY_PREFIX) :] + "/api/v1/can/0"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        returncode = process.wait(30)
    assert returncode == 0, f"store exited {returncode} on SIGTERM:\n{log.read_text()}"


def _holds_text(path: Path) -> bool:
    return path.is_file() and bool(path.read_text().strip())


def _journaled_hashes(journal: Path, kind: str) -> set[str]:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10) as db:
            return {h for (h,) in db.execute("SELECT hash FROM events WHERE kind = ?", (kind,))}
    except sqlite3.OperationalError:  # not created yet
        return set()


def test_store_serve_then_run_then_journal_inspect_from_another_directory(
    installed: InstalledCansync, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    content = b"an asset that went through an installed cansync\n"

    # the store alone, on the root the agent's embedded store will use
    with _serving_store(installed, data_dir / "store", tmp_path / "store.log") as api:
        ingested = httpx.post(
            f"{api}/ingest", files={"file": ("note.txt", content, "text/plain")}, data={"tags": "wheel"}, timeout=30
        )
        assert ingested.status_code == 200, ingested.text
        digest = ingested.json()["data"]["hash"]
        served = httpx.get(f"{api}/asset/{digest}", timeout=30)
        assert served.status_code == 200 and served.content == content

    # the agent on its embedded store, offline, started from the same directory a user would use
    ready = tmp_path / "ready"
    agent_log = tmp_path / "agent.log"
    agent = installed.start(
        "run", "--passphrase", PASSPHRASE, "--data-dir", str(data_dir), "--ready-file", str(ready),
        "--store-port", str(free_port()), "--bind-addr", "127.0.0.1:0",
        log=agent_log, env=OFFLINE_AGENT_ENV,
    )  # fmt: skip
    try:
        wait_until(lambda: agent.poll() is not None or _holds_text(ready), timeout=STARTUP_TIMEOUT)
        assert _holds_text(ready) and agent.poll() is None, (
            f"agent did not start (exit code {agent.poll()}):\n{agent_log.read_text()[-4000:]}"
        )
        # the agent journals what its store already holds (our asset) once its feed catches up
        seen = wait_until(lambda: digest in _journaled_hashes(data_dir / "journal.db", "local_asset_seen"), 60)
        assert seen, f"the agent never journaled the store's asset:\n{agent_log.read_text()[-4000:]}"
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
        returncode = agent.wait(60)
    assert returncode == 0, f"agent exited {returncode} on SIGTERM:\n{agent_log.read_text()[-4000:]}"

    # the audit of that run, read by the installed command line with the same --data-dir
    inspected = installed.run("journal", "inspect", "--data-dir", str(data_dir), "--json")
    rows = [json.loads(line) for line in inspected.splitlines() if line.strip()]
    assert any(row["kind"] == "local_asset_seen" and row["hash"] == digest for row in rows), rows
    table = installed.run("journal", "inspect", "--data-dir", str(data_dir))
    assert "local_asset_seen" in table and digest[:12] in table
