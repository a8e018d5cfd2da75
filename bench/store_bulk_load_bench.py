"""Building two big stores for the reconciliation benches, and what serving them costs.

    bash tests/isolate.sh .venv/bin/python bench/store_bulk_load_bench.py [--assets 1000000] [--diff 1000]
        [--dir /dev/shm] [--quick]

Store A gets assets 0 .. N-1 and store B assets D/2 .. N+D/2-1 (so D/2 only on each side), both through
cansync.store.bulk_load (B hard-links the files it shares with A). Then each is served by a real
`cansync store serve` process: the time to READY, and the time CanClient takes to list every digest
(paged /sync/hashes) are printed. --dir picks where the stores go: a tmpfs such as /dev/shm keeps a
million small files off the disk (about 4 GB of memory per store there). Writes
bench/results/store_bulk_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SYNC_KEY, BenchError, load_avg, print_table, require_isolated, write_results  # noqa: E402

from cansync.can.client import CanClient  # noqa: E402
from cansync.store.bulk_load import bulk_load  # noqa: E402
from tests.helpers.store_process import start_store_process  # noqa: E402


def serve_and_list(root: Path, expected: int) -> dict[str, Any]:
    started = time.perf_counter()
    store = start_store_process(root, sync_key=SYNC_KEY, ready_timeout=300)
    ready_s = time.perf_counter() - started
    try:

        async def listing() -> tuple[float, int, int]:
            async with CanClient(store.url, SYNC_KEY, timeout=600) as client:
                began = time.perf_counter()
                pages = digests = 0
                async for page in client.hashes_pages():
                    pages += 1
                    digests += len(page.assets)
                return time.perf_counter() - began, pages, digests

        list_s, pages, digests = asyncio.run(listing())
        rss = store.rss_bytes()
    finally:
        store.stop(timeout=120)
    if digests != expected:
        raise BenchError(f"{root}: listed {digests} digests, loaded {expected}")
    return {"ready_s": round(ready_s, 2), "list_s": round(list_s, 2), "pages": pages, "rss_mb": rss // 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--diff", type=int, default=1000, help="assets only one store holds (half each side)")
    parser.add_argument("--dir", default="/dev/shm", help="where to build the stores (default: a tmpfs)")
    parser.add_argument("--quick", action="store_true", help="100,000 assets")
    args = parser.parse_args()
    if args.quick:
        args.assets = min(args.assets, 100_000)
    require_isolated()
    half = args.diff // 2
    base = Path(tempfile.mkdtemp(prefix="cansync-bench-bulk-", dir=args.dir))
    try:
        load = load_avg()
        a = bulk_load(base / "a", range(0, args.assets))
        print(f"  store A: {a.assets} assets in {a.seconds:.1f} s", flush=True)
        b = bulk_load(base / "b", range(half, args.assets + half), link_from=base / "a")
        print(f"  store B: {b.assets} assets ({b.linked} files linked from A) in {b.seconds:.1f} s", flush=True)
        served = {name: serve_and_list(base / name, args.assets) for name in ("a", "b")}
        for name, figures in served.items():
            listed = f"every digest listed in {figures['list_s']} s ({figures['pages']} pages)"
            print(f"  store {name.upper()}: READY in {figures['ready_s']} s, {listed}, RSS {figures['rss_mb']} MB")
    finally:
        removing = time.perf_counter()
        shutil.rmtree(base, ignore_errors=True)
        print(f"  removed both stores in {time.perf_counter() - removing:.1f} s", flush=True)
    rows = [
        ["A", a.assets, 0, round(a.seconds, 1), served["a"]["ready_s"], served["a"]["list_s"]],
        ["B", b.assets, b.linked, round(b.seconds, 1), served["b"]["ready_s"], served["b"]["list_s"]],
    ]
    print_table(
        f"two stores of {args.assets} assets differing in {2 * half}, built in {args.dir}",
        ["store", "assets", "linked", "load s", "ready s", "list s"],
        rows,
    )
    print(f"  both built in {a.seconds + b.seconds:.1f} s (load average before: {load})")
    write_results(
        "store_bulk_load",
        {
            "assets": args.assets,
            "diff": 2 * half,
            "dir": args.dir,
            "build_seconds": {
                "a": round(a.seconds, 2),
                "b": round(b.seconds, 2),
                "both": round(a.seconds + b.seconds, 2),
            },
            "linked_b": b.linked,
            "served": served,
            "load_avg_before": load,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
