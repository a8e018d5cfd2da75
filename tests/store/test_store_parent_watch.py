"""`cansync store serve --parent-pid PID` ends with its parent: when PID ends, or when its stdin pipe closes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.store_process import start_store_process


def test_the_store_stops_cleanly_when_its_parent_process_ends(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    store = start_store_process(
        tmp_path / "store", extra_args=["--parent-pid", str(parent.pid)], stdin=subprocess.DEVNULL
    )
    try:
        parent.kill()
        parent.wait(10)
        assert store.process.wait(30) == 0
    finally:
        store.kill()
    assert f"store stopping: parent process {parent.pid} ended" in store.log_text()
    assert not (store.root / ".store.pid").exists()  # it released its root on the way out


def test_the_store_stops_cleanly_when_its_parent_closes_the_stdin_pipe(tmp_path: Path) -> None:
    store = start_store_process(
        tmp_path / "store", extra_args=["--parent-pid", str(os.getpid())], stdin=subprocess.PIPE
    )
    try:
        assert store.process.stdin is not None
        store.process.stdin.close()
        assert store.process.wait(30) == 0
    finally:
        store.kill()
    assert "store stopping: parent closed the store's standard input" in store.log_text()


def test_stdin_that_is_not_a_pipe_does_not_stop_the_store(tmp_path: Path) -> None:
    store = start_store_process(
        tmp_path / "store", extra_args=["--parent-pid", str(os.getpid())], stdin=subprocess.DEVNULL
    )
    try:
        response = httpx.post(f"{store.api}/ingest", files={"file": ("a.txt", b"still here")}, timeout=30)
        response.raise_for_status()
        assert store.is_running()
    finally:
        assert store.stop() == 0


def test_a_second_store_on_the_same_root_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = start_store_process(tmp_path / "store")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "cansync.cli", "store", "serve", "--root", str(first.root), "--port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert first.stop() == 0
    assert second.returncode == 4, second.stderr
    assert f"in use by process {first.pid}" in second.stderr and "--root" in second.stderr
