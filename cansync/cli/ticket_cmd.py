"""`cansync ticket`: print this node's ticket, as the running agent wrote it.

The agent writes its current address (the port changes on each start) to `ticket_file`, or to
data_dir/ticket.json when that is unset; this command reads that file and prints it as JSON and as an
iroh EndpointTicket string.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.config import Config

# cansync.net.tickets (the iroh bindings) is imported inside run(): every `cansync` command builds this
# parser, and none but `cansync ticket` should pay for loading the bindings.

DEFAULT_TICKET_NAME = "ticket.json"


def ticket_path(config: Config) -> Path:
    return config.ticket_file if config.ticket_file is not None else config.data_dir / DEFAULT_TICKET_NAME


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "ticket",
        help="print this node's ticket",
        description="Print the address the running agent wrote, as JSON and as an iroh ticket string.",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--format",
        choices=("both", "json", "iroh"),
        default="both",
        help="both (default): the JSON line, then the iroh ticket line; json or iroh: only that one",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cansync.net.tickets import TicketError, address_to_json, address_to_ticket_string, read_ticket_file

    config = config_from_args(args)
    path = ticket_path(config)
    if not path.exists():
        print(
            f"cansync ticket: no ticket at {path}: start the agent (`cansync run`) with this config "
            f"first; it writes its address there on start",
            file=sys.stderr,
        )
        return 1
    try:
        address = read_ticket_file(path)
    except TicketError as exc:
        print(f"cansync ticket: {exc}", file=sys.stderr)
        return 1
    if args.format in ("both", "json"):
        print(json.dumps(address_to_json(address)))
    if args.format in ("both", "iroh"):
        print(address_to_ticket_string(address))
    return 0
