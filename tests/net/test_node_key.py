"""The persisted node key and the lock that keeps one agent per identity."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cansync.net.node_key import KEY_FILE, NodeIdentity, NodeKeyError, NodeKeyLocked

from .conftest import new_endpoint


async def test_key_is_created_once_and_gives_the_same_endpoint_id_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with NodeIdentity.acquire(data_dir) as first:
        key_file = data_dir / KEY_FILE
        assert key_file.read_bytes() == first.secret_key and len(first.secret_key) == 32
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        ep = await new_endpoint(first.secret_key)
        first_id = ep.id_hex
        await ep.close()
    assert first_id == first.endpoint_id
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]  # atomic write left no debris
    with NodeIdentity.acquire(data_dir) as second:  # a "restart"
        assert second.secret_key == first.secret_key
        ep = await new_endpoint(second.secret_key)
        assert ep.id_hex == first_id
        await ep.close()


def test_second_holder_in_this_process_is_refused(tmp_path: Path) -> None:
    with NodeIdentity.acquire(tmp_path):
        with pytest.raises(NodeKeyLocked) as err:
            NodeIdentity.acquire(tmp_path)
        assert str(tmp_path) in str(err.value) and f"process {os.getpid()}" in str(err.value)
    NodeIdentity.acquire(tmp_path).release()  # free again once released


def test_second_holder_in_another_process_is_refused_and_named(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from cansync.net.node_key import NodeIdentity, NodeKeyLocked\n"
        "try:\n"
        f"    NodeIdentity.acquire({str(tmp_path)!r})\n"
        "except NodeKeyLocked as exc:\n"
        "    print(exc); sys.exit(7)\n"
    )
    with NodeIdentity.acquire(tmp_path):
        held = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert held.returncode == 7, held.stderr
        assert f"process {os.getpid()}" in held.stdout and str(tmp_path) in held.stdout
    free = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert free.returncode == 0, free.stdout + free.stderr


def test_a_lock_held_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from cansync.net.node_key import NodeIdentity; NodeIdentity.acquire({str(tmp_path)!r})",
        ],
        check=True,
        timeout=60,
    )
    NodeIdentity.acquire(tmp_path).release()  # flock died with its holder


def test_a_damaged_key_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"too short")
    with pytest.raises(NodeKeyError, match=str(tmp_path / KEY_FILE)) as err:
        NodeIdentity.acquire(tmp_path)
    assert not isinstance(err.value, NodeKeyLocked)
    (tmp_path / KEY_FILE).write_bytes(os.urandom(32))
    NodeIdentity.acquire(tmp_path).release()  # the failed acquire did not keep the lock


def test_a_key_readable_by_others_is_restricted(tmp_path: Path) -> None:
    key = os.urandom(32)
    (tmp_path / KEY_FILE).write_bytes(key)
    (tmp_path / KEY_FILE).chmod(0o644)
    with NodeIdentity.acquire(tmp_path) as identity:
        assert identity.secret_key == key
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
