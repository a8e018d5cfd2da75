"""`cansync store serve`: the CAN Service-compatible store on its own."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("store", help="the CAN Service-compatible store")
    store_commands = parser.add_subparsers(dest="store_command", metavar="STORE_COMMAND")
    serve = store_commands.add_parser(
        "serve",
        help="serve a CAN Service-compatible store",
        description="Serve the public CAN API under /api/v1/can/0 and the sync API under /sync/. "
        "Prints `READY http://host:port` once listening; Ctrl-C or SIGTERM stops it. Exit codes: 0 stopped, "
        "1 failed, 2 bad settings, 3 port in use, 4 storage root in use by another store.",
    )
    serve.add_argument("--config", metavar="config.yaml", help="a CAN Service config (storage_root, sync_api_key)")
    serve.add_argument("--root", help="storage root (default: storage_root from --config, else ./can_data)")
    serve.add_argument("--port", type=int, help="port (default: CAN_PORT, else 3210; 0 picks a free port)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--sync-key", dest="sync_key", help="sync_api_key; without one the sync API is disabled")
    serve.add_argument(
        "--parent-pid",
        dest="parent_pid",
        type=int,
        metavar="PID",
        help="stop when process PID ends, or when it closes this store's standard input (a pipe); "
        "`cansync run` starts its embedded store this way, so the store ends with the agent",
    )
    serve.set_defaults(func=_serve)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from cansync.store import StoreConfigError, load_store_settings, run_store

    try:
        settings = load_store_settings(
            config_path=args.config, root=args.root, port=args.port, host=args.host, sync_key=args.sync_key
        )
    except StoreConfigError as exc:
        print(f"cansync store: {exc}", file=sys.stderr)
        return 2
    return run_store(settings, parent_pid=args.parent_pid)
