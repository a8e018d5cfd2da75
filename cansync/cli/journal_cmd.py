"""`cansync journal`: the event journal: inspect, verify, replay."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("journal", help="the event journal: inspect, verify, replay")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync journal: not built yet in this version", file=sys.stderr)
    return 3
