"""First meeting of two big stores: seconds and bytes until both agents know their difference.

    bash tests/isolate.sh .venv/bin/python bench/reconcile_bench.py [--assets N] [--diff D] [--quick]

Two stores are built through the store's own code (cansync.store.bulk_load, on /dev/shm by default):
A holds assets 0 .. N-1, B holds D/2 .. N+D/2-1, so each holds D/2 the other lacks (D = 0: identical).
Both agents start and journal their own store first (that catch-up is timed apart: it is the cost of a
new agent beside a big store, not of the meeting); then A is given B's ticket and dials. The meeting is
over when both journals hold `peer_reconciled`. Seconds: journal time from the first
`peer_authenticated` to the later `peer_reconciled`. Wire bytes: the frame bytes on the connection up
to then, both ways, as each agent journals them with the reconciliation (the handshake included; QUIC's
own headers are not). Agent RSS is read as both have journaled the meeting, and again once neither has
moved for 3 s (the meeting's aftermath, a pass over the store's metadata, is over), with the peak between.
Both cases of issue 14 run by default: N = 1,000,000 with D = 1,000, and N =
1,000,000 identical. Writes bench/results/reconcile.json (first_meeting_s and wire_bytes per case).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PASSPHRASE,
    SYNC_KEY,
    BenchError,
    journal_rows,
    load_avg,
    print_table,
    require_isolated,
    write_results,
)

from cansync.store.bulk_load import bulk_load  # noqa: E402
from tests.helpers.agent_process import start_agent, write_agent_config  # noqa: E402
from tests.helpers.store_process import start_store_process, wait_until  # noqa: E402

AIMS = {"differ": (15.0, 4_000_000), "identical": (2.0, 50_000)}
AIM_RSS_MB, AIM_RESTART_S = 400.0, 2.0
RESTART_SETTLE_S = 5.0
RSS_STEADY_S, RSS_STEADY_MB, RSS_SETTLE_LIMIT_S, RSS_SAMPLE_S = 3.0, 1.0, 60.0, 0.25


def settled_rss(agents: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Each agent's RSS once the meeting's aftermath is over (its metadata pass pages the whole store), and
    its peak on the way: sampled every RSS_SAMPLE_S until no agent has moved by RSS_STEADY_MB for RSS_STEADY_S."""
    samples: list[dict[str, int]] = []
    per_window = int(RSS_STEADY_S / RSS_SAMPLE_S)
    deadline = time.monotonic() + RSS_SETTLE_LIMIT_S
    while time.monotonic() < deadline:
        samples.append({n: agents[n].rss_bytes() for n in agents})
        window = samples[-per_window:]
        if len(window) == per_window and all(
            max(s[n] for s in window) - min(s[n] for s in window) < RSS_STEADY_MB * 1e6 for n in agents
        ):
            break
        time.sleep(RSS_SAMPLE_S)
    peaks = {n: max(s[n] for s in samples) for n in agents}
    return samples[-1], peaks


def _local_count(home: Path) -> int:
    rows = journal_rows(home, "SELECT count(*) FROM events WHERE kind='local_asset_seen'")
    return int(rows[0][0]) if rows else 0


def _reconciled(home: Path) -> dict[str, Any] | None:
    rows = journal_rows(home, "SELECT time_ms, data FROM events WHERE kind='peer_reconciled' ORDER BY seq LIMIT 1")
    if not rows:
        return None
    time_ms, data = rows[0]
    return {"time_ms": int(time_ms), **json.loads(data)}


