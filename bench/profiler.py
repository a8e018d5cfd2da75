"""Sampling profiles of the bench's processes with py-spy (the `bench` extra), and where their time went.

`profiled({"agent-a": pid, ...}, out_dir)` records each process from entry to exit of the block as
collapsed stacks (`<name>.txt`: one "frame;frame;... count" line per distinct stack) and, on exit, sums
them: busy samples (idle waits in the selector are not work), the leaf functions that held the most,
and a share per part of the program (iroh FFI, the journal's SQLite, the HTTP legs to the store,
hashing, protobuf, fsync, the event loop itself). py-spy counts a thread blocked on its queue as
active; those waits are recognised by their frames and left out with the selector's. py-spy samples
without pausing the process, so a profiled run is a few per cent slower than an unprofiled one:
profile in a run of its own.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_RATE = 100  # a second; enough for shares of a few per cent over runs of seconds

# A stack belongs to the first part whose marker appears in it, from the innermost frame out.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # idle: the loop's select, worker threads and aiosqlite's thread waiting on their queues
    (
        "waiting",
        ("select (selectors.py", "(concurrent/futures/thread.py:81)", "(aiosqlite/core.py:59)", "wait (threading.py"),
    ),
    ("disk fsync", ("_fsync_file", "fsync")),
    ("iroh FFI", ("iroh", "_uniffi", "fastwrite")),
    ("journal SQLite", ("sqlite3", "aiosqlite", "sqlalchemy", "cansync/journal")),
    ("hashing", ("hashlib", "sha256", "_digest", "digest (")),
    ("store HTTP client", ("httpx", "httpcore", "h11", "cansync/can/")),
    ("store server", ("aiohttp", "cansync/store/")),
    ("protobuf", ("google/protobuf", "_pb2", "cansync/wire")),
    ("core machine", ("cansync/core/",)),
    ("agent sessions", ("cansync/agent/", "cansync/net/")),
    ("event loop", ("asyncio/",)),
)


@dataclass
class ProcessProfile:
    name: str
    samples: int = 0
    busy: int = 0
    parts: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)

    def summary(self, top: int = 8) -> dict[str, object]:
        busy = max(self.busy, 1)
        return {
            "samples": self.samples,
            "busy_samples": self.busy,
            "busy_share": round(self.busy / max(self.samples, 1), 3),
            "parts_of_busy": {part: round(n / busy, 3) for part, n in self.parts.most_common() if part != "idle"},
            "top_leaves_of_busy": [(leaf, round(n / busy, 3)) for leaf, n in self.leaves.most_common(top)],
        }


def _part_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for part, markers in PARTS:
            if any(marker in frame for marker in markers):
                return part
    return "other"


def read_collapsed(name: str, path: Path) -> ProcessProfile:
    profile = ProcessProfile(name)
    if not path.exists():
        return profile
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        profile.samples += count
        part = _part_of(frames)
        if part == "waiting":
            continue  # an idle loop or thread: not work
        profile.busy += count
        profile.parts[part] += count
        profile.leaves[frames[-1].strip()] += count
    return profile


@contextlib.contextmanager
def profiled(pids: dict[str, int], out_dir: Path) -> Iterator[dict[str, ProcessProfile]]:
    """Record each named process while the block runs; the dict it yields is filled on exit."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = {
        name: subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(SAMPLE_RATE),
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out_dir / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for name, pid in pids.items()
    }
    profiles: dict[str, ProcessProfile] = {}
    try:
        yield profiles
    finally:
        for recorder in recorders.values():
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        for recorder in recorders.values():
            try:
                recorder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                recorder.kill()
        for name in pids:
            profiles[name] = read_collapsed(name, out_dir / f"{name}.txt")


def print_profiles(title: str, profiles: dict[str, ProcessProfile]) -> None:
    print(f"  profile: {title}")
    for name, profile in profiles.items():
        summary = profile.summary()
        parts = ", ".join(f"{part} {share:.0%}" for part, share in summary["parts_of_busy"].items())  # type: ignore[attr-defined]
        print(f"    {name}: {profile.busy} busy of {profile.samples} samples ({summary['busy_share']:.0%}); {parts}")
        for leaf, share in summary["top_leaves_of_busy"][:5]:  # type: ignore[index]
            print(f"      {share:5.1%}  {leaf}")
