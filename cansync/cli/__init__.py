"""The command line: parses, prints, and hands the work to the agent, the journal or a store.

Each command group lives in its own module with a `register(subparsers)` function that adds its
parser and sets `func` (a callable taking the parsed args and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cansync import __version__
from cansync.cli.logging_setup import LOG_FORMATS, configure_logging
from cansync.config import ConfigError

COMMAND_MODULES = (
    "cansync.cli.run_cmd",
    "cansync.cli.store_cmd",
    "cansync.cli.journal_cmd",
    "cansync.cli.status_cmd",
    "cansync.cli.ticket_cmd",
    "cansync.cli.rendezvous_cmd",
    "cansync.cli.peer_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cansync", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"cansync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Every command logs the same way; `run` configures again once its config file's log_format is known.
    log_format = getattr(args, "log_format", None) or os.environ.get("CANSYNC_LOG_FORMAT", "text")
    configure_logging(getattr(args, "log_level", None) or "INFO", log_format if log_format in LOG_FORMATS else "text")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"cansync: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
