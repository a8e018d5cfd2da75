"""`cansync rendezvous`: the pkarr rendezvous slots for a passphrase."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("rendezvous", help="the pkarr rendezvous slots for a passphrase")
    parser.set_defaults(func=_not_built)


def _not_built(args: argparse.Namespace) -> int:
    print("cansync rendezvous: not built yet in this version", file=sys.stderr)
    return 3
