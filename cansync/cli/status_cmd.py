"""`cansync status`: peers, in-flight transfers, what is owed."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("status", help="peers, in-flight transfers, what is owed")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync status: not built yet in this version", file=sys.stderr)
    return 3
