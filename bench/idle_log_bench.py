"""Log lines an idle, synced pair of agents writes at the default level, per agent and minute.

    bash tests/isolate.sh .venv/bin/python bench/idle_log_bench.py [--minutes 5] [--quick]

Two agents at the default log level (INFO) meet and sync one asset; once both stores hold it and the
sync's own lines have been written (the minute summary that reports it comes up to a minute later),
every line either agent writes during the next --minutes is counted (keepalives, store polls and the
minute summaries go on all the while). Issue 13's aim: an idle synced
agent is silent for minutes. Prints the count per agent and minute and any line written, and writes
bench/results/idle_log.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Cluster,
    KiB,
    bench_workdir,
    load_avg,
    print_table,
    push_assets,
    remove_workdir,
    require_isolated,
    seed_assets,
    write_results,
)

from tests.helpers.store_process import wait_until  # noqa: E402

SETTLE_SECS = 65.0  # after convergence: the sync's own lines, its minute summary (written up to 60 s on) included


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long the pair is watched while idle")
    parser.add_argument("--quick", action="store_true", help="watch for one minute")
    args = parser.parse_args()
    if args.quick:
        args.minutes = min(args.minutes, 1.0)
    require_isolated()
    work = bench_workdir("idle-log")
    try:
        with Cluster(work) as cluster:
            a, b = cluster.add("a"), cluster.add("b")
            (asset,) = push_assets(a.store.url, seed_assets("a", 1, [10 * KiB]))
            b.start_agent(log_level="INFO")
            a.start_agent(connect_to=b, log_level="INFO")
            if not wait_until(lambda: asset in b.digests(), timeout=60):
                raise SystemExit(f"the pair did not sync its one asset in 60 s; logs under {work}")
            time.sleep(SETTLE_SECS)
            logs = {node.name: node.agent.log_path for node in (a, b) if node.agent is not None}
            before = {name: len(_lines(path)) for name, path in logs.items()}
            load = load_avg()
            time.sleep(args.minutes * 60)
            written = {name: _lines(path)[before[name] :] for name, path in logs.items()}
            alive = all(node.agent is not None and node.agent.process.poll() is None for node in (a, b))
    finally:
        remove_workdir(work)
    per_minute = {name: round(len(lines) / args.minutes, 2) for name, lines in written.items()}
    print_table(
        f"an idle synced pair at the default log level, watched for {args.minutes:g} min",
        ["agent", "lines", "lines/min", "still running"],
        [[name, len(lines), per_minute[name], alive] for name, lines in written.items()],
    )
    for name, lines in written.items():
        for line in lines[:10]:
            print(f"  {name}: {line}")
    silent = alive and not any(written.values())
    print(f"  aim (silent while idle): {silent}")
    write_results(
        "idle_log",
        {
            "minutes": args.minutes,
            "lines": {name: len(lines) for name, lines in written.items()},
            "lines_per_minute": per_minute,
            "first_lines": {name: lines[:10] for name, lines in written.items()},
            "agents_alive_at_end": alive,
            "load_avg_1min": load[0],
            "aim_silent": silent,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
