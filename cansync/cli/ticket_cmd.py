"""`cansync ticket`: print this node's ticket."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("ticket", help="print this node's ticket")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync ticket: not built yet in this version", file=sys.stderr)
    return 3
