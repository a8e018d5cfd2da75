"""How fast `cansync journal inspect --hash H` answers on a journal of 5,000,000 events (the aim: under 100 ms).

    bash tests/isolate.sh .venv/bin/python bench/inspect_bench.py [--events 5000000] [--runs 5]
        [--cache-dir bench/cache] [--rebuild] [--compare-rev main]

The journal holds bench/journal_bench.py's realistic mix (`generate()`: 20 peers sending us assets, each a
request, start, checkpoint, verified completion and received mark; now and then a local asset and a digest
advertisement), with every peer id and asset hash replaced by the sha256 of generate()'s value: its own are
mostly zeros (f"{n:064x}"), so no 8-character prefix of them is unique, where real digests spread evenly.

It is built whole, but fast: the schema by the real migrations (Journal.open on a new file), then the rows
by sqlite3 bulk inserts, with the events indexes dropped first and remade afterwards from the SQL the
migration wrote for them. Every event has its canonical data, a time that never goes back, and its digest
chained to the one before; the chain head is set: the file is a journal `cansync journal verify` passes,
not only one inspect accepts. 5M events take a few minutes to build and about 3 GB; the file is kept in
--cache-dir (git-ignored) with a note of what was built, and reused while the note matches.

Each case is the wall time of a whole `cansync journal inspect -c config.yaml --hash H [--json]` process,
start to exit (what a person waits for), median of --runs after one warm-up run (which also brings the
pages it reads into the page cache), for an exact hash and for its first 8 characters. The processes run
with cansync's bytecode cached, as an installed cansync has it (pip compiles at install): this machine's
environment sets PYTHONDONTWRITEBYTECODE=1, which would have every run compile cansync's modules again,
so the bench removes it from theirs. Beside the wall time, the CPU time the process spent (user + system):
the machine is shared, and while others run the wall time also counts the waits for a core. For scale:
`python -c pass` and `cansync --version` (every command's parser). Then the steps
of one inspect inside a process (imports, config, open, prefix, rows, printing), median of --runs.
--compare-rev REV also times REV's inspect (its cansync/ and alembic/ from git, on this interpreter).
Prints a table and writes bench/results/inspect.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchError, load_avg, print_table, require_isolated, write_results  # noqa: E402
from journal_bench import generate  # noqa: E402

from cansync.core.events import Event  # noqa: E402
from cansync.journal.chain import GENESIS_DIGEST, canonical_json, event_digest  # noqa: E402
from cansync.journal.recorder import Journal  # noqa: E402
from cansync.journal.sqlite_file import head_revision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(__file__).resolve().parent / "cache"
CANSYNC = str(Path(sys.executable).parent / "cansync")
AIM_MS = 100.0
BUILD_FORMAT = 1  # bump when the built journal changes, so a cached one is rebuilt
START_MS = 1_790_000_000_000
EVENTS_PER_TICK, TICK_MS = 50, 100  # time moves 100 ms every 50 events: about 2.8 h for 5M
INSERT_CHUNK = 100_000
PREFIX_LENGTH = 8


# -- the journal ---------------------------------------------------------------------------------------


def real_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def realistic_rows(count: int) -> Iterator[tuple[Any, ...]]:
    """(seq, time_ms, kind, peer, hash, data, prev_digest, digest) of generate()'s events, ids made real."""
    peers: dict[str, str] = {}
    last_fake, last_real = "", ""
    prev = bytes.fromhex(GENESIS_DIGEST)
    for seq, event in enumerate(generate(count), start=1):
        peer = event.peer
        if peer is not None:
            peer = peers.get(peer) or peers.setdefault(peer, real_digest(peer))
        hash_ = event.hash
        if hash_ is not None:
            if hash_ != last_fake:  # an asset's events come one after the other
                last_fake, last_real = hash_, real_digest(hash_)
            hash_ = last_real
        data = _with_real_digests(event)
        time_ms = START_MS + (seq // EVENTS_PER_TICK) * TICK_MS
        kind = str(event.kind)
        data_json = canonical_json(data)
        digest = event_digest(prev, seq, time_ms, kind, peer, hash_, data_json)
        yield (seq, time_ms, kind, peer, hash_, data_json, prev.hex(), digest.hex())
        prev = digest


def _with_real_digests(event: Event) -> dict[str, Any]:
    data = dict(event.data)
    if "hashes" in data:
        data["hashes"] = [real_digest(h) for h in data["hashes"]]
    return data


def build_journal(path: Path, count: int) -> float:
    """Write a journal of `count` events at `path` (see the module's docstring); returns the seconds taken."""
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)

    async def make_schema() -> None:
        await (await Journal.open(path)).close()  # the real migrations, as the agent runs them

    asyncio.run(make_schema())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # a bench file: a crash while building means build again
        conn.execute("PRAGMA cache_size = -262144")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"
        ).fetchall()
        if {name for name, _ in indexes} != {"ix_events_peer_seq", "ix_events_hash_seq", "ix_events_kind_seq",
                                              "ix_events_time_ms"}:  # fmt: skip
            raise BenchError(f"{path}: the migrations made indexes {indexes}; update the bench")
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        rows = realistic_rows(count)
        last: tuple[Any, ...] | None = None
        while chunk := [row for _, row in zip(range(INSERT_CHUNK), rows, strict=False)]:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk)
            conn.execute("COMMIT")
            last = chunk[-1]
            if last[0] % 1_000_000 == 0:
                print(f"  {last[0]:,} events in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"  making the indexes again ({time.perf_counter() - started:.0f} s so far)", flush=True)
        conn.execute("BEGIN")
        for _, sql in indexes:
            conn.execute(sql)
        if last is not None:
            conn.execute("UPDATE chain_head SET seq = ?, digest = ? WHERE id = 1", (last[0], last[7]))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


def cached_journal(cache_dir: Path, count: int, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The journal of `count` events under cache_dir, built unless a matching one is there."""
    home = cache_dir / f"inspect-{count}"
    path, note_path = home / "data" / "journal.db", home / "built.json"
    wanted = {"events": count, "format": BUILD_FORMAT, "revision": head_revision()}
    if not rebuild and path.is_file() and note_path.is_file():
        note = json.loads(note_path.read_text())
        if {k: note.get(k) for k in wanted} == wanted:
            print(f"journal: {path} ({path.stat().st_size / 1e9:.2f} GB, built {note['built']} in {note['build_s']} s)")
            return home, note
    print(f"building a journal of {count:,} events at {path} ...", flush=True)
    note_path.unlink(missing_ok=True)
    seconds = build_journal(path, count)
    note = {**wanted, "build_s": round(seconds, 1), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    note_path.write_text(json.dumps(note, indent=2) + "\n")
    print(f"built in {seconds:.0f} s: {path.stat().st_size / 1e9:.2f} GB")
    return home, note


def write_config(home: Path) -> Path:
    """An agent's config.yaml naming the journal's data_dir, as a person passes it with -c."""
    config = home / "config.yaml"
    config.write_text(
        f"data_dir: {home / 'data'}\n"
        "sync_passphrase: bench passphrase, correct horse battery staple\n"
        "can_service_url: http://127.0.0.1:3210\n"
        "sync_api_key: bench-sync-key\n"
        "web_addr: ''\n"
    )
    return config


def probe_hash(path: Path, count: int) -> str:
    """A received asset's hash from the middle of the journal whose 8-character prefix is unique."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        for seq in range(count // 2, count):
            row = conn.execute("SELECT hash FROM events WHERE seq = ? AND kind = 'asset_received'", (seq,)).fetchone()
            if row is None:
                continue
            prefix = row[0][:PREFIX_LENGTH]
            sharing = conn.execute(
                "SELECT count(DISTINCT hash) FROM events WHERE hash >= ? AND hash < ?", (prefix, prefix + "g")
            ).fetchone()[0]
            if sharing == 1:
                return str(row[0])
    finally:
        conn.close()
    raise BenchError(f"{path}: no received asset with a unique {PREFIX_LENGTH}-character prefix after the middle")


# -- timing --------------------------------------------------------------------------------------------


def user_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an installed cansync runs: its bytecode cached
    return env


def time_command(
    argv: Sequence[str], runs: int, env: dict[str, str], expect_rows: int | None, cwd: Path | None = None
) -> dict[str, Any]:
    """Wall ms of the whole process, `runs` times after a warm-up, and its CPU ms (user + system: what the
    process itself spent, whatever else the machine runs); checks it succeeded and what it printed."""
    times, cpu_times = [], []
    for index in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
        elapsed = (time.perf_counter() - started) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        if expect_rows is not None:
            lines = result.stdout.splitlines()
            rows = len(lines) if "--json" in argv else len(lines) - 1
            if rows != expect_rows:
                raise BenchError(f"{' '.join(argv)} printed {rows} rows, expected {expect_rows}")
        if index:  # the first run warms the page cache and writes the bytecode
            times.append(round(elapsed, 1))
            cpu_times.append(round(cpu, 1))
    return {
        "median_ms": round(statistics.median(times), 1),
        "min_ms": min(times),
        "cpu_median_ms": round(statistics.median(cpu_times), 1),
        "runs_ms": times,
        "runs_cpu_ms": cpu_times,
    }


_STEPS = r"""
import io, json, sys, time
started = time.perf_counter()
from cansync.cli import build_parser
parser = build_parser("journal")
from cansync.journal.reader import JournalReader
from cansync.journal.inspect import inspect_rows, resolve_prefix
from cansync.cli import journal_cmd
imported = time.perf_counter()
args = parser.parse_args(["journal", "inspect", "-c", sys.argv[1], "--hash", sys.argv[2]])
path = journal_cmd.config_from_args(args).journal_path
configured = time.perf_counter()
reader = JournalReader.open(path)
opened = time.perf_counter()
found = resolve_prefix(reader, "hash", args.hash)
resolved = time.perf_counter()
rows = list(inspect_rows(reader, hash=found))
read = time.perf_counter()
out = io.StringIO()
journal_cmd._write_header(out)
for row in rows:
    journal_cmd._write_row(out, row)
printed = time.perf_counter()
reader.close()
ms = lambda a, b: (b - a) * 1000
print(json.dumps({"imports and parser": ms(started, imported), "config": ms(imported, configured),
                  "open and check": ms(configured, opened), "resolve prefix": ms(opened, resolved),
                  "rows": ms(resolved, read), "format the table": ms(read, printed), "rows_found": len(rows)}))
"""


def time_steps(config: Path, prefix: str, runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median ms of each step of one inspect inside a process (the interpreter's own start excluded)."""
    samples: list[dict[str, float]] = []
    for index in range(runs + 1):
        result = subprocess.run(
            [sys.executable, "-c", _STEPS, str(config), prefix], capture_output=True, text=True, env=env, timeout=600
        )
        if result.returncode != 0:
            raise BenchError(f"the steps script failed: {result.stderr.strip()}")
        if index:
            samples.append(json.loads(result.stdout))
    return {step: round(statistics.median(s[step] for s in samples), 2) for step in samples[0]}


def checkout_of(rev: str, into: Path) -> Path:
    """REV's cansync/ and alembic/ from git, plus this checkout's generated protobuf modules."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "cansync", "alembic"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    generated = ROOT / "cansync" / "wire" / "pb"
    if generated.is_dir() and not (into / "cansync" / "wire" / "pb").exists():
        (into / "cansync" / "wire" / "pb").symlink_to(generated)
    return into


# -- the run -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000, help="events in the journal (default 5M)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median); one warm-up before")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"where the journal is kept ({CACHE_DIR})")
    parser.add_argument("--rebuild", action="store_true", help="build the journal even if a matching one is cached")
    parser.add_argument("--compare-rev", metavar="REV", help="also time the inspect of this git revision")
    args = parser.parse_args()
    require_isolated()
    load_start = load_avg()
    home, note = cached_journal(args.cache_dir, args.events, args.rebuild)
    config = write_config(home)
    journal = home / "data" / "journal.db"
    full = probe_hash(journal, args.events)
    prefix = full[:PREFIX_LENGTH]
    env = user_env()
    conn = sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True)
    try:
        expect = int(conn.execute("SELECT count(*) FROM events WHERE hash = ?", (full,)).fetchone()[0])
    finally:
        conn.close()
    print(f"hash {full} ({expect} events); prefix {prefix}; load average {load_start}", flush=True)

    inspect = ["journal", "inspect", "-c", str(config), "--hash"]
    variants = {
        "exact hash, table": [full],
        "exact hash, --json": [full, "--json"],
        f"{PREFIX_LENGTH}-char prefix, table": [prefix],
        f"{PREFIX_LENGTH}-char prefix, --json": [prefix, "--json"],
    }
    cases: list[dict[str, Any]] = []
    for name, tail in variants.items():
        timing = time_command([CANSYNC, *inspect, *tail], args.runs, env, expect)
        cases.append({"case": name, **timing, "ratio_to_aim": round(timing["median_ms"] / AIM_MS, 2)})
    scale = {
        "python -c pass": time_command([sys.executable, "-c", "pass"], args.runs, env, None),
        "cansync --version": time_command([CANSYNC, "--version"], args.runs, env, None),
    }
    steps = time_steps(config, prefix, args.runs, env)
    compared: list[dict[str, Any]] = []
    if args.compare_rev:
        with tempfile.TemporaryDirectory(prefix="cansync-inspect-rev-") as tree:
            old_tree = checkout_of(args.compare_rev, Path(tree))
            old_env = {**env, "PYTHONPATH": str(old_tree)}
            launch = [sys.executable, "-c", "import sys; from cansync.cli import main; sys.exit(main())"]
            for name, tail in variants.items():
                # run in the old tree: `python -c` puts the working directory first on sys.path
                timing = time_command([*launch, *inspect, *tail], args.runs, old_env, expect, cwd=old_tree)
                compared.append({"case": f"{args.compare_rev}: {name}", **timing})

    rows: list[list[object]] = [
        [c["case"], c["median_ms"], c["min_ms"], c["cpu_median_ms"], f"{c['ratio_to_aim']:.2f}",
         "yes" if c["ratio_to_aim"] < 1 else "NO"]
        for c in cases
    ]  # fmt: skip
    rows += [[name, t["median_ms"], t["min_ms"], t["cpu_median_ms"], "", ""] for name, t in scale.items()]
    rows += [
        [c["case"], c["median_ms"], c["min_ms"], c["cpu_median_ms"], f"{c['median_ms'] / AIM_MS:.2f}", ""]
        for c in compared
    ]
    print_table(
        f"cansync journal inspect --hash on {args.events:,} events (whole process, median of {args.runs}; aim "
        f"{AIM_MS:.0f} ms; load average {load_start[0]} at the start)",
        ["case", "median ms", "min ms", "cpu ms", "ratio to aim", "under aim"],
        rows,
    )
    print_table(
        f"one inspect by {PREFIX_LENGTH}-char prefix, inside the process (median ms of {args.runs})",
        ["step", "ms"],
        [[step, ms] for step, ms in steps.items() if step != "rows_found"],
    )
    write_results(
        "inspect",
        {
            "events": args.events,
            "journal_bytes": journal.stat().st_size,
            "journal_built": note,
            "aim_ms": AIM_MS,
            "hash": full,
            "prefix": prefix,
            "events_for_hash": expect,
            "cases": cases,
            "scale": scale,
            "steps_ms": steps,
            "compared": compared,
            "within_aim": all(c["ratio_to_aim"] < 1 for c in cases),
            "load_average": {"start": load_start, "end": load_avg()},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
