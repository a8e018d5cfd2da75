"""How long `cansync run` takes to stop (SIGTERM until the process has exited).

    bash tests/isolate.sh .venv/bin/python bench/stop_bench.py [--runs 3]

Two cases, each a real agent beside its own store:
- alone: the agent has dialed no one;
- after a dead dial: its connect_ticket_file names an agent that has since stopped, so its dial gets
  no answer; the stop comes while that dial is still pending (1 s after the agent is ready).
iroh keeps an endpoint draining for three probe timeouts after a dial nobody answered; the agent's
exit waits for that at most ENDPOINT_DRAIN_LIMIT_AT_EXIT. Prints the medians, the dead-dial case
against the alone case measured in the same run, and writes bench/results/stop.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    Cluster,
    bench_workdir,
    load_avg,
    median,
    print_table,
    remove_workdir,
    require_isolated,
    write_results,
)


def timed_stop(cluster: Cluster, name: str, dial_dead_peer: bool) -> float:
    node = cluster.add(name)
    if dial_dead_peer:
        gone = cluster.add(f"{name}-gone")
        gone.start_agent()
        gone.stop_agent()  # its ticket file stays, naming a port where no one answers now
        agent = node.start_agent(connect_to=gone)
    else:
        agent = node.start_agent()
    time.sleep(1.0)  # the dial (if any) is under way: its connect timeout is 10 s
    started = time.perf_counter()
    code = agent.stop(timeout=60)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"agent {name} exited with {code}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 run")
    args = parser.parse_args()
    require_isolated()
    runs = 1 if args.quick else args.runs
    base = bench_workdir("stop")
    alone: list[float] = []
    dead_dial: list[float] = []
    try:
        with Cluster(base) as cluster:
            for run in range(runs):
                alone.append(timed_stop(cluster, f"alone{run}", dial_dead_peer=False))
                dead_dial.append(timed_stop(cluster, f"dialer{run}", dial_dead_peer=True))
    finally:
        remove_workdir(base)
    rows = [
        ("alone", runs, f"{median(alone):.2f}", " ".join(f"{s:.2f}" for s in alone)),
        ("after a dead dial", runs, f"{median(dead_dial):.2f}", " ".join(f"{s:.2f}" for s in dead_dial)),
    ]
    print_table("cansync run: SIGTERM until exit (s)", ["case", "runs", "median", "each"], rows)
    ratio = median(dead_dial) / median(alone)
    print(f"  after a dead dial against alone: x{ratio:.2f}")
    write_results(
        "stop",
        {
            "runs": runs,
            "alone_s": [round(s, 3) for s in alone],
            "after_dead_dial_s": [round(s, 3) for s in dead_dial],
            "median_alone_s": round(median(alone), 3),
            "median_after_dead_dial_s": round(median(dead_dial), 3),
            "ratio_dead_dial_to_alone": round(ratio, 2),
            "load_avg": load_avg(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
