"""Memory while one large asset syncs: RSS of both agents and both stores, sampled.

    bash tests/isolate.sh .venv/bin/python bench/memory_bench.py [--gib 4] [--runs 1] [--quick]

Store A is seeded with one asset of --gib GiB, generated chunk by chunk and pushed from a generator
(hashed in a first pass, streamed in a second: it is never held in memory). Agent B starts, agent A
dials it, and every --interval seconds the resident set size of the four processes is sampled until
B's journal marks the asset received. Reports peak and median RSS per process (MB = 10^6 bytes; the
aim is expressed in MB too) and the sync time. Writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import sys
import threading
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
    print_table,
    push_assets,
    remove_workdir,
    require_isolated,
    write_results,
)

AIM_AGENT_RSS_MB = 150


def _received(home: Path) -> int:
    rows = journal_rows(home, "SELECT count(*) FROM events WHERE kind='asset_received'")
    return int(rows[0][0]) if rows else 0


def _count(home: Path, kind: str) -> int:
    rows = journal_rows(home, "SELECT count(*) FROM events WHERE kind=?", kind)
    return int(rows[0][0]) if rows else 0


def _zero_starts(home: Path) -> int:
    rows = journal_rows(
        home,
        "SELECT count(*) FROM events WHERE kind='transfer_started' AND json_extract(data,'$.offset')=0 "
        "AND json_extract(data,'$.direction')='in'",
    )
    return int(rows[0][0]) if rows else 0


class RssSampler:
    """Samples the RSS of named processes on a thread until stopped."""

    def __init__(self, pids: dict[str, int], interval: float) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                try:
                    self.samples[name].append(process.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_once(size: int, interval: float, timeout: float, keep: bool) -> dict[str, Any]:
    base = bench_workdir("memory")
    try:
        with Cluster(base) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            started = time.perf_counter()
            (asset,) = push_assets(a.store.url, [SeedAsset(4242, size, "huge.bin")], concurrency=1)
            seed_s = time.perf_counter() - started
            load = load_avg()
            b.start_agent()
            a.start_agent(connect_to=b)
            assert a.agent is not None and b.agent is not None
            pids = {"agent A (sender)": a.agent.process.pid, "agent B (receiver)": b.agent.process.pid,
                    "store A": a.store.pid, "store B": b.store.pid}  # fmt: skip
            started = time.perf_counter()
            converged = True
            with RssSampler(pids, interval) as sampler:
                while _received(b.home) < 1:
                    if time.perf_counter() - started > timeout:
                        # the RSS seen so far still answers the memory question: report it, say so
                        converged = False
                        print(f"  the {size / GiB:.1f} GiB asset did not land in {timeout} s; RSS is over that window")
                        break
                    if not (a.agent.is_running() and b.agent.is_running()):
                        raise BenchError(f"an agent died during the transfer (logs in {base})")
                    time.sleep(0.2)
            sync_s = time.perf_counter() - started
            if converged and asset not in b.digests():
                raise BenchError("B's journal says received, but its store does not hold the asset")
            return {
                "size_bytes": size,
                "converged": converged,
                "seed_seconds": round(seed_s, 1),
                "sync_seconds_incl_agent_start": round(sync_s, 1),
                "mb_s": round(size / sync_s / 1e6, 1) if converged else None,
                "session_drops": _count(a.home, "peer_disconnected"),
                "transfer_restarts_from_zero": max(0, _zero_starts(b.home) - 1),
                "rss_peak_mb": {n: round(max(s) / 1e6, 1) for n, s in sampler.samples.items() if s},
                "rss_median_mb": {n: round(median(s) / 1e6, 1) for n, s in sampler.samples.items() if s},
                "samples": {n: len(s) for n, s in sampler.samples.items()},
                "load_avg": load,
                "load_avg_after": load_avg(),
            }
    finally:
        if not keep:
            remove_workdir(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gib", type=float, default=4.0, help="size of the asset (GiB)")
    parser.add_argument("--runs", type=int, default=1, help="repeats (the peak is the max, medians of medians)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between RSS samples")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the asset to land")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a 256 MiB asset")
    args = parser.parse_args()
    if args.quick:
        args.gib = min(args.gib, 0.25)
    require_isolated()
    size = int(args.gib * GiB)
    runs = []
    for run in range(args.runs):
        runs.append(memory_once(size, args.interval, args.timeout, args.keep))
        print(f"  run {run + 1}: {runs[-1]['sync_seconds_incl_agent_start']} s, peaks {runs[-1]['rss_peak_mb']}",
              flush=True)  # fmt: skip
    names = list(runs[0]["rss_peak_mb"])
    rows = []
    for name in names:
        peak = max(r["rss_peak_mb"][name] for r in runs)
        typical = median([r["rss_median_mb"][name] for r in runs])
        rows.append([name, peak, typical])
    print_table(
        f"RSS while one {size / GiB:.2f} GiB asset syncs A -> B ({size // MiB} MiB; MB = 10^6 B; "
        f"{'synced in' if all(r['converged'] for r in runs) else 'NOT synced; sampled for'} "
        f"{median([r['sync_seconds_incl_agent_start'] for r in runs]):.1f} s, load1 {runs[0]['load_avg'][0]})",
        ["process", "peak MB", "median MB"],
        rows,
    )
    agent_peak = max(max(r["rss_peak_mb"][n] for r in runs) for n in names if n.startswith("agent"))
    aims = {"agent_rss_under_150_mb": agent_peak < AIM_AGENT_RSS_MB}
    print(f"  aim: agent RSS under {AIM_AGENT_RSS_MB} MB: {aims['agent_rss_under_150_mb']} (peak {agent_peak} MB)")
    write_results("memory", {"runs": runs, "aims": aims})
    return 0


if __name__ == "__main__":
    sys.exit(main())
