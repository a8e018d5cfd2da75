"""Journal benchmark: append rate, replay rate (with and without a snapshot), restart time.

    bash tests/isolate.sh .venv/bin/python bench/journal_bench.py [--events 1000000] [--batch 1000]

Prints a table and writes bench/results/journal.json. The events are a realistic mix: per asset a
request, start, checkpoint, verified completion and received mark from one of 20 peers, with now and
then a digest advertisement and a local asset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cansync.core.events import Event, EventKind
from cansync.journal.recorder import Journal
from cansync.journal.replay import rebuild_state, write_snapshot

PEERS = 20
RESULTS = Path(__file__).resolve().parent / "results" / "journal.json"


def _peer(n: int) -> str:
    return f"{n:064x}"


def generate(count: int, start_asset: int = 0) -> Iterator[Event]:
    """`count` events of peers sending us assets (and occasionally advertising and seeing local ones)."""
    made = 0
    for p in range(PEERS):
        for kind in (EventKind.PEER_DISCOVERED, EventKind.PEER_CONNECTED, EventKind.PEER_AUTHENTICATED):
            if made == count:
                return
            yield Event(kind, peer=_peer(p), data={"via": "lan", "direction": "out", "addrs": ["127.0.0.1:4000"]})
            made += 1
    asset = start_asset
    while True:
        peer, digest, size = _peer(asset % PEERS), f"{asset:064x}", 1000 + asset % 50_000
        batch = [
            Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=digest, data={"direction": "in", "offset": 0}),
            Event(
                EventKind.TRANSFER_STARTED, peer=peer, hash=digest, data={"direction": "in", "offset": 0, "size": size}
            ),
            Event(
                EventKind.TRANSFER_CHECKPOINTED, peer=peer, hash=digest, data={"direction": "in", "offset": size // 2}
            ),
            Event(
                EventKind.TRANSFER_COMPLETED,
                peer=peer,
                hash=digest,
                data={"direction": "in", "size": size, "verified": True, "sent": size},
            ),
            Event(EventKind.ASSET_RECEIVED, peer=peer, hash=digest, data={"timestamp": 1_700_000_000_000 + asset}),
        ]
        if asset % 10 == 0:
            batch.append(Event(EventKind.LOCAL_ASSET_SEEN, hash=f"{asset:063x}f", data={"timestamp": asset, "size": 9}))
        if asset % 100 == 0:
            batch.append(
                Event(
                    EventKind.HASHES_ADVERTISED, peer=peer, data={"hashes": [digest], "watermark": asset, "full": False}
                )
            )
        for event in batch:
            if made == count:
                return
            yield event
            made += 1
        asset += 1


async def append_all(journal: Journal, count: int, batch: int, start_asset: int = 0) -> float:
    """Append `count` events in batches of `batch`; returns the seconds it took."""
    source = generate(count, start_asset)
    started = time.perf_counter()
    while chunk := [e for _, e in zip(range(batch), source, strict=False)]:
        await journal.append(chunk)
    return time.perf_counter() - started


async def concurrent_batch_appends(path: Path, count: int, batch: int, appenders: int) -> tuple[float, int]:
    """`appenders` coroutines appending batches of `batch` to a fresh journal; returns (seconds, transactions)."""
    events = list(generate(count))
    chunks = [events[i : i + batch] for i in range(0, len(events), batch)]
    journal = await Journal.open(path)
    try:

        async def worker(k: int) -> None:
            for chunk in chunks[k::appenders]:
                await journal.append(chunk)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(appenders)))
        return time.perf_counter() - started, journal.commits
    finally:
        await journal.close()


async def concurrent_single_appends(journal: Journal, appenders: int, each: int) -> tuple[float, int]:
    """`appenders` coroutines each appending `each` single events; returns (seconds, transactions)."""
    commits_before = journal.commits

    async def one(n: int) -> None:
        for i in range(each):
            await journal.append_one(Event(EventKind.PEER_PROTOCOL_ERROR, peer=_peer(n % PEERS), data={"n": i}))

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(appenders)))
    return time.perf_counter() - started, journal.commits - commits_before


async def timed_restart(path: Path) -> tuple[float, float, int]:
    """Open the journal and rebuild the state from its snapshot; returns (open s, rebuild s, last seq)."""
    started = time.perf_counter()
    journal = await Journal.open(path)
    opened = time.perf_counter()
    try:
        _, last = await rebuild_state(journal)
    finally:
        await journal.close()
    return opened - started, time.perf_counter() - opened, last


async def restart_case(workdir: Path, history: int, batch: int, tail: int) -> dict[str, Any]:
    """A journal of `history` events with a snapshot `tail` events before the end: restart cost."""
    path = workdir / f"restart_{history}.db"
    journal = await Journal.open(path)
    try:
        await append_all(journal, history - tail, batch)
        state, last = await rebuild_state(journal, use_snapshot=False)
        await write_snapshot(journal, state, last)
        await append_all(journal, tail, batch, start_asset=10_000_000)
    finally:
        await journal.close()
    open_s, rebuild_s, last = await timed_restart(path)
    return {"history": history, "tail_after_snapshot": tail, "open_s": open_s, "rebuild_s": rebuild_s, "last_seq": last}


async def run(events: int, batch: int, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "events": events,
        "batch": batch,
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            # the machine is shared: the 1/5/15-minute load averages tell how busy it was
            "load_average_start": list(os.getloadavg()),
        },
    }
    path = workdir / "journal.db"
    journal = await Journal.open(path)
    try:
        seconds = await append_all(journal, events, batch)
        results["append"] = {"seconds": seconds, "events_per_s": events / seconds, "transactions": journal.commits}
        concurrent = min(events, 200_000)
        seconds, transactions = await concurrent_batch_appends(workdir / "concurrent.db", concurrent, batch, 4)
        results["append_concurrent_batches"] = {
            "appenders": 4,
            "events": concurrent,
            "seconds": seconds,
            "events_per_s": concurrent / seconds,
            "transactions": transactions,
        }
        seconds, transactions = await concurrent_single_appends(journal, appenders=500, each=20)
        results["append_concurrent_single"] = {
            "appenders": 500,
            "events": 10_000,
            "seconds": seconds,
            "events_per_s": 10_000 / seconds,
            "transactions": transactions,
        }
        total = await journal.last_seq()

        started = time.perf_counter()
        read = 0
        async for _ in journal.read():
            read += 1
        seconds = time.perf_counter() - started
        results["read_only"] = {"events": read, "seconds": seconds, "events_per_s": read / seconds}

        started = time.perf_counter()
        state, last = await rebuild_state(journal, use_snapshot=False)
        seconds = time.perf_counter() - started
        results["replay_no_snapshot"] = {"events": last, "seconds": seconds, "events_per_s": last / seconds}

        started = time.perf_counter()
        await write_snapshot(journal, state, last)
        results["snapshot_write_s"] = time.perf_counter() - started
        results["snapshot_bytes"] = len(json.dumps(state.to_snapshot()))
        results["state_assets"] = len(state.local)
        tail = min(1000, max(1, events // 100))
        await append_all(journal, tail, batch, start_asset=20_000_000)

        started = time.perf_counter()
        _, last = await rebuild_state(journal, use_snapshot=True)
        seconds = time.perf_counter() - started
        results["replay_with_snapshot"] = {"events_after_snapshot": tail, "last_seq": last, "seconds": seconds}

        started = time.perf_counter()
        report = await journal.verify()
        seconds = time.perf_counter() - started
        results["verify"] = {"ok": report.ok, "events": report.checked, "seconds": seconds}
        assert report.ok and report.checked == total + tail, report
    finally:
        await journal.close()
    open_s, rebuild_s, last = await timed_restart(path)
    results["restart"] = [
        await restart_case(workdir, min(10_000, events), batch, tail=min(100, max(1, events // 100))),
        {"history": last, "tail_after_snapshot": tail, "open_s": open_s, "rebuild_s": rebuild_s, "last_seq": last},
    ]
    results["machine"]["load_average_end"] = list(os.getloadavg())
    results["journal_bytes"] = path.stat().st_size
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def print_table(r: dict[str, Any]) -> None:
    rows = [
        (
            f"append, batches of {r['batch']}",
            f"{r['append']['events_per_s']:,.0f} ev/s",
            f"{r['append']['seconds']:.2f} s",
        ),
        (
            f"append, 4 coroutines x batches of {r['batch']}",
            f"{r['append_concurrent_batches']['events_per_s']:,.0f} ev/s",
            f"{r['append_concurrent_batches']['seconds']:.2f} s",
        ),
        (
            "append, 500 coroutines x 20 single events",
            f"{r['append_concurrent_single']['events_per_s']:,.0f} ev/s",
            f"{r['append_concurrent_single']['transactions']} transactions",
        ),
        ("read only (stream all)", f"{r['read_only']['events_per_s']:,.0f} ev/s", f"{r['read_only']['seconds']:.2f} s"),
        (
            "replay, no snapshot (read + fold)",
            f"{r['replay_no_snapshot']['events_per_s']:,.0f} ev/s",
            f"{r['replay_no_snapshot']['seconds']:.2f} s",
        ),
        (
            f"replay, snapshot + {r['replay_with_snapshot']['events_after_snapshot']} tail events",
            "",
            f"{r['replay_with_snapshot']['seconds']:.3f} s",
        ),
        (
            "verify (whole chain)",
            f"{r['verify']['events'] / r['verify']['seconds']:,.0f} ev/s",
            f"{r['verify']['seconds']:.2f} s",
        ),
    ]
    for case in r["restart"]:
        rows.append(
            (
                f"restart, {case['history']:,} events of history",
                f"open {case['open_s'] * 1000:.0f} ms",
                f"rebuild {case['rebuild_s'] * 1000:.0f} ms",
            )
        )
    width = max(len(name) for name, _, _ in rows)
    size_mb, rss_mb = r["journal_bytes"] / 1e6, r["peak_rss_mb"]
    print(f"journal bench: {r['events']:,} events, journal {size_mb:.0f} MB, peak RSS {rss_mb:.0f} MB")
    machine = r["machine"]
    start, end = machine["load_average_start"][0], machine["load_average_end"][0]
    print(f"  load average (1 min): {start:.2f} at start, {end:.2f} at end, on {machine['cpus']} cpus")
    snap_mb = r["snapshot_bytes"] / 1e6
    print(f"  snapshot: {snap_mb:.1f} MB of state ({r['state_assets']:,} assets held)")
    for name, rate, seconds in rows:
        print(f"  {name:<{width}}  {rate:>18}  {seconds:>18}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the main journal (default 1M)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append call (default 1000)")
    parser.add_argument("--dir", type=Path, help="where to put the journals (default: a temporary directory)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        results = asyncio.run(run(args.events, args.batch, Path(workdir)))
    print_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
