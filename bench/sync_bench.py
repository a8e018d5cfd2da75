"""Initial sync throughput: two stores, two agents on loopback, both directions at once.

    bash tests/isolate.sh .venv/bin/python bench/sync_bench.py [--runs 3] [--small 10000] [--quick]

Each run seeds two fresh stores (through /sync/push, timed apart), starts agent B, then agent A
dialing B's ticket, and waits until each side's journal holds an `asset_received` mark for every
asset of the other. The clock is the journal's: from the first `peer_authenticated` on either side
to the last `asset_received` on either side (so process start-up is not counted; it is shown apart).
Workloads: "mixed" (102 assets per side, 1 KiB to 64 MiB), "small" (10,000 per side, 1-16 KiB) and
"large" (one asset of --large-gib GiB, A to B only). Right after each mixed run the raw iroh stream
limit is measured in the same namespace (bench/iroh_raw_bench.py, both directions, the same bytes per
direction) and the ratio reported; after each large run, one way with the same bytes.
For the large asset, "end to end" runs from B's request to B's received mark (the asset is in B's
store), "wire" from A's first byte out to A's last (A's transfer_started and transfer_completed):
the aim is end to end within 1.15x of the wire.
MB = 10^6 bytes; bytes and assets both ways are counted together, as the raw bench does.
Each run also reports incoming transfer requests per asset (aim: at most 1.02) and session drops.
Prints a table and the aims, and writes bench/results/sync.json. `--profile DIR` records both agents and
both stores with py-spy during each run and prints where their busy time went (bench/profiler.py).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BenchError,
    Cluster,
    GiB,
    MiB,
    SeedAsset,
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
from profiler import print_profiles, profiled  # noqa: E402

ORIGINAL_RUST_MB_S = 63.0  # the original agent's figure: 102 assets, bidirectional
AIM_SMALL_ASSETS_S = 2000.0  # issue 12: small assets a second, both ways counted
AIM_MIXED_RATIO = 0.75  # of raw iroh, both directions, same run
AIM_REQUESTS_PER_ASSET = 1.02
AIM_LARGE_END_TO_END_OVER_WIRE = 1.15


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


def _profiling(nodes: list[Any], profile_dir: Path | None, label: str) -> contextlib.AbstractContextManager[Any]:
    """py-spy on both agents and both stores while the sync runs (--profile), else nothing."""
    if profile_dir is None:
        return contextlib.nullcontext({})
    pids = {f"agent-{n.name}": n.agent.process.pid for n in nodes} | {f"store-{n.name}": n.store.pid for n in nodes}
    return profiled(pids, profile_dir / label)


def _processes(nodes: list[Any]) -> dict[str, psutil.Process]:
    return {f"agent-{n.name}": psutil.Process(n.agent.process.pid) for n in nodes} | {
        f"store-{n.name}": psutil.Process(n.store.pid) for n in nodes
    }


def _cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User and system CPU each process has used so far (all its threads)."""
    return {name: sum(p.cpu_times()[:2]) for name, p in processes.items()}


def sync_once(
    workload: str, sizes: list[int], seed: int, timeout: float, keep: bool, profile_dir: Path | None = None
) -> dict[str, Any]:
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
            processes = _processes([a, b])
            cpu_before = _cpu_seconds(processes)
            with _profiling([a, b], profile_dir, f"{workload}-{seed}") as profiles:
                done = wait_until(lambda: _received(a.home) >= n and _received(b.home) >= n, timeout, interval=0.25)
            cpu = {name: round(s - cpu_before[name], 2) for name, s in _cpu_seconds(processes).items()}
            wall_s = time.perf_counter() - wall_started
            if profiles:
                print_profiles(f"{workload} (seed {seed})", profiles)
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
            requests_in = sum(
                _ms(
                    node.home,
                    "SELECT count(*) FROM events WHERE kind='transfer_requested' AND "
                    "json_extract(data,'$.direction')='in'",
                )
                for node in (a, b)
            )
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
                "cpu_seconds": cpu,
                "cpu_ms_per_asset": round(1000 * sum(cpu.values()) / (2 * n), 3),
                "transfer_requests_in": requests_in,
                "requests_per_asset": round(requests_in / (2 * n), 3),
                "load_avg_before": load_before,
                "load_avg_after": load_after,
            }
    finally:
        if not keep:
            remove_workdir(base)


def _event_ms(home: Path, kind: str, direction: str, asset: str) -> int:
    return _ms(
        home,
        f"SELECT min(time_ms) FROM events WHERE kind='{kind}' AND hash='{asset}' "
        f"AND json_extract(data,'$.direction')='{direction}'",
    )


