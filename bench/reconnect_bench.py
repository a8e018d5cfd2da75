"""Reconnect of two already-synced stores: seconds and bytes on the wire.

    bash tests/isolate.sh .venv/bin/python bench/reconnect_bench.py [--assets 100000] [--runs 5] [--quick]

Both stores are seeded with the same N assets (same content, same timestamp, through /sync/push,
timed apart). The agents then meet once (a first meeting: the full digest list both ways, also
measured), are stopped (SIGTERM), and reconnect `--runs` times: B starts and settles, then A starts
and dials B. A reconnect is done when each side has journaled the other's digest answer (its last
batch) after the restart.

Seconds: journal time from A's `peer_connected` to the later of the two digest answers.
Bytes on the wire: the `lo` byte counter of this namespace (/proc/net/dev) from just before A starts
until the reconnect is done. That counts every packet on loopback: the QUIC datagrams between the
agents and also A's HTTP requests to its own store during start-up (catch-up since its watermark, the
SSE subscription), so it is an upper bound on the agent-to-agent bytes. UDP datagrams
(/proc/net/snmp; only QUIC speaks UDP here) and the digest counts the journals record
(hashes_sent / hashes_advertised) are shown beside it. A full digest list of 100k assets would be
about 6.4 MB. Writes bench/results/reconnect.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    SYNC_KEY,
    BenchError,
    Cluster,
    KiB,
    Node,
    SeedAsset,
    _push_all,
    bench_workdir,
    journal_rows,
    last_seq,
    lo_counters,
    load_avg,
    median,
    print_table,
    remove_workdir,
    require_isolated,
    udp_datagrams,
    wait_until,
    write_results,
)

from tests.helpers.store_process import start_store_process  # noqa: E402

FULL_DIGEST_LIST_BYTES_PER_ASSET = 64  # the estimate: 100k assets ~ 6.4 MB


def _digest_answers(home: Path, after: int) -> list[tuple[int, int]]:
    """(time_ms, watermark) of the peer's digest answers that completed (last batch) after seq `after`."""
    rows = journal_rows(
        home,
        "SELECT time_ms, json_extract(data,'$.watermark') FROM events WHERE kind='hashes_advertised' AND seq>? "
        "AND json_extract(data,'$.live') IS NULL",
        after,
    )
    return [(int(t), int(w or 0)) for t, w in rows]


def _answer_done(home: Path, after: int) -> int | None:
    """Time of the last-batch digest answer after `after` (its watermark is non-zero), else None."""
    done = [t for t, w in _digest_answers(home, after) if w]
    return min(done) if done else None


def _digest_counts(home: Path, after: int) -> dict[str, int]:
    counts = {}
    for kind in ("hashes_sent", "hashes_advertised"):
        rows = journal_rows(
            home,
            "SELECT coalesce(sum(json_array_length(json_extract(data,'$.hashes'))),0) FROM events "
            "WHERE kind=? AND seq>?",
            kind,
            after,
        )
        counts[kind] = int(rows[0][0]) if rows else 0
    return counts


def _settle(node: Node, quiet_s: float = 1.5, timeout: float = 600) -> None:
    """Wait until the agent's journal stops growing (its local catch-up is done)."""
    seen = [-1, time.monotonic()]

    def quiet() -> bool:
        now_seq = last_seq(node.home)
        if now_seq != seen[0]:
            seen[0], seen[1] = now_seq, time.monotonic()
            return False
        return now_seq > 0 and time.monotonic() - seen[1] >= quiet_s

    if not wait_until(quiet, timeout, interval=0.2):
        raise BenchError(f"agent {node.name} did not settle in {timeout} s")


def _meet(a: Node, b: Node, timeout: float) -> dict[str, Any]:
    """Start B, let it settle, start A dialing B; measure until both digest answers are journaled."""
    b.start_agent()
    _settle(b)
    after_a, after_b = last_seq(a.home), last_seq(b.home)
    load = load_avg()
    lo_before, udp_before = lo_counters(), udp_datagrams()
    started = time.perf_counter()
    a.start_agent(connect_to=b)
    done = wait_until(
        lambda: _answer_done(a.home, after_a) is not None and _answer_done(b.home, after_b) is not None,
        timeout,
        interval=0.02,
    )
    wall = time.perf_counter() - started
    lo_after, udp_after = lo_counters(), udp_datagrams()
    if not done:
        raise BenchError(f"agents did not exchange digests within {timeout} s (logs in {a.home}, {b.home})")
    connected = journal_rows(a.home, "SELECT min(time_ms) FROM events WHERE kind='peer_connected' AND seq>?", after_a)[
        0
    ][0]
    finished = max(_answer_done(a.home, after_a), _answer_done(b.home, after_b))  # type: ignore[type-var]
    transfers = sum(
        journal_rows(n.home, "SELECT count(*) FROM events WHERE kind='transfer_requested' AND seq>?", s)[0][0]
        for n, s in ((a, after_a), (b, after_b))
    )
    counts_a, counts_b = _digest_counts(a.home, after_a), _digest_counts(b.home, after_b)
    return {
        "seconds": round((finished - connected) / 1000, 3),
        "wall_seconds_incl_agent_start": round(wall, 2),
        "lo_bytes": lo_after["bytes"] - lo_before["bytes"],
        "lo_packets": lo_after["packets"] - lo_before["packets"],
        "udp_datagrams": udp_after - udp_before,
        "digests_sent_by_a": counts_a["hashes_sent"],
        "digests_sent_by_b": counts_b["hashes_sent"],
        "transfers_requested": transfers,
        "load_avg": load,
    }


