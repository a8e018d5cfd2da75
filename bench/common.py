"""Shared setup for the cansync benchmarks: real stores, real agents, fast seeding, counters, tables.

Every bench runs real `cansync store serve` and `cansync run` processes on 127.0.0.1 and must run
inside tests/isolate.sh (a network namespace with only loopback up): `require_isolated()` refuses
anywhere else, since iroh endpoints probe every interface at bind.

Seeding goes through /sync/push (the CanClient), many requests at once: it is the fastest way into
a store and keeps an explicit timestamp. Content is deterministic per seed and never built whole for
large assets: `StreamedContent` produces it chunk by chunk (twice: once to hash, once to push).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
for _path in (str(ROOT), str(BENCH_DIR)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from cansync.can.client import CanClient  # noqa: E402
from cansync.wire.pb import can_sync_pb2  # noqa: E402
from tests.helpers.agent_process import AgentProcess, start_agent, write_agent_config  # noqa: E402
from tests.helpers.assets import store_digests  # noqa: E402
from tests.helpers.store_process import StoreProcess, start_store_process  # noqa: E402
from tests.helpers.store_process import wait_until as wait_until  # noqa: E402  (re-exported for the benches)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PASSPHRASE = "bench passphrase: correct horse battery staple"
SYNC_KEY = "bench-sync-key"
BASE_TIMESTAMP_MS = 1_700_000_000_000


class BenchError(RuntimeError):
    """A benchmark could not run or its result would be meaningless (it says why)."""


# ---------------------------------------------------------------- environment


def require_isolated() -> None:
    """Refuse to run outside a loopback-only namespace (tests/isolate.sh)."""
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    if interfaces != ["lo"]:
        raise BenchError(
            f"network interfaces {interfaces}: run benches inside the loopback-only namespace, e.g. "
            f"`bash tests/isolate.sh .venv/bin/python {sys.argv[0]}`"
        )


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1),
        "platform": platform.platform(),
    }


def lo_counters() -> dict[str, int]:
    """Bytes and packets through `lo` (both directions counted once: on lo every packet is rx and tx)."""
    for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
        name, rest = line.split(":", 1)
        if name.strip() == "lo":
            fields = [int(x) for x in rest.split()]
            return {"bytes": fields[0], "packets": fields[1]}
    raise BenchError("no lo interface in /proc/net/dev")


def udp_datagrams() -> int:
    """UDP datagrams received in this namespace (QUIC only: nothing else here speaks UDP)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("InDatagrams")])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def bench_workdir(name: str, keep: bool = False) -> Path:
    """A fresh directory for one run's stores and agents (under $CANSYNC_BENCH_TMP or /tmp)."""
    base = Path(os.environ.get("CANSYNC_BENCH_TMP", tempfile.gettempdir()))
    return Path(tempfile.mkdtemp(prefix=f"cansync-bench-{name}-", dir=base))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- content


def mixed_sizes(count: int = 102, scale: float = 1.0) -> list[int]:
    """The issue's mix: 1 KiB to 64 MiB, a few large and many small (about 124 MiB at scale 1)."""
    large = [64 * MiB, 16 * MiB, 16 * MiB, 4 * MiB, 4 * MiB, 4 * MiB, 4 * MiB]
    large = [max(KiB, int(n * scale)) for n in large]
    small = [KiB * (1 + (i * 37) % 256) for i in range(count - len(large))]
    return large + small


def small_sizes(count: int) -> list[int]:
    """`count` small assets, 1 KiB to 16 KiB."""
    return [KiB * (1 + (i * 7) % 16) for i in range(count)]


class StreamedContent:
    """Deterministic, incompressible-enough content produced chunk by chunk: never held whole.

    Chunk i is 8 bytes of (seed, i) followed by a per-seed random block, so distinct seeds and
    offsets give distinct bytes at the cost of one small allocation per chunk."""

    def __init__(self, seed: int, size: int, chunk: int = MiB) -> None:
        self.seed, self.size, self.chunk = seed, size, chunk
        self._block = random.Random(seed).randbytes(min(chunk, max(size, 1)))

    def chunks(self) -> Iterator[bytes]:
        index = 0
        for start in range(0, self.size, self.chunk):
            length = min(self.chunk, self.size - start)
            head = struct.pack(">II", self.seed & 0xFFFFFFFF, index)
            yield (head + self._block[len(head) :])[:length] if length > len(head) else head[:length]
            index += 1

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.chunks():
            digest.update(piece)
        return digest.hexdigest()

    def whole(self) -> bytes:
        """For small assets only."""
        return b"".join(self.chunks())


@dataclass
class SeedAsset:
    seed: int
    size: int
    name: str
    timestamp: int = 0
    hash: str = ""


