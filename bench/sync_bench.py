"""Initial sync throughput: two stores, two agents on loopback, both directions at once.

    bash tests/isolate.sh .venv/bin/python bench/sync_bench.py [--runs 3] [--small 10000] [--quick]

Each run seeds two fresh stores (through /sync/push, timed apart), starts agent B, then agent A
dialing B's ticket, and waits until each side's journal holds an `asset_received` mark for every
asset of the other. The clock is the journal's: from the first `peer_authenticated` on either side
to the last `asset_received` on either side (so process start-up is not counted; it is shown apart).
Workloads: "mixed" (102 assets per side, 1 KiB to 64 MiB) and "small" (10,000 per side, 1-16 KiB).
Right after each mixed run the raw iroh stream limit is measured in the same namespace
(bench/iroh_raw_bench.py, both directions, the same bytes per direction) and the ratio reported.
MB = 10^6 bytes; bytes and assets both ways are counted together, as the raw bench does.
Prints a table and writes bench/results/sync.json.
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
    MiB,
    bench_workdir,
    journal_rows,
    load_avg,
    median,
    mixed_sizes,
    print_table,
    push_assets,
    remove_workdir,
    require_isolated,
    seed_assets,
    small_sizes,
    wait_until,
    write_results,
)
from iroh_raw_bench import measure_raw_throughput  # noqa: E402

ORIGINAL_RUST_MB_S = 63.0  # the original agent's figure: 102 assets, bidirectional


def _received(home: Path) -> int:
    """Assets of the other side this agent has in its store: a received-from-peer mark, or (when a
    session dropped between the store push and the mark) seen by its local feed."""
    rows = journal_rows(
        home,
        "SELECT count(DISTINCT hash) FROM events WHERE kind='asset_received' OR (kind='local_asset_seen' AND hash IN "
        "(SELECT hash FROM events WHERE kind='transfer_requested' AND json_extract(data,'$.direction')='in'))",
    )
    return int(rows[0][0]) if rows else 0


def _ms(home: Path, sql: str) -> int:
    rows = journal_rows(home, sql)
    if not rows or rows[0][0] is None:
        raise BenchError(f"journal of {home} has no answer to {sql!r}")
    return int(rows[0][0])


_LAST_ARRIVAL = (
    "SELECT max(time_ms) FROM events WHERE kind='asset_received' OR (kind='local_asset_seen' AND hash IN "
    "(SELECT hash FROM events WHERE kind='transfer_requested' AND json_extract(data,'$.direction')='in'))"
)
_DROPS = "SELECT count(*) FROM events WHERE kind='peer_disconnected'"


def sync_once(workload: str, sizes: list[int], seed: int, timeout: float, keep: bool) -> dict[str, Any]:
    """One fresh pair of stores and agents; returns the run's figures."""
    base = bench_workdir(f"sync-{workload}")
    try:
        with Cluster(base) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            a_assets = seed_assets("a", seed * 1_000_000, sizes)
            b_assets = seed_assets("b", seed * 1_000_000 + 500_000, sizes)
            started = time.perf_counter()
            a_hashes = set(push_assets(a.store.url, a_assets))
            b_hashes = set(push_assets(b.store.url, b_assets))
            seed_s = time.perf_counter() - started
            if len(a_hashes) != len(sizes) or len(b_hashes) != len(sizes) or a_hashes & b_hashes:
                raise BenchError("seeding produced duplicate assets")
            load_before = load_avg()
            wall_started = time.perf_counter()
            b.start_agent()
            a.start_agent(connect_to=b)
            n = len(sizes)
            done = wait_until(lambda: _received(a.home) >= n and _received(b.home) >= n, timeout, interval=0.25)
            wall_s = time.perf_counter() - wall_started
            if not done:
                raise BenchError(
                    f"{workload}: not converged in {timeout} s (A received {_received(a.home)}, "
                    f"B received {_received(b.home)} of {n}); logs under {base}"
                )
            load_after = load_avg()
            union = a_hashes | b_hashes
            if a.digests() != union or b.digests() != union:
                raise BenchError(f"{workload}: stores do not hold the union after the journal said so")
            begin = min(
                _ms(node.home, "SELECT min(time_ms) FROM events WHERE kind='peer_authenticated'") for node in (a, b)
            )
            into_a, into_b = (_ms(node.home, _LAST_ARRIVAL) for node in (a, b))
            seconds = (max(into_a, into_b) - begin) / 1000
            per_side = sum(sizes)
            return {
                "workload": workload,
                "assets_per_side": n,
                "bytes_per_side": per_side,
                "seed_seconds": round(seed_s, 2),
                "sync_seconds": round(seconds, 3),
                "wall_seconds_incl_agent_start": round(wall_s, 2),
                "mb_s_both_ways": round(2 * per_side / seconds / 1e6, 2),
                "assets_s_both_ways": round(2 * n / seconds, 1),
                "mb_s_into_a": round(per_side / ((into_a - begin) / 1000) / 1e6, 2),
                "mb_s_into_b": round(per_side / ((into_b - begin) / 1000) / 1e6, 2),
                "session_drops": _ms(a.home, _DROPS),
                "transfer_requests_in": sum(
                    _ms(
                        node.home,
                        "SELECT count(*) FROM events WHERE kind='transfer_requested' AND "
                        "json_extract(data,'$.direction')='in'",
                    )
                    for node in (a, b)
                ),
                "load_avg_before": load_before,
                "load_avg_after": load_after,
            }
    finally:
        if not keep:
            remove_workdir(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="repeats of each workload (median reported)")
    parser.add_argument("--small", type=int, default=10_000, help="small assets per side (1-16 KiB)")
    parser.add_argument("--mixed-scale", type=float, default=1.0, help="scale the large mixed assets (1 = 64 MiB max)")
    parser.add_argument("--raw-runs", type=int, default=1, help="raw iroh measurements after each mixed run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one sync to converge")
    parser.add_argument("--workloads", default="mixed,small", help="which workloads: mixed, small or both")
    parser.add_argument("--keep", action="store_true", help="keep the stores and agent logs")
    parser.add_argument("--quick", action="store_true", help="1 run, mixed scaled to 1/4, 1000 small assets")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.small, args.mixed_scale = 1, min(args.small, 1000), min(args.mixed_scale, 0.25)
    require_isolated()

    workloads = set(args.workloads.split(","))
    if not workloads or workloads - {"mixed", "small"}:
        raise SystemExit(f"--workloads: {args.workloads!r}: name mixed, small or both")
    mixed = mixed_sizes(102, args.mixed_scale)
    runs: list[dict[str, Any]] = []
    raw: list[float] = []
    for run in range(args.runs if "mixed" in workloads else 0):
        result = sync_once("mixed", mixed, 10 + run, args.timeout, args.keep)
        runs.append(result)
        print(f"  mixed run {run + 1}: {result['mb_s_both_ways']} MB/s, {result['sync_seconds']} s, "
              f"load {result['load_avg_before'][0]}", flush=True)  # fmt: skip
        for _ in range(args.raw_runs):
            raw.append(measure_raw_throughput(sum(mixed), MiB, bidirectional=True))
            print(f"  raw iroh bidir ({sum(mixed) / MiB:.0f} MiB each way): {raw[-1]:.1f} MB/s", flush=True)
    if "small" in workloads:
        for run in range(args.runs):
            result = sync_once("small", small_sizes(args.small), 100 + run, args.timeout, args.keep)
            runs.append(result)
            print(f"  small run {run + 1}: {result['assets_s_both_ways']} assets/s, {result['sync_seconds']} s, "
                  f"load {result['load_avg_before'][0]}", flush=True)  # fmt: skip

    summary: list[dict[str, Any]] = []
    raw_median = round(median(raw), 1)
    for workload in ("mixed", "small"):
        mine = [r for r in runs if r["workload"] == workload]
        if not mine:
            continue
        mb_s = median([r["mb_s_both_ways"] for r in mine])
        summary.append(
            {
                "workload": workload,
                "assets_per_side": mine[0]["assets_per_side"],
                "mib_per_side": round(mine[0]["bytes_per_side"] / MiB, 1),
                "runs": len(mine),
                "median_sync_seconds": median([r["sync_seconds"] for r in mine]),
                "median_mb_s_both_ways": round(mb_s, 1),
                "median_assets_s_both_ways": round(median([r["assets_s_both_ways"] for r in mine]), 1),
                "median_mb_s_into_a": round(median([r["mb_s_into_a"] for r in mine]), 1),
                "median_mb_s_into_b": round(median([r["mb_s_into_b"] for r in mine]), 1),
                "raw_iroh_bidir_mb_s": raw_median if workload == "mixed" else None,
                "ratio_to_raw": round(mb_s / raw_median, 2) if workload == "mixed" and raw else None,
                "load_avg_1min": [r["load_avg_before"][0] for r in mine],
                "median_seed_seconds": median([r["seed_seconds"] for r in mine]),
            }
        )
    print_table(
        "initial sync, two agents on loopback, both directions at once (MB = 10^6 B)",
        ["workload", "assets/side", "MiB/side", "s", "MB/s", "assets/s", "->A MB/s", "->B MB/s", "raw MB/s",
         "ratio", "load1", "seed s"],
        [[s["workload"], s["assets_per_side"], s["mib_per_side"], s["median_sync_seconds"],
          s["median_mb_s_both_ways"], s["median_assets_s_both_ways"], s["median_mb_s_into_a"],
          s["median_mb_s_into_b"], s["raw_iroh_bidir_mb_s"] or "-", s["ratio_to_raw"] or "-",
          "/".join(str(x) for x in s["load_avg_1min"]), s["median_seed_seconds"]] for s in summary],
    )  # fmt: skip
    mixed_row = next((s for s in summary if s["workload"] == "mixed"), None)
    aims = {}
    if mixed_row is not None:
        aims = {
            "at_least_60pct_of_raw": bool(mixed_row["ratio_to_raw"] and mixed_row["ratio_to_raw"] >= 0.6),
            "above_original_63_mb_s": mixed_row["median_mb_s_both_ways"] > ORIGINAL_RUST_MB_S,
        }
        print(f"  aims: >= 60% of raw: {aims['at_least_60pct_of_raw']}; "
              f"> {ORIGINAL_RUST_MB_S} MB/s (original): {aims['above_original_63_mb_s']}")  # fmt: skip
    name = "sync" if workloads == {"mixed", "small"} else f"sync_{workloads.pop()}"
    write_results(name, {"summary": summary, "runs": runs, "raw_iroh_bidir_mb_s": raw, "aims": aims})
    return 0


if __name__ == "__main__":
    sys.exit(main())
