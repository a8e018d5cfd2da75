"""Raw iroh stream throughput on loopback between two processes, with and without the fast-write patch.

Run inside the loopback-only namespace:
    bash tests/isolate.sh .venv/bin/python bench/iroh_raw_bench.py [--size-mib 256] [--runs 3]

Both peers are subprocesses of this script: a receiver binds, writes its address to a temporary
ticket file, and the sender dials it. "uni" sends SIZE bytes one way on one uni-stream; "bidir" sends
SIZE bytes each way at once. The clock runs at the sender from its first byte until it has the
receiver's acknowledgement (and, for bidir, all of the receiver's bytes). Prints a table and writes
bench/results/iroh_raw.json.

Other benchmarks can measure the same limit in their own run:
    from iroh_raw_bench import measure_raw_throughput   # with bench/ on sys.path
    mb_s = measure_raw_throughput(256 * 2**20, 2**20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "iroh_raw.json"
ALPN = b"cansync-bench/1"


class BenchError(RuntimeError):
    pass


# --- the two peer processes ---------------------------------------------------------------------------


async def _bind(fastwrite_on: bool):  # type: ignore[no-untyped-def]
    import iroh
    from iroh.iroh_ffi import uniffi_set_event_loop

    from cansync.net import fastwrite

    uniffi_set_event_loop(asyncio.get_running_loop())  # type: ignore[arg-type]
    if fastwrite_on:
        status = fastwrite.install()
        if not fastwrite.is_installed():
            raise BenchError(f"fast-write patch could not be installed: {status.value}")
    else:
        fastwrite.uninstall()
        if fastwrite.is_installed():
            raise BenchError("fast-write patch still installed")
    return await iroh.Endpoint.bind(
        iroh.EndpointOptions(
            preset=iroh.preset_minimal(),
            relay_mode=iroh.RelayMode.disabled(),
            bind_addr="127.0.0.1:0",
            secret_key=secrets.token_bytes(32),
            alpns=[ALPN],
        )
    )


async def _send(conn, size: int, chunk: int) -> None:  # type: ignore[no-untyped-def]
    stream = await conn.open_uni()
    block = os.urandom(chunk)
    sent = 0
    while sent < size:
        piece = block if size - sent >= chunk else block[: size - sent]
        await stream.write_all(piece)
        sent += len(piece)
    await stream.finish()


async def _receive(conn, size: int, chunk: int) -> int:  # type: ignore[no-untyped-def]
    stream = await conn.accept_uni()
    got = 0
    while True:
        data = await stream.read(max(chunk, MiB))
        if not data:
            break
        got += len(data)
    if got != size:
        raise BenchError(f"received {got} bytes, expected {size}")
    return got


async def _run_receiver(ticket_file: Path, mode: str, size: int, chunk: int, fastwrite_on: bool) -> None:
    from cansync.net.address import EndpointAddress
    from cansync.net.tickets import write_ticket_file

    endpoint = await _bind(fastwrite_on)
    write_ticket_file(ticket_file, EndpointAddress.from_iroh(endpoint.addr()))
    incoming = await asyncio.wait_for(endpoint.accept_next(), 60)
    conn = await (await incoming.accept()).connect()
    control = await conn.accept_bi()
    await control.recv().read_exact(1)  # "go"
    jobs: list[Coroutine[Any, Any, object]] = [_receive(conn, size, chunk)]
    if mode == "bidir":
        jobs.append(_send(conn, size, chunk))
    results = await asyncio.gather(*jobs)
    await control.send().write_all(struct.pack(">Q", results[0]))
    await control.send().finish()
    await asyncio.wait_for(conn.closed(), 60)
    await endpoint.close()


async def _run_sender(ticket_file: Path, mode: str, size: int, chunk: int, fastwrite_on: bool) -> None:
    from cansync.net.tickets import read_ticket_file

    endpoint = await _bind(fastwrite_on)
    deadline = time.monotonic() + 60
    while not ticket_file.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"receiver never wrote {ticket_file}")
        await asyncio.sleep(0.02)
    address = read_ticket_file(ticket_file)
    conn = await asyncio.wait_for(endpoint.connect(address.to_iroh(), ALPN), 10)
    control = await conn.open_bi()
    started = time.perf_counter()
    await control.send().write_all(b"g")
    jobs: list[Coroutine[Any, Any, object]] = [_send(conn, size, chunk)]
    if mode == "bidir":
        jobs.append(_receive(conn, size, chunk))
    await asyncio.gather(*jobs)
    (acked,) = struct.unpack(">Q", await control.recv().read_exact(8))
    elapsed = time.perf_counter() - started
    if acked != size:
        raise BenchError(f"receiver acknowledged {acked} bytes, expected {size}")
    moved = size * (2 if mode == "bidir" else 1)
    print(json.dumps({"bytes": moved, "seconds": elapsed, "mb_s": moved / elapsed / 1e6}), flush=True)
    conn.close(0, b"done")
    await endpoint.close()


# --- orchestration ------------------------------------------------------------------------------------


def _peer_command(role: str, ticket: Path, mode: str, size: int, chunk: int, fastwrite_on: bool) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peer", role, "--ticket-file", str(ticket)]
    cmd += ["--mode", mode, "--size", str(size), "--chunk", str(chunk)]
    return cmd + ([] if fastwrite_on else ["--no-fastwrite"])


def measure_raw_throughput(
    size_bytes: int, chunk: int = MiB, *, bidirectional: bool = False, fastwrite: bool = True, timeout: float = 600
) -> float:
    """MB/s (10^6 bytes/s, both directions counted for bidirectional) between two fresh processes.

    Blocking: it runs both peers as subprocesses; from async code call it via asyncio.to_thread.
    Must run where the iroh endpoints may bind (tests/isolate.sh for a loopback-only namespace).
    """
    mode = "bidir" if bidirectional else "uni"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="iroh-bench-") as tmp:
        ticket = Path(tmp) / "receiver.json"
        receiver = subprocess.Popen(
            _peer_command("receiver", ticket, mode, size_bytes, chunk, fastwrite),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            sender = subprocess.run(
                _peer_command("sender", ticket, mode, size_bytes, chunk, fastwrite),
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            receiver_err = receiver.communicate(timeout=60)[1]
        finally:
            if receiver.poll() is None:
                receiver.kill()
                receiver.wait()
    if sender.returncode != 0 or receiver.returncode != 0:
        raise BenchError(
            f"bench peers failed (sender {sender.returncode}, receiver {receiver.returncode}):\n"
            f"{sender.stderr[-2000:]}\n{receiver_err[-2000:]}"
        )
    return float(json.loads(sender.stdout.strip().splitlines()[-1])["mb_s"])


def _run_table(size_mib: int, unpatched_mib: int, chunk: int, runs: int) -> dict[str, object]:
    load_before = os.getloadavg()[0]  # other work on the machine skews these figures: record it
    rows = []
    for fastwrite_on, size, repeats in ((True, size_mib, runs), (False, unpatched_mib, 1)):
        for bidirectional in (False, True):
            per_direction = size * MiB // (2 if bidirectional else 1)  # same total bytes either way
            figures = [
                measure_raw_throughput(per_direction, chunk, bidirectional=bidirectional, fastwrite=fastwrite_on)
                for _ in range(repeats)
            ]
            rows.append(
                {
                    "mode": "both directions" if bidirectional else "one stream",
                    "fastwrite": fastwrite_on,
                    "bytes_per_direction": per_direction,
                    "runs_mb_s": [round(f, 1) for f in figures],
                    "median_mb_s": round(statistics.median(figures), 1),
                }
            )
            print(
                f"  {rows[-1]['mode']:<16} fastwrite={'on ' if fastwrite_on else 'off'} "
                f"{per_direction // MiB:>4} MiB/dir  {rows[-1]['median_mb_s']:>7} MB/s  runs={rows[-1]['runs_mb_s']}",
                flush=True,
            )
    ratios = {}
    for mode in ("one stream", "both directions"):
        on = next(r for r in rows if r["mode"] == mode and r["fastwrite"])
        off = next(r for r in rows if r["mode"] == mode and not r["fastwrite"])
        ratios[mode] = round(float(on["median_mb_s"]) / float(off["median_mb_s"]), 1)  # type: ignore[arg-type]
    return {
        "bench": "iroh_raw",
        "what": "raw iroh uni-stream throughput between two processes on loopback (MB = 10^6 bytes; "
        "both directions: total bytes moved both ways / time)",
        "chunk_bytes": chunk,
        "rows": rows,
        "speedup_fastwrite": ratios,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "iroh": _iroh_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _iroh_version() -> str | None:
    from cansync.net.fastwrite import iroh_version

    return iroh_version()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=256, help="bytes moved per patched run (MiB)")
    parser.add_argument("--unpatched-mib", type=int, default=64, help="bytes moved per unpatched run (MiB)")
    parser.add_argument("--chunk", type=int, default=MiB, help="bytes per write_all call")
    parser.add_argument("--runs", type=int, default=3, help="repeats of each patched measurement")
    parser.add_argument("--peer", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    parser.add_argument("--ticket-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("uni", "bidir"), default="uni", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-fastwrite", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        run = _run_sender if args.peer == "sender" else _run_receiver
        asyncio.run(run(args.ticket_file, args.mode, args.size, args.chunk, not args.no_fastwrite))
        return 0
    print(f"iroh raw stream throughput, two processes, loopback, chunk {args.chunk} B:", flush=True)
    result = _run_table(args.size_mib, args.unpatched_mib, args.chunk, args.runs)
    for mode, ratio in result["speedup_fastwrite"].items():  # type: ignore[attr-defined]
        print(f"  fast-write speedup, {mode}: x{ratio}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
