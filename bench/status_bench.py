"""How fast `cansync status` answers on a journal of 100,000 events (the aim: under 200 ms).

    bash tests/isolate.sh .venv/bin/python bench/status_bench.py [--events 100000] [--runs 5]

The journal is bench/journal_bench.py's realistic mix (20 peers sending us assets) with a few hundred
transfers still queued at the end. Cases, each the wall time of a real `cansync status` process (what a
person waits for), median of --runs:
- api: the agent runs; status asks its dashboard API (here a web server over a view of the same
  journal's folded state, as the agent serves it) and prints the summary;
- journal, fresh snapshot: no agent; the newest snapshot is at the last event;
- journal, old snapshot: no agent; as many events after the snapshot as a crash can leave: one fewer than
  the ledger's spacing for a snapshot of this journal's size (`events_between_snapshots`);
- python startup alone and `cansync --version`, for scale.
Also the in-process costs: the agent's status() plus its JSON, and rebuild_state.
Prints a table and writes bench/results/status.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from journal_bench import generate  # noqa: E402

from cansync.agent.ledger import events_between_snapshots  # noqa: E402
from cansync.core.events import Event, EventKind  # noqa: E402
from cansync.core.machine import SyncState  # noqa: E402
from cansync.journal.recorder import Journal  # noqa: E402
from cansync.journal.replay import rebuild_state, write_snapshot  # noqa: E402
from cansync.web.server import start_web  # noqa: E402
from cansync.web.state_status import status_from_state  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "status.json"
CANSYNC = str(Path(sys.executable).parent / "cansync")
QUEUED = 300


class StateView:
    """What the agent serves: status() built from its folded state on every call."""

    def __init__(self, state: SyncState) -> None:
        self.state = state

    def status(self) -> dict[str, Any]:
        return status_from_state(
            self.state, endpoint_id="", store_url="http://127.0.0.1:3210", store_reachable=True,
            in_session=set(list(self.state.peers)[:5]),
        )  # fmt: skip

    async def journal_rows(self, **_filters: Any) -> list[dict[str, Any]]:
        return []

    async def set_paused(self, peer: str, paused: bool) -> None:
        raise KeyError(peer)


async def build(path: Path, events: int) -> None:
    journal = await Journal.open(path)
    try:
        history = list(generate(events - QUEUED))
        peer = history[0].peer
        history += [
            Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=f"{n:062x}ee", data={"direction": "in", "offset": 0})
            for n in range(QUEUED)
        ]
        for start in range(0, len(history), 5000):
            await journal.append(history[start : start + 5000])
    finally:
        await journal.close()


async def snapshot_at(path: Path, seq: int) -> int:
    """Keep only a snapshot of the state after event `seq` (what the ledger would have written); returns
    its size in characters."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM snapshots")
    conn.close()
    journal = await Journal.open(path)
    try:
        state = SyncState()
        with state.replaying() as fold_one:
            await journal.replay_into(lambda e: fold_one(e) if e.seq <= seq else None)
        return await write_snapshot(journal, state, seq)
    finally:
        await journal.close()


async def timed_process(*args: str) -> float:
    # bytecode as an installed cansync has it (pip compiles it at install): an environment that turns it
    # off would time the compiler, not the command
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANSYNC_") and k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, err = await process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{args} failed ({process.returncode}): {err.decode()[-2000:]}")
    return elapsed


async def median_ms(runs: int, *args: str) -> float:
    await timed_process(*args)  # warm the page cache
    return 1000 * statistics.median([await timed_process(*args) for _ in range(runs)])


async def main_async(events: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="status-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        journal_path = data_dir / "journal.db"
        t0 = time.perf_counter()
        await build(journal_path, events)
        print(f"built a journal of {events} events in {time.perf_counter() - t0:.1f} s")
        status_cmd = [CANSYNC, "status", "--data-dir", str(data_dir)]
        results: dict[str, Any] = {}
        results["python_startup_ms"] = await median_ms(runs, sys.executable, "-c", "pass")
        results["cansync_version_ms"] = await median_ms(runs, CANSYNC, "--version")

        snapshot_chars = await snapshot_at(journal_path, events)
        # the worst crash: the agent died one event before its next snapshot (sized by the newest, the
        # largest, so the tail is at least what the ledger would leave)
        tail = results["old_snapshot_tail_events"] = events_between_snapshots(snapshot_chars) - 1
        results["snapshot_chars"] = snapshot_chars
        journal = await Journal.open(journal_path)
        try:
            t0 = time.perf_counter()
            state, _ = await rebuild_state(journal)
            results["rebuild_fresh_snapshot_in_process_ms"] = 1000 * (time.perf_counter() - t0)
        finally:
            await journal.close()
        view = StateView(state)
        t0 = time.perf_counter()
        answer = json.dumps(view.status())
        results["agent_status_and_json_ms"] = 1000 * (time.perf_counter() - t0)
        results["status_json_bytes"] = len(answer)
        server = await start_web(view, "127.0.0.1:0", token="bench-token")
        try:
            addr = server.url.removeprefix("http://")
            results["api_ms"] = await median_ms(runs, *status_cmd, "--web-addr", addr, "--web-token", "bench-token")
        finally:
            await server.close()
        results["journal_fresh_snapshot_ms"] = await median_ms(runs, *status_cmd, "--web-addr", "")
        await snapshot_at(journal_path, events - tail)
        results["journal_old_snapshot_ms"] = await median_ms(runs, *status_cmd, "--web-addr", "")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 3 runs")
    args = parser.parse_args()
    events, runs = (20_000, 3) if args.quick else (args.events, args.runs)
    results = asyncio.run(main_async(events, runs))
    tail = results["old_snapshot_tail_events"]
    rows = [
        ("cansync status, agent running (API)", "api_ms"),
        ("cansync status, no agent, fresh snapshot", "journal_fresh_snapshot_ms"),
        (
            f"cansync status, no agent, snapshot {tail} events back",
            "journal_old_snapshot_ms",
        ),
        ("python -c pass", "python_startup_ms"),
        ("cansync --version", "cansync_version_ms"),
        ("in the agent: status() + JSON", "agent_status_and_json_ms"),
        ("in process: rebuild_state from a fresh snapshot", "rebuild_fresh_snapshot_in_process_ms"),
    ]
    print(f"{events} journal events, median of {runs} runs (load average {os.getloadavg()[0]:.2f})")
    for label, key in rows:
        print(f"  {label:<58} {results[key]:8.1f} ms")
    verdicts = {
        "agent running": results["api_ms"],
        "no agent, fresh snapshot": results["journal_fresh_snapshot_ms"],
        f"no agent, snapshot {tail} events back": results["journal_old_snapshot_ms"],
    }
    for case, ms in verdicts.items():
        print(f"  aim under 200 ms, {case}: {ms:.1f} ms, ratio {ms / 200:.2f} -> {'met' if ms < 200 else 'NOT met'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "status",
                "events": events,
                "runs": runs,
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "aim_ms": 200,
                "results_ms": {k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
