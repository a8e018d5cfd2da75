"""`cansync run`: the agent, with the embedded store when no can_service_url is set."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.portable.stop_signals import stop_on_signals


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("run", help="run the sync agent")
    add_config_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--ready-file", type=Path, help="write this node's endpoint id here once running")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    config.require_passphrase()
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiosqlite", "httpcore", "httpx", "asyncio"):  # their debug lines drown ours
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))
    return asyncio.run(_main(config, args.ready_file))


async def _main(config, ready_file: Path | None) -> int:  # type: ignore[no-untyped-def]
    from cansync.agent.embedded_store import EmbeddedStoreError
    from cansync.agent.runtime import run_agent
    from cansync.journal.errors import JournalError
    from cansync.net.errors import TransportError
    from cansync.net.node_key import NodeKeyError

    task = asyncio.current_task()
    assert task is not None
    with stop_on_signals(task.cancel):
        try:
            await run_agent(config, ready_file=ready_file)
        except asyncio.CancelledError:
            return 0
        except (EmbeddedStoreError, JournalError, NodeKeyError, TransportError) as exc:
            print(f"cansync run: {exc}", file=sys.stderr)
            return 1
    return 0
