"""`cansync store`: the CAN Service-compatible store."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("store", help="the CAN Service-compatible store")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync store: not built yet in this version", file=sys.stderr)
    return 3
