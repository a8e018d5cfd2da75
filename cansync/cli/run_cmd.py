"""`cansync run`: the agent (uses the embedded store when no can_service_url is set)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("run", help="the agent (uses the embedded store when no can_service_url is set)")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync run: not built yet in this version", file=sys.stderr)
    return 3
