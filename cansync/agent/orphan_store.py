"""Finding and ending a store that an earlier agent of this data_dir left running.

After `kill -9` of an agent its store notices within a moment (it watches its parent) and ends. A store that
did not (stopped, hung, or started by an older cansync that did not watch) still holds the storage root's
lock and the port. The agent holds data_dir's node lock, so no other agent of this data_dir is alive: a store
of our root that was started by an agent (it has `--parent-pid`) and whose parent is gone is ours to end.
Anything else is never touched; the agent says who holds what and how to fix it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

END_GRACE_SECS = 5.0
POLL_SECS = 0.1


def process_gone(process: psutil.Process) -> bool:
    """Ended, its pid reused, or a zombie (dead; its parent has not reaped it yet)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _same_path(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def orphan_store(pid: int | None, root: Path) -> psutil.Process | None:
    """The process `pid` when it is a `cansync store serve` of `root` started by an agent that is gone."""
    if pid is None or pid == os.getpid():
        return None
    try:
        process = psutil.Process(pid)
        args = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    if "store" not in args or "serve" not in args:
        return None
    store_root, parent = _option(args, "--root"), _option(args, "--parent-pid")
    if store_root is None or not _same_path(store_root, root) or parent is None or not parent.isdigit():
        return None
    return process if _agent_gone(int(parent), process) else None


def _agent_gone(parent_pid: int, store: psutil.Process) -> bool:
    """Whether the agent that started `store` has ended (its pid may since have gone to a younger process)."""
    if parent_pid == os.getpid():
        return True  # our pid, reused: the agent that had it is gone (we never ask about our own store)
    try:
        parent = psutil.Process(parent_pid)
        return parent.status() == psutil.STATUS_ZOMBIE or parent.create_time() > store.create_time()
    except psutil.NoSuchProcess:
        return True


def describe(pid: int | None) -> str:
    """`process 1234 (python3)`, or `another program` when the pid is unknown."""
    if pid is None:
        return "another program"
    try:
        return f"process {pid} ({psutil.Process(pid).name()})"
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return f"process {pid}"


def port_holder(port: int) -> int | None:
    """The pid listening on a TCP port of this machine, where the system lets us see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):  # macOS answers only to root
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None


async def end_orphan(process: psutil.Process) -> bool:
    """Ask the orphan to stop, kill it if it has not within the grace time; True once it is gone."""
    log.warning(
        "the embedded store left running by a previous agent (pid %d) still holds its storage root; replacing it",
        process.pid,
    )
    for end, wait in ((process.terminate, END_GRACE_SECS), (process.kill, END_GRACE_SECS)):
        try:
            end()
        except psutil.NoSuchProcess:
            return True
        deadline = asyncio.get_running_loop().time() + wait
        while asyncio.get_running_loop().time() < deadline:
            if process_gone(process):
                return True
            await asyncio.sleep(POLL_SECS)
    return False
