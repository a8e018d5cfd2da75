"""A writer killed with SIGKILL mid-run leaves a journal that opens, verifies and holds whole batches."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from cansync.journal.recorder import Journal

WRITER = Path(__file__).with_name("crash_writer.py")
ROUNDS = 4


def _run_until_killed(path: Path, wait_commits: int) -> int:
    """Start the writer, let it commit a while, SIGKILL it mid-stream; returns the last seq it reported."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last_reported, commits = 0, 0
    deadline = time.monotonic() + 60
    try:
        while commits < wait_commits:
            line = proc.stdout.readline()
            assert line, f"writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            last_reported = max(last_reported, int(line.split()[1]))
            commits += 1
            assert time.monotonic() < deadline, "writer too slow"
        time.sleep(random.uniform(0, 0.05))  # land somewhere inside a later transaction
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return last_reported


async def test_sigkill_mid_batch_leaves_only_whole_batches(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    reported = 0
    for round_no in range(ROUNDS):
        # the writer is killed and restarted on the same file: each restart continues the chain
        reported = await asyncio.to_thread(_run_until_killed, path, 20 + 10 * round_no)

    journal = await Journal.open(path)
    try:
        report = await journal.verify()
        assert report.ok, report
        last = await journal.last_seq()
        assert last >= reported  # everything a caller was told is committed survived
        batches: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        async for event in journal.read():
            batches[event.data["batch"]].append((event.seq, event.data["i"], event.data["size"]))
        assert sum(len(rows) for rows in batches.values()) == last == report.checked
        for batch_id, rows in batches.items():
            size = rows[0][2]
            assert [i for _, i, _ in rows] == list(range(size)), f"batch {batch_id} is not whole"
            assert [s for s, _, _ in rows] == list(range(rows[0][0], rows[0][0] + size)), "batch not contiguous"
        assert len(batches) > ROUNDS * 20
    finally:
        await journal.close()
