"""Resume after kill -9: bytes sent twice when an agent dies mid-sync and restarts.

    bash tests/isolate.sh .venv/bin/python bench/resume_bench.py [--assets 4] [--asset-mib 64]
        [--points b@0.25,b@0.5,b@0.75,a@0.5] [--quick]

A holds N assets (4 x 64 MiB by default: the sender streams up to 4 at once, so several streams are
in flight); B starts, A dials it. At each point (`b@0.5`: kill -9 the receiver B once half the bytes
are checkpointed in B's journal; `a@0.5`: kill the sender A) the victim dies and is restarted, and
the run ends when B holds every asset. Each point is a fresh pair of stores.

Bytes re-sent, per asset, measured at the receiver: what had reached B's staging file before the cut
(its size on disk right after B's death, or B's last checkpoint of the cut-off stream when A died)
minus the offset the resumed transfer started at (B's journal). Bytes that were still in socket or
QUIC buffers when the process died never reached B and are not counted. The aim: at most one chunk
(1 MiB, cansync.agent.session.CHUNK_BYTES) per stream in flight. Writes bench/results/resume.json.
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
    Node,
    bench_workdir,
    journal_rows,
    load_avg,
    print_table,
    push_assets,
    remove_workdir,
    require_isolated,
    seed_assets,
    wait_until,
    write_results,
)

from cansync.agent.session import CHUNK_BYTES  # noqa: E402


def _checkpointed(home: Path) -> dict[str, int]:
    rows = journal_rows(
        home,
        "SELECT hash, max(json_extract(data,'$.offset')) FROM events WHERE kind='transfer_checkpointed' GROUP BY hash",
    )
    return {h: int(o) for h, o in rows}


def _received(home: Path) -> int:
    rows = journal_rows(home, "SELECT count(DISTINCT hash) FROM events WHERE kind='asset_received'")
    return int(rows[0][0]) if rows else 0


def _staged_sizes(node: Node) -> dict[str, int]:
    folder = node.home / "data" / "staging"
    if not folder.is_dir():
        return {}
    return {p.name.removesuffix(".part"): p.stat().st_size for p in folder.glob("*.part")}


def _starts(home: Path) -> dict[str, list[tuple[int, int]]]:
    """asset -> [(seq, offset)] of its incoming transfer starts, in order."""
    rows = journal_rows(
        home,
        "SELECT hash, seq, json_extract(data,'$.offset') FROM events WHERE kind='transfer_started' "
        "AND json_extract(data,'$.direction')='in' ORDER BY seq",
    )
    starts: dict[str, list[tuple[int, int]]] = {}
    for asset, seq, offset in rows:
        starts.setdefault(asset, []).append((int(seq), int(offset)))
    return starts


def _checkpoint_before(home: Path, asset: str, seq: int) -> int:
    rows = journal_rows(
        home,
        "SELECT max(json_extract(data,'$.offset')) FROM events WHERE kind='transfer_checkpointed' AND hash=? AND seq<?",
        asset,
        seq,
    )
    return int(rows[0][0] or 0) if rows else 0


def resume_once(
    victim: str, fraction: float, sizes: list[int], seed: int, timeout: float, keep: bool
) -> dict[str, Any]:
    base = bench_workdir("resume")
    try:
        with Cluster(base) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            hashes = push_assets(a.store.url, seed_assets("big", seed * 1000, sizes), concurrency=4)
            total = sum(sizes)
            load = load_avg()
            b.start_agent()
            a.start_agent(connect_to=b)
            target = int(total * fraction)
            if not wait_until(lambda: sum(_checkpointed(b.home).values()) >= target, timeout, interval=0.01):
                raise BenchError(f"B never checkpointed {target} bytes (logs in {base})")
            dying = b if victim == "b" else a
            assert dying.agent is not None
            dying.agent.kill9()
            killed_at = time.perf_counter()
            staged_at_kill = _staged_sizes(b) if victim == "b" else {}
            checkpoint_at_kill = _checkpointed(b.home) if victim == "b" else {}
            in_flight = sum(1 for h, n in staged_at_kill.items() if n > 0) if victim == "b" else None
            if victim == "b":
                b.start_agent()
            else:
                a.start_agent(connect_to=b)
            # B's store is the outcome: a kill between the live push's end and the journal's received mark
            # leaves an asset in the store that the journal then knows as ours, without that mark
            if not wait_until(lambda: b.digests() == set(hashes), timeout, interval=0.1):
                raise BenchError(f"B's store does not hold A's assets after the restart (logs in {base})")
            recovered_s = time.perf_counter() - killed_at
            per_asset: list[dict[str, Any]] = []
            for asset, starts in _starts(b.home).items():
                if len(starts) < 2:
                    continue  # not cut off: started once, never re-sent
                resume_seq, resume_offset = starts[-1]
                if victim == "b":
                    before = staged_at_kill.get(asset, checkpoint_at_kill.get(asset, 0))
                else:
                    before = _checkpoint_before(b.home, asset, resume_seq)
                per_asset.append(
                    {"asset": asset[:12], "reached_b": before, "resumed_at": resume_offset,
                     "resent": max(0, before - resume_offset), "starts": len(starts)}
                )  # fmt: skip
            streams_cut = len(per_asset)
            resent = sum(p["resent"] for p in per_asset)
            return {
                "victim": victim,
                "fraction": fraction,
                "total_bytes": total,
                "streams_cut": streams_cut,
                "staged_files_at_kill": in_flight,
                "resent_bytes": resent,
                "max_resent_per_stream": max((p["resent"] for p in per_asset), default=0),
                "within_one_chunk_per_stream": all(p["resent"] <= CHUNK_BYTES for p in per_asset),
                "recovery_seconds": round(recovered_s, 2),
                "received_marks": _received(b.home),
                "per_asset": per_asset,
                "load_avg": load,
            }
    finally:
        if not keep:
            remove_workdir(base)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=4, help="assets A holds")
    parser.add_argument("--asset-mib", type=int, default=64, help="size of each asset (MiB)")
    parser.add_argument("--points", default="b@0.25,b@0.5,b@0.75,a@0.5", help="victim@fraction checkpointed")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--quick", action="store_true", help="4 x 16 MiB, points b@0.5,a@0.5")
    args = parser.parse_args()
    if args.quick:
        args.asset_mib, args.points = min(args.asset_mib, 16), "b@0.5,a@0.5"
    require_isolated()
    points = []
    for item in args.points.split(","):
        victim, _, fraction = item.partition("@")
        if victim not in ("a", "b") or not fraction:
            raise SystemExit(f"--points: {item!r} is not victim@fraction (victim a or b)")
        points.append((victim, float(fraction)))
    sizes = [args.asset_mib * MiB] * args.assets
    runs = []
    for index, (victim, fraction) in enumerate(points):
        runs.append(resume_once(victim, fraction, sizes, 30 + index, args.timeout, args.keep))
        r = runs[-1]
        print(f"  kill {victim.upper()} at {fraction:.0%}: {r['streams_cut']} streams cut, "
              f"{r['resent_bytes']} B re-sent, load {r['load_avg'][0]}", flush=True)  # fmt: skip
    print_table(
        f"resume after kill -9, {args.assets} x {args.asset_mib} MiB from A to B (chunk {CHUNK_BYTES // 1024} KiB)",
        ["killed", "at", "streams cut", "re-sent B", "max/stream B", "<= 1 chunk/stream", "recovery s", "load1"],
        [[("receiver B" if r["victim"] == "b" else "sender A"), f"{r['fraction']:.0%}", r["streams_cut"],
          r["resent_bytes"], r["max_resent_per_stream"], r["within_one_chunk_per_stream"], r["recovery_seconds"],
          r["load_avg"][0]] for r in runs],
    )  # fmt: skip
    aims = {"at_most_one_chunk_per_stream": all(r["within_one_chunk_per_stream"] for r in runs)}
    print(f"  aim: at most one chunk re-sent per in-flight stream: {aims['at_most_one_chunk_per_stream']}")
    write_results("resume", {"chunk_bytes": CHUNK_BYTES, "runs": runs, "aims": aims})
    return 0


if __name__ == "__main__":
    sys.exit(main())
