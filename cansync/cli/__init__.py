"""The command line: parses, prints, and hands the work to the agent, the journal or a store.

Each command group lives in its own module with a `register(subparsers)` function that adds its
parser and sets `func` (a callable taking the parsed args and returning an exit code). A command line
that names a command imports that command's module alone: what the others import at their top (an
event loop, an HTTP client) is not paid by, say, `cansync journal inspect`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from cansync import __version__
from cansync.config import ConfigError

COMMAND_MODULES = {
    "run": "cansync.cli.run_cmd",
    "store": "cansync.cli.store_cmd",
    "journal": "cansync.cli.journal_cmd",
    "status": "cansync.cli.status_cmd",
    "ticket": "cansync.cli.ticket_cmd",
    "rendezvous": "cansync.cli.rendezvous_cmd",
    "peer": "cansync.cli.peer_cmd",
}
"""Each command's name -> the module that registers it (tests/cli/test_command_modules.py checks the names)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; or, when `command` names one, of that command alone.

    The top-level options (--help, --version) take no value, so a command line that starts with a
    command's name is parsed the same by either: only the other commands' modules go unimported.
    """
    parser = argparse.ArgumentParser(prog="cansync", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"cansync {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMAND_MODULES.values()
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # Every command that logs logs the same way; `run` configures again once its config file's log_format
    # is known. A command that logs nothing (its parser sets logs=False: journal inspect, whose output is
    # its rows and its refusals) skips the logging module's imports, a tenth of its start.
    if getattr(args, "logs", True):
        from cansync.cli.logging_setup import LOG_FORMATS, configure_logging

        log_format = getattr(args, "log_format", None) or os.environ.get("CANSYNC_LOG_FORMAT", "text")
        level = getattr(args, "log_level", None) or "INFO"
        configure_logging(level, log_format if log_format in LOG_FORMATS else "text")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"cansync: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
