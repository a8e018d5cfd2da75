"""Fault soak: many seeded fault trials on a 3-peer mesh of real stores and agents.

    bash tests/isolate.sh .venv/bin/python bench/fault_soak.py --trials 100 --seed 1
    bash tests/isolate.sh .venv/bin/python bench/fault_soak.py --replay 1042

Trial i uses seed SEED*1000+i (its fault kind is the seed modulo 5, so every kind comes up). Each
trial injects one fault among a few user operations, heals it, then checks that every store holds
the same assets and metadata, every file hashes to its name, no asset is duplicated, every journal
verifies. Prints every trial, the faults by kind, and the seed of every failure (with the fault
sequence and the agents' warnings) so `--replay SEED` repeats it on a fresh mesh.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.faults.trials import CONVERGE_TIMEOUT, MeshSession, TrialResult  # noqa: E402


def require_loopback_only() -> None:
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        sys.exit(f"run me inside tests/isolate.sh (interfaces here: {names}); iroh must not reach past loopback")


def soak(seeds: list[int], keep: Path | None, *, verbose: bool, converge_timeout: float) -> list[TrialResult]:
    base = keep or Path(tempfile.mkdtemp(prefix="cansync-fault-soak-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"mesh directories under {base}")
    session = MeshSession(base, converge_timeout)
    results: list[TrialResult] = []
    try:
        for number, seed in enumerate(seeds, 1):
            result = session.run(seed)
            results.append(result)
            status = "ok  " if result.ok else "FAIL"
            print(
                f"{number:4d}/{len(seeds)} {status} seed={seed} {result.kind:<11} "
                f"converged in {result.converge_s:5.1f} s, trial {result.duration_s:5.1f} s",
                flush=True,
            )
            if verbose or not result.ok:
                print(result.report(), flush=True)
    finally:
        session.close()
    return results


def summary(results: list[TrialResult], wall_s: float) -> int:
    kinds = Counter(r.kind for r in results)
    failed = [r for r in results if not r.ok]
    print(f"\ntrials: {len(results)} in {wall_s:.0f} s, failed: {len(failed)}")
    print("faults by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    failed_kinds = Counter(r.kind for r in failed)
    if failed_kinds:
        print("failures by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(failed_kinds.items())))
    noted = [r for r in results if r.notes]
    for result in noted:
        for note in result.notes:
            print(f"note (seed {result.seed}): {note}")
    if results:
        slowest = max(results, key=lambda r: r.converge_s)
        mean = sum(r.converge_s for r in results) / len(results)
        print(f"convergence after heal: mean {mean:.1f} s, slowest {slowest.converge_s:.1f} s (seed {slowest.seed})")
    if failed:
        print("failing seeds (replay with --replay SEED): " + " ".join(str(r.seed) for r in failed))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1, help="trial i runs seed SEED*1000+i")
    parser.add_argument("--replay", type=int, metavar="SEED", help="run only the trial with this seed")
    parser.add_argument("--keep", type=Path, help="put the mesh directories (logs, journals) here")
    parser.add_argument("--verbose", action="store_true", help="print every trial's steps, not only failures'")
    parser.add_argument(
        "--converge-timeout", type=float, default=CONVERGE_TIMEOUT, help="seconds a healed mesh gets to settle"
    )
    args = parser.parse_args()
    require_loopback_only()
    seeds = [args.replay] if args.replay is not None else [args.seed * 1000 + i for i in range(args.trials)]
    started = time.monotonic()
    results = soak(seeds, args.keep, verbose=args.verbose, converge_timeout=args.converge_timeout)
    return summary(results, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
