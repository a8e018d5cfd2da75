"""The store's batch push: 3,000 assets of 1-16 KiB pushed one per request, or in batches of 64 and 256.

    bash tests/isolate.sh .venv/bin/python bench/store_batch_bench.py [--assets 3000] [--runs 3] [--quick]

Each case pushes the same assets into a fresh `cansync store serve` process through CanClient:
`push` one asset per /sync/push request (one at a time, and 8 at once as a seeding script would), and
`push_batch` in groups of 64 and 256 (/sync/push_batch, one request at a time). The contents are made
before the clock starts; the time is from the first request to the last answer. Afterwards the store
must list exactly the pushed assets. Writes bench/results/store_batch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    BASE_TIMESTAMP_MS,
    SYNC_KEY,
    BenchError,
    StreamedContent,
    bench_workdir,
    load_avg,
    median,
    print_table,
    remove_workdir,
    require_isolated,
    small_sizes,
    write_results,
)

from cansync.can.client import CanClient  # noqa: E402
from cansync.wire.pb import can_sync_pb2  # noqa: E402
from tests.helpers.assets import store_digests  # noqa: E402
from tests.helpers.store_process import start_store_process  # noqa: E402

Item = tuple[can_sync_pb2.AssetMeta, bytes]
CASES = [("push, 1 in flight", 1, 1), ("push, 8 in flight", 1, 8), ("push_batch 64", 64, 1), ("push_batch 256", 256, 1)]


def make_items(count: int, seed: int) -> list[Item]:
    items = []
    for i, size in enumerate(small_sizes(count)):
        data = StreamedContent(seed + i, size).whole()
        meta = can_sync_pb2.AssetMeta(
            hash=hashlib.sha256(data).hexdigest(), size=size, timestamp=BASE_TIMESTAMP_MS + i,
            human_file_name=f"s{i}.bin", extension="bin", mime_type="application/octet-stream",
        )  # fmt: skip
        items.append((meta, data))
    return items


async def _one_at_a_time(client: CanClient, items: list[Item], in_flight: int) -> int:
    gate = asyncio.Semaphore(in_flight)

    async def push(meta: can_sync_pb2.AssetMeta, data: bytes) -> None:
        async def body():  # type: ignore[no-untyped-def]
            yield data

        async with gate:
            await client.push(meta, body())

    await asyncio.gather(*(push(meta, data) for meta, data in items))
    return len(items)


async def _batched(client: CanClient, items: list[Item], size: int) -> int:
    requests = 0
    for start in range(0, len(items), size):
        results = await client.push_batch(items[start : start + size])
        if any(r.outcome != can_sync_pb2.PUSH_CREATED for r in results):
            raise BenchError(f"a batch was not stored whole: {[r.reason for r in results if r.reason][:3]}")
        requests += 1
    return requests


def run_case(items: list[Item], batch: int, in_flight: int, base: Path, name: str) -> dict[str, Any]:
    store = start_store_process(base / name, sync_key=SYNC_KEY)
    try:

        async def push_all() -> tuple[float, int]:
            async with CanClient(store.url, SYNC_KEY, timeout=300) as client:
                started = time.perf_counter()
                if batch == 1:
                    requests = await _one_at_a_time(client, items, in_flight)
                else:
                    requests = await _batched(client, items, batch)
                return time.perf_counter() - started, requests

        load = load_avg()
        seconds, requests = asyncio.run(push_all())
        held = set(store_digests(store.url, SYNC_KEY))
        if held != {meta.hash for meta, _ in items}:
            raise BenchError(f"{name}: the store holds {len(held)} assets, not the {len(items)} pushed")
    finally:
        store.stop()
        remove_workdir(base / name)
    total = sum(len(data) for _, data in items)
    return {
        "seconds": round(seconds, 3),
        "assets_per_s": round(len(items) / seconds, 1),
        "mb_per_s": round(total / seconds / 1e6, 2),
        "requests": requests,
        "load_avg": load,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="600 assets, one run")
    args = parser.parse_args()
    if args.quick:
        args.assets, args.runs = min(args.assets, 600), 1
    require_isolated()
    items = make_items(args.assets, seed=7_000_000)
    total = sum(len(data) for _, data in items)
    base = bench_workdir("store-batch")
    cases: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in CASES}
    try:
        for run in range(args.runs):
            for name, batch, in_flight in CASES:
                outcome = run_case(items, batch, in_flight, base, f"r{run}-{batch}-{in_flight}")
                cases[name].append(outcome)
                print(f"  run {run + 1} {name}: {outcome['assets_per_s']} assets/s ({outcome['seconds']} s, "
                      f"{outcome['requests']} requests, load {outcome['load_avg'][0]})", flush=True)  # fmt: skip
    finally:
        remove_workdir(base)
    summary = {
        name: {
            "median_assets_per_s": median([r["assets_per_s"] for r in runs]),
            "median_mb_per_s": median([r["mb_per_s"] for r in runs]),
            "requests": runs[0]["requests"],
        }
        for name, runs in cases.items()
    }
    one_by_one = summary["push, 1 in flight"]["median_assets_per_s"]
    rows = [
        [name, len(cases[name]), s["median_assets_per_s"], s["median_mb_per_s"], s["requests"],
         round(s["median_assets_per_s"] / one_by_one, 1)]
        for name, s in summary.items()
    ]  # fmt: skip
    print_table(
        f"pushing {args.assets} assets of 1-16 KiB ({total / 1e6:.1f} MB) into a fresh store",
        ["case", "runs", "assets/s", "MB/s", "requests", "x one-by-one"],
        rows,
    )
    write_results("store_batch", {"assets": args.assets, "content_bytes": total, "summary": summary, "runs": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