async def _push_one(client: CanClient, asset: SeedAsset) -> str:
    content = StreamedContent(asset.seed, asset.size)
    if asset.size <= 4 * MiB:
        data = content.whole()
        asset.hash = hashlib.sha256(data).hexdigest()

        async def body() -> AsyncIterator[bytes]:
            yield data

    else:
        asset.hash = await asyncio.to_thread(content.sha256)

        async def body() -> AsyncIterator[bytes]:
            for piece in content.chunks():
                yield piece

    meta = can_sync_pb2.AssetMeta(
        hash=asset.hash, size=asset.size, timestamp=asset.timestamp or BASE_TIMESTAMP_MS + asset.seed,
        human_file_name=asset.name, extension="bin", mime_type="application/octet-stream",
    )  # fmt: skip
    await client.push(meta, body())
    return asset.hash


async def _push_all(url: str, assets: Sequence[SeedAsset], concurrency: int) -> list[str]:
    gate = asyncio.Semaphore(concurrency)
    async with CanClient(url, SYNC_KEY, timeout=300) as client:

        async def one(asset: SeedAsset) -> str:
            async with gate:
                return await _push_one(client, asset)

        return list(await asyncio.gather(*(one(a) for a in assets)))


def push_assets(url: str, assets: Sequence[SeedAsset], concurrency: int = 16) -> list[str]:
    """Seed a store through /sync/push, `concurrency` requests at once; returns the hashes in order."""
    return asyncio.run(_push_all(url, assets, concurrency))


def seed_assets(prefix: str, seed_base: int, sizes: Iterable[int]) -> list[SeedAsset]:
    return [SeedAsset(seed_base + i, n, f"{prefix}{i}.bin") for i, n in enumerate(sizes)]


# ---------------------------------------------------------------- stores and agents


@dataclass
class Node:
    name: str
    home: Path
    store: StoreProcess
    agent: AgentProcess | None = None

    def start_agent(self, connect_to: Node | None = None, log_level: str = "INFO", **settings: Any) -> AgentProcess:
        """The agent as a user runs it: at the default log level (DEBUG writes a line per SQL statement and
        HTTP event, which costs a busy agent measurable CPU); pass log_level="DEBUG" to look inside."""
        if connect_to is not None:
            settings["connect_ticket_file"] = connect_to.home / "ticket.json"
        write_agent_config(
            self.home, sync_passphrase=PASSPHRASE, can_service_url=self.store.url, sync_api_key=SYNC_KEY, **settings
        )
        self.agent = start_agent(self.home, self.name, timeout=120, log_level=log_level)
        return self.agent

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop(timeout=60)

    def digests(self) -> set[str]:
        return set(store_digests(self.store.url, SYNC_KEY))


@dataclass
class Cluster:
    base: Path
    nodes: list[Node] = field(default_factory=list)

    def add(self, name: str) -> Node:
        home = self.base / name
        node = Node(name, home, start_store_process(home / "store", sync_key=SYNC_KEY))
        self.nodes.append(node)
        return node

    def close(self) -> None:
        """Every agent at once, then every store."""
        with ThreadPoolExecutor(max(1, len(self.nodes))) as pool:
            list(pool.map(lambda node: node.agent.stop(timeout=30) if node.agent is not None else None, self.nodes))
            list(pool.map(lambda node: node.store.stop(), self.nodes))

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- the journal, read the way the e2e tests do


def journal_rows(home: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    path = home / "data" / "journal.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # the agent has not made its tables yet


def journal_count(home: Path, kind: str, after_seq: int = 0) -> int:
    rows = journal_rows(home, "SELECT count(*) FROM events WHERE kind=? AND seq>?", kind, after_seq)
    return int(rows[0][0]) if rows else 0


def first_event_ms(home: Path, kind: str, after_seq: int = 0) -> int | None:
    rows = journal_rows(home, "SELECT min(time_ms) FROM events WHERE kind=? AND seq>?", kind, after_seq)
    return rows[0][0] if rows else None


def last_event_ms(home: Path, kind: str, after_seq: int = 0) -> int | None:
    rows = journal_rows(home, "SELECT max(time_ms) FROM events WHERE kind=? AND seq>?", kind, after_seq)
    return rows[0][0] if rows else None


def last_seq(home: Path) -> int:
    rows = journal_rows(home, "SELECT max(seq) FROM events")
    return int(rows[0][0] or 0) if rows else 0


# ---------------------------------------------------------------- output


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if index else c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  " + "  ".join("-" * w for w in widths))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def write_results(name: str, result: dict[str, Any], command: Sequence[str] | None = None) -> Path:
    result = {
        "bench": name,
        **result,
        "command": " ".join(command if command is not None else [Path(sys.executable).name, *sys.argv]),
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
