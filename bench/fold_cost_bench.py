"""What the machine's fold costs per event, in instructions: a figure a busy machine cannot skew.

    .venv/bin/python bench/fold_cost_bench.py [--events 50000] [--source DIR]

Runs itself twice under valgrind's callgrind over bench/journal_bench.py's event mix: once only making
the events, once making and folding them (`SyncState.replaying`, as a restart and `journal replay` do; `replay`
per event in a checkout that predates it).
The difference over the event count is the fold's cost per event. `--source DIR` measures the cansync
of another checkout (a worktree of an older commit), for a before-and-after. Writes
bench/results/fold_cost.json (or fold_cost_<label>.json with --label).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def _inner(mode: str, events: int) -> None:
    """Run inside callgrind: make the events, and fold them when asked."""
    from journal_bench import generate

    from cansync.core.machine import SyncState

    made = list(generate(events))
    if mode == "fold":
        state = SyncState()
        replaying = getattr(state, "replaying", None)
        if replaying is None:  # a checkout from before SyncState.replaying: its replay folded one by one
            for event in made:
                state.replay(event)
            return
        with replaying() as fold_one:
            for event in made:
                fold_one(event)


def _instructions(mode: str, events: int, source: Path) -> int:
    env = dict(os.environ, PYTHONPATH=f"{source}{os.pathsep}{source / 'bench'}", PYTHONHASHSEED="0")
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, str(Path(__file__).resolve()), "--inner", mode, "--events", str(events),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--source", type=Path, default=HERE.parent, help="the checkout whose cansync is measured")
    parser.add_argument("--label", default="", help="names the results file: fold_cost_<label>.json")
    parser.add_argument("--inner", choices=("make", "fold"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        _inner(args.inner, args.events)
        return 0
    source = args.source.resolve()
    make = _instructions("make", args.events, source)
    fold = _instructions("fold", args.events, source)
    per_event = (fold - make) / args.events
    print(f"fold of {args.events:,} events ({source}): {per_event:,.0f} instructions an event")
    out = HERE / "results" / (f"fold_cost_{args.label}.json" if args.label else "fold_cost.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "bench": "fold_cost",
                "source": str(source),
                "events": args.events,
                "instructions_make": make,
                "instructions_make_and_fold": fold,
                "instructions_per_event": round(per_event),
                "command": " ".join(sys.argv),
            },
            indent=2,
        )  # fmt: skip
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