def meet(base: Path, assets: int, diff: int, timeout: float) -> dict[str, Any]:
    half = diff // 2
    roots = {"a": base / "a" / "store", "b": base / "b" / "store"}
    built = time.perf_counter()
    bulk_load(roots["a"], range(0, assets))
    bulk_load(roots["b"], range(half, assets + half), link_from=roots["a"])
    build_s = time.perf_counter() - built
    stores = {name: start_store_process(root, sync_key=SYNC_KEY) for name, root in roots.items()}
    agents = {}
    try:
        for name in ("b", "a"):
            home = base / name
            settings: dict[str, Any] = {"can_service_url": stores[name].url, "sync_api_key": SYNC_KEY}
            if name == "a":  # dials once the file appears: after both have journaled their stores
                settings["connect_ticket_file"] = base / "meet" / "ticket.json"
            write_agent_config(home, sync_passphrase=PASSPHRASE, **settings)
            agents[name] = start_agent(home, name, timeout=120, log_level="INFO")
        caught_up = time.perf_counter()
        if not wait_until(lambda: all(_local_count(base / n) >= assets for n in "ab"), timeout, interval=0.5):
            raise BenchError(f"the agents did not journal their stores in {timeout} s")
        catch_up_s = time.perf_counter() - caught_up
        (base / "meet").mkdir()
        shutil.copy(base / "b" / "ticket.json", base / "meet" / "ticket.json")
        if not wait_until(lambda: all(_reconciled(base / n) for n in "ab"), timeout, interval=0.2):
            raise BenchError(f"no reconciliation journaled on both sides within {timeout} s")
        results = {n: _reconciled(base / n) for n in "ab"}
        begin = min(
            int(journal_rows(base / n, "SELECT min(time_ms) FROM events WHERE kind='peer_authenticated'")[0][0])
            for n in "ab"
        )
        end = max(r["time_ms"] for r in results.values() if r)
        a, b = results["a"], results["b"]
        assert a is not None and b is not None
        if len(a["lacks"]) != half or len(a["extra"]) != half:
            raise BenchError(f"A found {len(a['lacks'])} lacking and {len(a['extra'])} extra, expected {half} each")
        rss = {n: agents[n].rss_bytes() for n in agents}
        rss_settled, rss_peak = settled_rss(agents)
        # a restart of A beside its million assets: from launch until it is in service (state loaded,
        # endpoint bound, ready file written), then its RSS once the start is behind it
        agents["a"].stop(timeout=60)
        restarted = time.perf_counter()
        agents["a"] = start_agent(base / "a", "a", timeout=120, log_level="INFO")
        restart_s = time.perf_counter() - restarted
        time.sleep(RESTART_SETTLE_S)
        rss_after_restart = agents["a"].rss_bytes()
        return {
            "assets": assets,
            "diff": diff,
            "build_stores_s": round(build_s, 1),
            "agents_catch_up_s": round(catch_up_s, 1),
            "first_meeting_s": round((end - begin) / 1000, 3),
            "wire_bytes": max(a["wire_bytes"], b["wire_bytes"]),
            "messages": max(a["messages"], b["messages"]),
            "ids_named_by_the_result": len(a["lacks"]) + len(a["extra"]),
            "agent_rss_mb": {n: round(v / 1e6, 1) for n, v in rss.items()},  # as both journaled the meeting
            "agent_rss_mb_settled": {n: round(v / 1e6, 1) for n, v in rss_settled.items()},
            "agent_rss_mb_peak": {n: round(v / 1e6, 1) for n, v in rss_peak.items()},
            "restart_s": round(restart_s, 2),
            "agent_a_rss_mb_after_restart": round(rss_after_restart / 1e6, 1),
        }
    finally:
        for agent in agents.values():
            agent.stop(timeout=60)
        for store in stores.values():
            store.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--diff", type=int, default=None, help="one case with this difference (default: both)")
    parser.add_argument("--quick", action="store_true", help="100,000 assets")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("CANSYNC_BENCH_TMP", "/dev/shm")))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    require_isolated()
    assets = 100_000 if args.quick else args.assets
    cases = [("differ", 1000), ("identical", 0)] if args.diff is None else [("custom", args.diff)]
    rows, results = [], []
    for label, diff in cases:
        base = Path(args.dir) / f"cansync-reconcile-{os.getpid()}-{label}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        try:
            result = meet(base, assets, diff, args.timeout)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        aim_s, aim_bytes = AIMS.get(label, (float("nan"), float("nan")))
        result |= {"case": label, "aim_s": aim_s, "aim_wire_bytes": aim_bytes}
        result["ratio_s"] = round(result["first_meeting_s"] / aim_s, 3) if aim_s == aim_s else None
        result["ratio_bytes"] = round(result["wire_bytes"] / aim_bytes, 3) if aim_bytes == aim_bytes else None
        results.append(result)
        rows.append([
            label, assets, diff, result["first_meeting_s"], result["wire_bytes"], result["messages"],
            result["ratio_s"], result["ratio_bytes"], result["agents_catch_up_s"],
            max(result["agent_rss_mb"].values()), max(result["agent_rss_mb_settled"].values()),
            max(result["agent_rss_mb_peak"].values()), result["restart_s"], result["agent_a_rss_mb_after_restart"],
        ])  # fmt: skip
    print_table(
        "first meeting of two stores (seconds and frame bytes until both know the difference)",
        ["case", "assets", "diff", "s", "wire B", "msgs", "s/aim", "B/aim", "catch-up s", "RSS MB", "settled",
         "peak", "restart s", "RSS MB after"],
        rows,
    )  # fmt: skip
    worst_rss = max(max(r["agent_rss_mb_settled"].values()) for r in results)
    worst_peak = max(max(r["agent_rss_mb_peak"].values()) for r in results)
    worst_restart = max(r["restart_s"] for r in results)
    print(f"  agent with {assets} assets, settled after the meeting: RSS {worst_rss} MB (aim {AIM_RSS_MB:.0f}: "
          f"x{worst_rss / AIM_RSS_MB:.2f}), peak {worst_peak} MB (x{worst_peak / AIM_RSS_MB:.2f}); "
          f"restart {worst_restart} s (aim {AIM_RESTART_S}: x{worst_restart / AIM_RESTART_S:.2f})")  # fmt: skip
    write_results("reconcile", {"cases": results, "load_avg": load_avg()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