def _seed_both(a: Node, b: Node, count: int, size: int, concurrency: int) -> tuple[float, float]:
    """Push `count` assets into A, then copy A's stopped store to B: both hold the same records.
    Returns (push seconds, copy seconds)."""
    assets = [SeedAsset(i, size, f"r{i}.bin", timestamp=1_700_000_000_000 + i) for i in range(count)]
    started = time.perf_counter()
    asyncio.run(_push_all(a.store.url, assets, concurrency))
    pushed = time.perf_counter() - started
    started = time.perf_counter()
    a.store.stop()
    b.store.stop()
    shutil.rmtree(b.store.root)
    shutil.copytree(a.store.root, b.store.root)
    a.store = start_store_process(a.store.root, port=a.store.port, sync_key=SYNC_KEY, ready_timeout=120)
    b.store = start_store_process(b.store.root, port=b.store.port, sync_key=SYNC_KEY, ready_timeout=120)
    copied = time.perf_counter() - started
    if a.digests() != b.digests() or len(a.digests()) != count:
        raise BenchError("the two stores do not hold the same assets after seeding")
    return pushed, copied


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=100_000, help="assets in each store")
    parser.add_argument("--asset-bytes", type=int, default=KiB, help="size of each asset")
    parser.add_argument("--runs", type=int, default=5, help="reconnects measured (median reported)")
    parser.add_argument("--concurrency", type=int, default=32, help="pushes in flight while seeding")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--workdir-base", default="/dev/shm",
                        help="where stores and agents live (tmpfs by default: seeding 100k assets on disk pays "
                             "3 fsyncs each)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the stores and agent logs")
    parser.add_argument("--quick", action="store_true", help="5000 assets, 2 reconnects")
    args = parser.parse_args()
    if args.quick:
        args.assets, args.runs = min(args.assets, 5000), min(args.runs, 2)
    require_isolated()
    os.environ["CANSYNC_BENCH_TMP"] = args.workdir_base
    base = bench_workdir("reconnect")
    try:
        with Cluster(base) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            seed_s, copy_s = _seed_both(a, b, args.assets, args.asset_bytes, args.concurrency)
            print(f"  seeded {args.assets} assets into store A in {seed_s:.1f} s ({args.assets / seed_s:.0f} "
                  f"pushes/s, {args.concurrency} at once), copied to B in {copy_s:.1f} s", flush=True)  # fmt: skip
            first = _meet(a, b, args.timeout)
            print(f"  first meeting: {first['seconds']} s, {first['lo_bytes']} B on lo", flush=True)
            reconnects = []
            for run in range(args.runs):
                a.stop_agent()
                b.stop_agent()
                reconnects.append(_meet(a, b, args.timeout))
                print(f"  reconnect {run + 1}: {reconnects[-1]['seconds']} s, {reconnects[-1]['lo_bytes']} B on lo, "
                      f"load {reconnects[-1]['load_avg'][0]}", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            remove_workdir(base)

    full_list = args.assets * FULL_DIGEST_LIST_BYTES_PER_ASSET
    rows = [["first meeting", 1, first["seconds"], first["wall_seconds_incl_agent_start"], first["lo_bytes"],
             first["udp_datagrams"], first["digests_sent_by_a"] + first["digests_sent_by_b"],
             first["transfers_requested"], first["load_avg"][0]]]  # fmt: skip
    summary = {
        "assets_per_store": args.assets,
        "seed_push_seconds": round(seed_s, 1),
        "seed_copy_seconds": round(copy_s, 1),
        "workdir_base": str(base.parent),
        "full_digest_list_bytes_estimate": full_list,
        "first_meeting": first,
        "median_reconnect_seconds": median([r["seconds"] for r in reconnects]),
        "median_reconnect_wall_seconds": median([r["wall_seconds_incl_agent_start"] for r in reconnects]),
        "median_reconnect_lo_bytes": int(median([r["lo_bytes"] for r in reconnects])),
        "median_reconnect_udp_datagrams": int(median([r["udp_datagrams"] for r in reconnects])),
        "median_reconnect_digests": int(median([r["digests_sent_by_a"] + r["digests_sent_by_b"] for r in reconnects])),
        "load_avg_1min": [r["load_avg"][0] for r in reconnects],
    }
    rows.append(["reconnect", len(reconnects), summary["median_reconnect_seconds"],
                 summary["median_reconnect_wall_seconds"], summary["median_reconnect_lo_bytes"],
                 summary["median_reconnect_udp_datagrams"], summary["median_reconnect_digests"],
                 int(median([r["transfers_requested"] for r in reconnects])),
                 "/".join(str(x) for x in summary["load_avg_1min"])])  # fmt: skip
    print_table(
        f"reconnect, two synced stores of {args.assets} assets (full digest list ~{full_list / 1e6:.1f} MB)",
        ["case", "runs", "s", "wall s", "lo bytes", "udp dgrams", "digests", "transfers", "load1"],
        rows,
    )
    aims = {
        "under_1_s": summary["median_reconnect_seconds"] < 1.0,
        "under_64_KiB_on_lo": summary["median_reconnect_lo_bytes"] < 64 * KiB,
    }
    print(f"  aims: < 1 s: {aims['under_1_s']}; < 64 KiB on the wire (lo, upper bound): {aims['under_64_KiB_on_lo']}")
    method = "lo byte counter delta (/proc/net/dev) in the namespace"
    result = {"summary": summary, "reconnects": reconnects, "aims": aims, "wire_bytes_method": method}
    write_results("reconnect", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
