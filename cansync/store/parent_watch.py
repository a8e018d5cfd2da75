"""A store started by an agent ends with it, on every system: `cansync store serve --parent-pid PID`.

Two signs that the parent is gone, either enough: the process PID has ended (psutil, polled; a pid that was
reused by another process does not count, and neither does a zombie nobody reaped), or the pipe on our
standard input was closed, which the operating system does the moment its writer dies, however it died. The
agent also closes that pipe to ask for a clean stop, which needs no signal (Windows has no SIGTERM between
processes). Standard input is only watched when it is a pipe: a terminal or /dev/null says nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading

import psutil

PARENT_POLL_SECS = 0.5


async def wait_for_parent_exit(parent_pid: int) -> str:
    """Return, with the reason, once the parent has ended or closed our standard input."""
    watches: list[asyncio.Future[str]] = [asyncio.ensure_future(_process_ended(parent_pid))]
    stdin_closed = _stdin_pipe_closed()
    if stdin_closed is not None:
        watches.append(stdin_closed)
    try:
        done, _pending = await asyncio.wait(watches, return_when=asyncio.FIRST_COMPLETED)
        return next(iter(done)).result()
    finally:
        for watch in watches:
            watch.cancel()


async def _process_ended(pid: int) -> str:
    try:
        parent = psutil.Process(pid)
        while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
            await asyncio.sleep(PARENT_POLL_SECS)
    except psutil.NoSuchProcess:
        pass
    return f"parent process {pid} ended"


def _stdin_pipe_closed() -> asyncio.Future[str] | None:
    try:
        is_pipe = stat.S_ISFIFO(os.fstat(0).st_mode)
    except OSError:  # no standard input at all
        return None
    if not is_pipe:
        return None
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[str] = loop.create_future()

    def settle() -> None:
        if not closed.done():
            closed.set_result("parent closed the store's standard input")

    def read_to_end() -> None:
        # a plain thread, not the loop's executor: asyncio.run waits for executor threads at exit, and this
        # one may block in read() for as long as the parent lives
        with contextlib.suppress(OSError):
            while os.read(0, 65536):
                pass
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody is waiting any more
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=read_to_end, name="stdin-eof-watch", daemon=True).start()
    return closed
