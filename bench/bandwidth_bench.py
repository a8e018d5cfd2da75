"""Bandwidth limits held by the real transport: two iroh endpoints on loopback, 10+ s of streaming.

Run inside the loopback-only namespace:
    bash tests/isolate.sh .venv/bin/python bench/bandwidth_bench.py [--seconds 12] [--limits 2000 8000]

For each limit (KiB/s, as max_send_kbps / max_recv_kbps) and each side that holds it (the sender's
send limiter, or the receiver's receive limiter), the sender streams 4 MiB CHUNK frames (as a session
does) on 3 transfer streams at once for --seconds; the receiver counts what arrives. The achieved rate
is the bytes received over the time from the first write to the last byte; the aim is within 10% of
the limit. Prints a table and writes bench/results/bandwidth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cansync.net.bandwidth import KIB, BandwidthLimiter
from cansync.net.endpoint import PeerConnection, open_endpoint
from cansync.net.streams import FrameReader

RESULTS = Path(__file__).resolve().parent / "results" / "bandwidth.json"
CHUNK = 4 * 1024 * 1024
STREAMS = 3


async def _send(conn: PeerConnection, until: float, block: bytes) -> None:
    writer = await conn.open_transfer()
    while time.perf_counter() < until:
        await writer.write_chunk(block)
    await writer.finish()


async def _receive(reader: FrameReader, arrivals: list[float], counts: list[int]) -> None:
    while (frame := await reader.read_frame(timeout=120)) is not None:
        counts.append(len(frame[1]))
        arrivals.append(time.perf_counter())


async def measure(limit_kib: int, side: str, seconds: float) -> dict[str, Any]:
    limiter = BandwidthLimiter(limit_kib)
    sender = await open_endpoint(
        secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=[], send_limiter=limiter if side == "send" else None
    )
    receiver = await open_endpoint(
        secrets.token_bytes(32), bind_addr="127.0.0.1:0", relays=[], recv_limiter=limiter if side == "recv" else None
    )
    try:
        outgoing, incoming = await asyncio.gather(sender.connect(receiver.addr()), receiver.accept())
        assert incoming is not None
        block = os.urandom(CHUNK)
        arrivals: list[float] = []
        counts: list[int] = []
        started = time.perf_counter()
        senders = [asyncio.create_task(_send(outgoing, started + seconds, block)) for _ in range(STREAMS)]
        readers = []
        for _ in range(STREAMS):
            reader = await incoming.accept_transfer(timeout=30)
            assert reader is not None
            readers.append(asyncio.create_task(_receive(reader, arrivals, counts)))
        await asyncio.gather(*senders, *readers)
        elapsed = max(arrivals) - started
        moved = sum(counts)
    finally:
        await sender.close()
        await receiver.close()
    rate = moved / elapsed
    return {
        "limit_kib_s": limit_kib,
        "limited_side": side,
        "streams": STREAMS,
        "seconds": round(elapsed, 3),
        "bytes": moved,
        "kib_s": round(rate / KIB, 1),
        "ratio": round(rate / (limit_kib * KIB), 4),
    }


async def main_async(limits: list[int], seconds: float) -> list[dict[str, Any]]:
    from iroh.iroh_ffi import uniffi_set_event_loop

    uniffi_set_event_loop(asyncio.get_running_loop())  # type: ignore[arg-type]
    return [await measure(limit, side, seconds) for limit in limits for side in ("send", "recv")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="streaming time per run (default 12)")
    parser.add_argument("--limits", type=int, nargs="+", default=[2000, 8000], help="KiB/s limits to try")
    parser.add_argument("--quick", action="store_true", help="one 4 s run per limit (a smoke run)")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else args.seconds
    runs = asyncio.run(main_async(args.limits, seconds))
    print(f"{'limit KiB/s':>12} {'side':>5} {'seconds':>8} {'MiB':>8} {'KiB/s':>9} {'ratio':>7}")
    for run in runs:
        print(
            f"{run['limit_kib_s']:>12} {run['limited_side']:>5} {run['seconds']:>8.2f} "
            f"{run['bytes'] / 2**20:>8.1f} {run['kib_s']:>9.1f} {run['ratio']:>7.3f}"
        )
    worst = max(abs(run["ratio"] - 1) for run in runs)
    print(f"worst deviation from the limit: {100 * worst:.1f}% (aim: within 10% over 10 s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "bandwidth",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "aim": "achieved rate within 10% of the limit over 10 s",
                "worst_deviation": round(worst, 4),
                "runs": runs,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
