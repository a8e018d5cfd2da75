"""The data_dir locks (node key, store root): one holder at a time, named by pid, freed when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cansync.portable.pid_lock import LockHeld, PidLock, lock_holder

HOLD = (
    "import sys, time\n"
    "from cansync.portable.pid_lock import PidLock\n"
    "lock = PidLock(sys.argv[1]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def hold_in_another_process(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_is_refused_with_the_first_ones_pid_until_it_releases(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with PidLock(path) as first:
        assert first.held and first.pid_path == tmp_path / "x.pid"
        with pytest.raises(LockHeld) as refused:
            PidLock(path).acquire()
        assert refused.value.pid == os.getpid() and str(path) in str(refused.value)
        held = lock_holder(path)
        assert held is not None and held.pid == os.getpid()
    assert not first.held and not first.pid_path.exists()
    assert lock_holder(path) is None
    PidLock(path).acquire().release()


def test_a_holder_in_another_process_is_named_and_its_death_frees_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_in_another_process(path)
    try:
        held = lock_holder(path)
        assert held is not None and held.pid == holder.pid
        with pytest.raises(LockHeld, match=f"process {holder.pid}"):
            PidLock(path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert lock_holder(path) is None  # the system dropped the lock with its holder
    with PidLock(path) as again:
        assert again.holder_pid() == os.getpid()  # the dead holder's pid file was overwritten


def test_trying_the_lock_leaves_the_holders_pid_in_place(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = hold_in_another_process(path)
    try:
        for _ in range(3):
            with pytest.raises(LockHeld):
                PidLock(path).acquire()
        assert PidLock(path).holder_pid() == holder.pid
    finally:
        holder.kill()
        holder.wait(10)