def large_once(size: int, seed: int, timeout: float, keep: bool, profile_dir: Path | None = None) -> dict[str, Any]:
    """One asset of `size` bytes from A to B: end to end against the time its bytes took on our wire."""
    base = bench_workdir("sync-large")
    try:
        with Cluster(base) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            started = time.perf_counter()
            (asset,) = push_assets(a.store.url, [SeedAsset(seed, size, "large.bin")], concurrency=1)
            seed_s = time.perf_counter() - started
            load_before = load_avg()
            b.start_agent()
            a.start_agent(connect_to=b)
            with _profiling([a, b], profile_dir, f"large-{seed}") as profiles:
                done = wait_until(lambda: _received(b.home) >= 1, timeout, interval=0.25)
            if profiles:
                print_profiles(f"large (seed {seed})", profiles)
            if not done:
                raise BenchError(f"large: the asset did not land in {timeout} s; logs under {base}")
            if asset not in b.digests():
                raise BenchError("large: B's journal says received, but its store does not hold the asset")
            requested = _event_ms(b.home, "transfer_requested", "in", asset)
            received = _ms(b.home, f"SELECT min(time_ms) FROM events WHERE kind='asset_received' AND hash='{asset}'")
            first_out = _event_ms(a.home, "transfer_started", "out", asset)
            last_out = _event_ms(a.home, "transfer_completed", "out", asset)
            end_to_end_s, wire_s = (received - requested) / 1000, (last_out - first_out) / 1000
            return {
                "workload": "large",
                "assets_per_side": 1,
                "bytes_per_side": size,
                "seed_seconds": round(seed_s, 2),
                "end_to_end_seconds": round(end_to_end_s, 3),
                "wire_seconds": round(wire_s, 3),
                "end_to_end_over_wire": round(end_to_end_s / wire_s, 3) if wire_s > 0 else None,
                "mb_s_end_to_end": round(size / end_to_end_s / 1e6, 1),
                "mb_s_wire": round(size / wire_s / 1e6, 1) if wire_s > 0 else None,
                "session_drops": _ms(a.home, _DROPS),
                "requests_per_asset": float(
                    _ms(
                        b.home,
                        "SELECT count(*) FROM events WHERE kind='transfer_requested' AND "
                        "json_extract(data,'$.direction')='in'",
                    )
                ),
                "load_avg_before": load_before,
                "load_avg_after": load_avg(),
            }
    finally:
        if not keep:
            remove_workdir(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="repeats of each workload (median reported)")
    parser.add_argument("--small", type=int, default=10_000, help="small assets per side (1-16 KiB)")
    parser.add_argument("--mixed-scale", type=float, default=1.0, help="scale the large mixed assets (1 = 64 MiB max)")
    parser.add_argument("--large-gib", type=float, default=1.0, help="size of the one large asset (GiB)")
    parser.add_argument("--raw-runs", type=int, default=1, help="raw iroh measurements after each mixed or large run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one sync to converge")
    parser.add_argument("--workloads", default="mixed,small,large", help="any of mixed, small, large (comma separated)")
    parser.add_argument("--keep", action="store_true", help="keep the stores and agent logs")
    parser.add_argument(
        "--profile", type=Path, default=None, metavar="DIR",
        help="record both agents and stores with py-spy into DIR and print where their busy time went",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true", help="about two minutes: 1 run, mixed at 1/4, 1,000 small, a 256 MiB large"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.small = 1, min(args.small, 1000)
        args.mixed_scale, args.large_gib = min(args.mixed_scale, 0.25), min(args.large_gib, 0.25)
    require_isolated()

    workloads = [w for w in ("mixed", "small", "large") if w in args.workloads.split(",")]
    if not workloads or set(args.workloads.split(",")) - {"mixed", "small", "large"}:
        raise SystemExit(f"--workloads: {args.workloads!r}: name any of mixed, small, large")
    mixed = mixed_sizes(102, args.mixed_scale)
    large = int(args.large_gib * GiB)
    runs: list[dict[str, Any]] = []
    raw: dict[str, list[float]] = {"mixed": [], "large": []}
    for run in range(args.runs if "mixed" in workloads else 0):
        result = sync_once("mixed", mixed, 10 + run, args.timeout, args.keep, args.profile)
        runs.append(result)
        print(f"  mixed run {run + 1}: {result['mb_s_both_ways']} MB/s, {result['sync_seconds']} s, "
              f"load {result['load_avg_before'][0]}", flush=True)  # fmt: skip
        for _ in range(args.raw_runs):
            raw["mixed"].append(measure_raw_throughput(sum(mixed), MiB, bidirectional=True))
            print(f"  raw iroh bidir ({sum(mixed) / MiB:.0f} MiB each way): {raw['mixed'][-1]:.1f} MB/s", flush=True)
    for run in range(args.runs if "small" in workloads else 0):
        result = sync_once("small", small_sizes(args.small), 100 + run, args.timeout, args.keep, args.profile)
        runs.append(result)
        print(f"  small run {run + 1}: {result['assets_s_both_ways']} assets/s, {result['sync_seconds']} s, "
              f"{result['requests_per_asset']} requests/asset, CPU {result['cpu_ms_per_asset']} ms/asset "
              f"{result['cpu_seconds']}, load {result['load_avg_before'][0]}", flush=True)  # fmt: skip
    for run in range(args.runs if "large" in workloads else 0):
        result = large_once(large, 7000 + run, args.timeout, args.keep, args.profile)
        runs.append(result)
        print(f"  large run {run + 1}: end to end {result['end_to_end_seconds']} s, wire {result['wire_seconds']} s "
              f"(x{result['end_to_end_over_wire']}), load {result['load_avg_before'][0]}", flush=True)  # fmt: skip
        for _ in range(args.raw_runs):
            raw["large"].append(measure_raw_throughput(large, MiB, bidirectional=False))
            print(f"  raw iroh one way ({large / MiB:.0f} MiB): {raw['large'][-1]:.1f} MB/s", flush=True)

    summary: list[dict[str, Any]] = []
    for workload in workloads:
        mine = [r for r in runs if r["workload"] == workload]
        raw_median = round(median(raw[workload]), 1) if raw.get(workload) else None
        if workload == "large":
            mb_s = median([r["mb_s_end_to_end"] for r in mine])
            seconds = median([r["end_to_end_seconds"] for r in mine])
        else:
            mb_s = median([r["mb_s_both_ways"] for r in mine])
            seconds = median([r["sync_seconds"] for r in mine])
        summary.append(
            {
                "workload": workload,
                "assets_per_side": mine[0]["assets_per_side"],
                "mib_per_side": round(mine[0]["bytes_per_side"] / MiB, 1),
                "direction": "A->B" if workload == "large" else "both",
                "runs": len(mine),
                "median_sync_seconds": seconds,
                "median_mb_s": round(mb_s, 1),
                "median_assets_s": (
                    None if workload == "large" else round(median([r["assets_s_both_ways"] for r in mine]), 1)
                ),
                "max_requests_per_asset": max(r["requests_per_asset"] for r in mine),
                "session_drops": sum(r["session_drops"] for r in mine),
                "raw_iroh_mb_s": raw_median,
                "ratio_to_raw": round(mb_s / raw_median, 2) if raw_median else None,
                "median_end_to_end_over_wire": (
                    median([r["end_to_end_over_wire"] for r in mine]) if workload == "large" else None
                ),
                "load_avg_1min": [r["load_avg_before"][0] for r in mine],
                "median_seed_seconds": median([r["seed_seconds"] for r in mine]),
            }
        )  # fmt: skip
    print_table(
        "initial sync, two agents on loopback (MB = 10^6 B; mixed and small both directions at once, counted together)",
        ["workload", "assets/side", "MiB/side", "way", "s", "MB/s", "assets/s", "req/asset", "drops", "raw MB/s",
         "ratio", "e2e/wire", "load1", "seed s"],
        [[s["workload"], s["assets_per_side"], s["mib_per_side"], s["direction"], s["median_sync_seconds"],
          s["median_mb_s"], s["median_assets_s"] or "-", s["max_requests_per_asset"], s["session_drops"],
          s["raw_iroh_mb_s"] or "-", s["ratio_to_raw"] or "-", s["median_end_to_end_over_wire"] or "-",
          "/".join(str(x) for x in s["load_avg_1min"]), s["median_seed_seconds"]] for s in summary],
    )  # fmt: skip
    aims: dict[str, bool] = {}
    by_name = {s["workload"]: s for s in summary}
    if "small" in by_name:
        aims["small_2000_assets_s"] = by_name["small"]["median_assets_s"] >= AIM_SMALL_ASSETS_S
    if "mixed" in by_name:
        aims["mixed_ratio_0_75"] = (by_name["mixed"]["ratio_to_raw"] or 0) >= AIM_MIXED_RATIO
        aims["mixed_above_original_63_mb_s"] = by_name["mixed"]["median_mb_s"] > ORIGINAL_RUST_MB_S
    if "large" in by_name:
        aims["large_end_to_end_within_1_15_of_wire"] = (
            by_name["large"]["median_end_to_end_over_wire"] or 99
        ) <= AIM_LARGE_END_TO_END_OVER_WIRE
    aims["requests_per_asset_1_02"] = all(s["max_requests_per_asset"] <= AIM_REQUESTS_PER_ASSET for s in summary)
    aims["no_session_drop"] = all(s["session_drops"] == 0 for s in summary)
    print("  aims: " + "; ".join(f"{name}: {met}" for name, met in aims.items()))
    name = "sync" if len(workloads) == 3 else "sync_" + "_".join(workloads)
    write_results(name, {"summary": summary, "runs": runs, "raw_iroh_mb_s": raw, "aims": aims})
    return 0


if __name__ == "__main__":
    sys.exit(main())
