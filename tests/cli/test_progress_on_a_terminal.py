"""`cansync run` on a terminal draws the sync's progress; not on a terminal, it draws nothing."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.agent_process import write_agent_config
from tests.helpers.store_process import free_port

LAUNCH = "import sys; from cansync.cli import main; sys.exit(main())"


def run_for(args: list[str], seconds: float, *, terminal: bool, until: Callable[[str], bool] | None = None) -> str:
    """Run a command for a while with stderr on a pseudo-terminal (or a pipe); what it wrote there. With
    `until`, stop as soon as what it wrote satisfies it (asked after each read, and at least every 0.2 s)."""
    if terminal:
        leader, follower = pty.openpty()
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
        os.close(follower)
        reader = leader
    else:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        reader = process.stdout.fileno()
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([reader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(reader, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            if until is not None and until(b"".join(chunks).decode(errors="replace")):
                break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        if terminal:
            os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def seconds_after(marker: str, seconds: float) -> Callable[[str], bool]:
    """An `until` for run_for: true once `seconds` have passed since `marker` was first written."""
    seen_at: list[float] = []

    def until(text: str) -> bool:
        if not seen_at and marker in text:
            seen_at.append(time.monotonic())
        return bool(seen_at) and time.monotonic() - seen_at[0] >= seconds

    return until


def test_progress_bars_on_a_terminal_and_none_in_a_pipe(tmp_path: Path):
    config = write_agent_config(tmp_path, sync_passphrase="progress", store_port=free_port())
    args = [sys.executable, "-c", LAUNCH, "run", "-c", str(config)]
    shown = run_for(args, 8, terminal=True, until=lambda t: "received" in t and "sent" in t and "MiB/s" in t)
    assert "received" in shown and "sent" in shown and "MiB/s" in shown, shown[-2000:]
    # on a terminal the bars come with the agent's "started" line (~0.1 s after it, then every second):
    # in a pipe, none in the 2 s after that line
    piped = run_for(args, 8, terminal=False, until=seconds_after("started", 2.0))
    assert "MiB/s" not in piped and "started" in piped, piped[-2000:]
