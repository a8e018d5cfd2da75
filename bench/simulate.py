"""Deterministic simulation campaigns: whole agents in one process under a seeded scheduler and clock.

    .venv/bin/python bench/simulate.py --seeds 1000 --first-seed 1 [--agents K] [--workers W]
    .venv/bin/python bench/simulate.py --replay SEED [--agents K] [--small] [--verbose]   # one seed, traced
    .venv/bin/python bench/simulate.py --mesh --agents 32 --seeds 3    # issue 14: the spread of uploads

Each seed draws a scenario (3-6 agents unless --agents, assets and metadata edits by users, link cuts,
partitions, crashes at arbitrary awaits with a restart from the journal, store outages, a full disk,
corrupted pulls, and sometimes a rogue peer) and runs real agents on it (cansync.simulation). After
each run the checks hold or the seed fails: all stores hold the union, each asset is received at most
once per receiver and never echoed, no transfer failure is charged to a peer whose bytes were right,
every journal verifies, and the last metadata write wins everywhere. Prints `N seeds, F failed` and
each failing seed with its failed checks; exits 1 on any failure. A failing seed replays identically:
`--replay SEED` shows its trace (the faults and user actions as they happened, the outcome) and its
trace digest. No network namespace is needed: nothing leaves the process. The script runs itself under
PYTHONHASHSEED=0 (string sets iterate by the hash seed), so a seed's digest is the same in every run.
--small is the CI profile (tests/simulation/test_simulation.py runs seeds 1-500 of it).

With --mesh every agent starts with its own assets, without faults: the figure is the upload spread,
the busiest agent's uploads over the mean (issue 14's aim: at most 2). Writes bench/results/simulate.json
(simulate_small.json with --small, simulate_mesh.json with --mesh).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cansync.simulation.campaign import SeedOutcome, run_campaign, run_one  # noqa: E402


def _write_results(name: str, result: dict[str, object]) -> None:
    # bench/common.py imports the real-process helpers (stores, agents); the simulation needs none of it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_results

    write_results(name, result)


def _campaign(args: argparse.Namespace) -> int:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    outcomes: list[SeedOutcome] = []
    failed: list[SeedOutcome] = []
    for outcome in run_campaign(seeds, args.agents, mesh=args.mesh, small=args.small, workers=args.workers):
        outcomes.append(outcome)
        if not outcome.passed:
            failed.append(outcome)
            print(f"seed {outcome.seed} FAILED ({outcome.description})")
            for failure in outcome.failures:
                print(f"    {failure[:500]}")
            sys.stdout.flush()
    wall = time.perf_counter() - started
    print(f"{len(outcomes)} seeds, {len(failed)} failed")
    walls = [o.wall_s for o in outcomes]
    virtual = sum(o.virtual_s for o in outcomes)
    print(
        f"{wall:.1f} s wall ({statistics.fmean(walls):.2f} s a seed, slowest {max(walls):.2f} s), "
        f"{virtual:.0f} s of virtual time, {sum(o.steps for o in outcomes)} scheduling steps"
    )
    result: dict[str, object] = {
        "seeds": len(outcomes),
        "first_seed": args.first_seed,
        "agents": args.agents,
        "profile": "mesh" if args.mesh else "small" if args.small else "full",
        "failed": len(failed),
        "failing_seeds": {o.seed: o.failures for o in failed},
        "wall_s": round(wall, 2),
        "mean_seed_wall_s": round(statistics.fmean(walls), 3),
        "virtual_s": round(virtual, 1),
    }
    if args.mesh:
        spreads = [o.upload_spread() for o in outcomes if o.passed]
        if spreads:
            print(f"upload spread (busiest agent's uploads / mean): worst {max(spreads):.2f}, "
                  f"mean {statistics.fmean(spreads):.2f} over {len(spreads)} runs")  # fmt: skip
            result["upload_spread_worst"] = round(max(spreads), 3)
            result["upload_spread_mean"] = round(statistics.fmean(spreads), 3)
            result["uploads"] = {o.seed: o.uploads for o in outcomes}
    if not args.no_write:
        _write_results("simulate_mesh" if args.mesh else "simulate_small" if args.small else "simulate", result)
    return 1 if failed else 0


def _replay(args: argparse.Namespace) -> int:
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    else:
        logging.disable(logging.CRITICAL)
    outcome = run_one(args.replay, args.agents, mesh=args.mesh, small=args.small, keep_trace=True)
    for line in outcome.trace:
        print(line)
    print(
        f"seed {outcome.seed}: {'passed' if outcome.passed else 'FAILED'}; {outcome.steps} steps, "
        f"{outcome.virtual_s:.1f} s virtual, {outcome.wall_s:.2f} s wall; trace digest {outcome.trace_digest}"
    )
    for failure in outcome.failures:
        print(f"    {failure}")
    if outcome.uploads:
        print(f"uploads: {outcome.uploads} (spread {outcome.upload_spread():.2f})")
    return 0 if outcome.passed else 1


def _fixed_hash_seed() -> None:
    """Run under PYTHONHASHSEED=0: sets of strings iterate in an order fixed by the hash seed, so a seed
    replays step for step only under the hash seed it ran with (the workers inherit this one)."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])


def main() -> int:
    _fixed_hash_seed()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--agents", type=int, default=None, help="agents per run (default: 3-6, drawn)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--replay", type=int, default=None, metavar="SEED", help="run one seed and show its trace")
    parser.add_argument("--mesh", action="store_true", help="every agent starts with assets, no faults (issue 14)")
    parser.add_argument("--small", action="store_true", help="the CI profile (tests/simulation): smaller runs")
    parser.add_argument("--verbose", action="store_true", help="with --replay: the agents' log lines too")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    if args.replay is not None:
        return _replay(args)
    return _campaign(args)


if __name__ == "__main__":
    sys.exit(main())
