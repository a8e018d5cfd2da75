"""Scale: time for 2, 4 and 8 agents on loopback to converge on the same total data.

    bash tests/isolate.sh .venv/bin/python bench/scale_bench.py [--agents 2,4,8] [--total-mib 96] [--runs 3] [--quick]

The same set of assets (--total-mib in 4 MiB assets plus 10 small 1-16 KiB assets per 4 MiB one) is
dealt round-robin over N fresh stores. Agent 0 starts first; every other agent dials agent 0's ticket
and learns the rest by peer exchange. Converged: every agent's journal holds an `asset_received` mark
for every asset it did not start with, and every store holds the union. Time is the journals': the
first `peer_authenticated` anywhere to the last `asset_received` anywhere (wall time incl. start-up
shown apart). Bytes moved = total x (N - 1). Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BenchError,
    Cluster,
    KiB,
    MiB,
    Node,
    SeedAsset,
    bench_workdir,
    journal_rows,
    load_avg,
    median,
    print_table,
    push_assets,
    remove_workdir,
    require_isolated,
    wait_until,
    write_results,
)


def workload(total_mib: int, seed: int) -> list[SeedAsset]:
    large = [SeedAsset(seed * 100_000 + i, 4 * MiB, f"L{i}.bin") for i in range(max(1, total_mib // 4))]
    small = [SeedAsset(seed * 100_000 + 50_000 + i, KiB * (1 + i % 16), f"s{i}.bin") for i in range(10 * len(large))]
    return large + small


def _received(node: Node) -> int:
    rows = journal_rows(node.home, "SELECT count(DISTINCT hash) FROM events WHERE kind='asset_received'")
    return int(rows[0][0]) if rows else 0


def _journal_ms(node: Node, sql: str) -> int | None:
    rows = journal_rows(node.home, sql)
    return rows[0][0] if rows else None


def scale_once(agents: int, total_mib: int, seed: int, timeout: float, keep: bool) -> dict[str, Any]:
    base = bench_workdir(f"scale{agents}")
    try:
        with Cluster(base) as cluster:
            nodes = [cluster.add(f"n{i}") for i in range(agents)]
            assets = workload(total_mib, seed)
            shares = [assets[i::agents] for i in range(agents)]
            started = time.perf_counter()
            held = [set(push_assets(node.store.url, share)) for node, share in zip(nodes, shares, strict=True)]
            seed_s = time.perf_counter() - started
            union = set().union(*held)
            total_bytes = sum(a.size for a in assets)
            load = load_avg()
            started = time.perf_counter()
            nodes[0].start_agent()
            for node in nodes[1:]:
                node.start_agent(connect_to=nodes[0])
            wanted = [len(union) - len(h) for h in held]
            done = wait_until(
                lambda: all(_received(n) >= w for n, w in zip(nodes, wanted, strict=True)), timeout, interval=0.5
            )
            wall_s = time.perf_counter() - started
            if not done:
                got = [_received(n) for n in nodes]
                raise BenchError(
                    f"{agents} agents did not converge in {timeout} s: received {got} of {wanted} ({base})"
                )
            for node in nodes:
                if node.digests() != union:
                    raise BenchError(f"store of {node.name} does not hold the union")
            begin = min(_journal_ms(n, "SELECT min(time_ms) FROM events WHERE kind='peer_authenticated'") or 0
                        for n in nodes)  # fmt: skip
            end = max(_journal_ms(n, "SELECT max(time_ms) FROM events WHERE kind='asset_received'") or 0 for n in nodes)
            seconds = (end - begin) / 1000
            moved = total_bytes * (agents - 1)
            return {
                "agents": agents,
                "assets": len(assets),
                "total_bytes": total_bytes,
                "seed_seconds": round(seed_s, 1),
                "converge_seconds": round(seconds, 2),
                "wall_seconds_incl_agent_start": round(wall_s, 1),
                "bytes_moved": moved,
                "mb_s_aggregate": round(moved / seconds / 1e6, 1),
                "load_avg": load,
                "load_avg_after": load_avg(),
            }
    finally:
        if not keep:
            remove_workdir(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--agents", default="2,4,8", help="agent counts to measure")
    parser.add_argument("--total-mib", type=int, default=96, help="total data dealt over the stores (MiB)")
    parser.add_argument("--runs", type=int, default=3, help="repeats per agent count (median reported)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quick", action="store_true", help="24 MiB, 1 run")
    args = parser.parse_args()
    if args.quick:
        args.total_mib, args.runs = min(args.total_mib, 24), 1
    require_isolated()
    counts = [int(x) for x in args.agents.split(",")]
    runs: list[dict[str, Any]] = []
    for count in counts:
        for run in range(args.runs):
            runs.append(scale_once(count, args.total_mib, 70 + run, args.timeout, args.keep))
            print(f"  {count} agents, run {run + 1}: {runs[-1]['converge_seconds']} s, "
                  f"load {runs[-1]['load_avg'][0]}", flush=True)  # fmt: skip
    rows = []
    summary = []
    for count in counts:
        mine = [r for r in runs if r["agents"] == count]
        entry: dict[str, Any] = {
            "agents": count,
            "runs": len(mine),
            "median_converge_seconds": median([r["converge_seconds"] for r in mine]),
            "median_wall_seconds": median([r["wall_seconds_incl_agent_start"] for r in mine]),
            "median_mb_s_aggregate": median([r["mb_s_aggregate"] for r in mine]),
            "load_avg_1min": [r["load_avg"][0] for r in mine],
        }
        summary.append(entry)
        rows.append([count, mine[0]["assets"], round(mine[0]["total_bytes"] / MiB, 1), entry["median_converge_seconds"],
                     entry["median_wall_seconds"], entry["median_mb_s_aggregate"],
                     "/".join(str(x) for x in entry["load_avg_1min"])])  # fmt: skip
    print_table(
        "time to converge, N agents on loopback, same total data (2 cores for all processes)",
        ["agents", "assets", "total MiB", "converge s", "wall s", "agg MB/s", "load1"],
        rows,
    )
    write_results("scale", {"summary": summary, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
