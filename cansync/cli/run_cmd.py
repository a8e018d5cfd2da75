"""`cansync run`: the agent, with the embedded store when no can_service_url is set, its dashboard at
web_addr, and on a terminal the sync's progress."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.cli.logging_setup import configure_logging
from cansync.config import Config
from cansync.portable.stop_signals import stop_on_signals

log = logging.getLogger("cansync.run")

ENDPOINT_DRAIN_LIMIT_AT_EXIT = 0.5
"""Seconds a stopping `cansync run` waits for its endpoint to finish closing. Peers were told at once;
what can remain is the drain of a dial nobody answered (about 3 s), which would only delay the exit."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("run", help="run the sync agent")
    add_config_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--ready-file", type=Path, help="write this node's endpoint id here once running")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars, even on a terminal")
    parser.set_defaults(func=run)


HEAP_ARENAS = 1
"""glibc heaps the agent's threads share (see cansync.portable.heap): set before any thread starts."""


def run(args: argparse.Namespace) -> int:
    from cansync.portable.heap import limit_heap_arenas

    limit_heap_arenas(HEAP_ARENAS)
    config = config_from_args(args)
    config.require_passphrase()
    handler = configure_logging(args.log_level, config.log_format)
    for warning in config.warnings():
        logging.getLogger("cansync.config").warning("%s", warning)
    from cansync.cli.progress import wants_progress

    progress = not args.no_progress and config.log_format == "text" and wants_progress()
    return asyncio.run(_main(config, args.ready_file, handler if progress else None))


async def _main(config: Config, ready_file: Path | None, progress_handler: logging.Handler | None) -> int:
    from cansync.agent.embedded_store import EmbeddedStoreError
    from cansync.can.errors import CanServiceAuthError
    from cansync.journal.errors import JournalError
    from cansync.net.errors import TransportError
    from cansync.net.node_key import NodeKeyError
    from cansync.web.server import WebConfigError

    task = asyncio.current_task()
    assert task is not None
    with stop_on_signals(task.cancel):
        try:
            await _serve(config, ready_file, progress_handler)
        except asyncio.CancelledError:
            return 0
        except (EmbeddedStoreError, JournalError, NodeKeyError, TransportError, CanServiceAuthError) as exc:
            print(f"cansync run: {exc}", file=sys.stderr)
            return 1
        except WebConfigError as exc:
            print(f"cansync run: {exc}", file=sys.stderr)
            return 2
    return 0


async def _serve(config: Config, ready_file: Path | None, progress_handler: logging.Handler | None) -> None:
    """Open the agent, serve its dashboard, run until cancelled; everything started here stops here."""
    from cansync.agent.runtime import Agent
    from cansync.cli.progress import show_progress
    from cansync.web.agent_view import AgentStatusView
    from cansync.web.recent_errors import RecentErrors
    from cansync.web.server import start_web

    errors = RecentErrors().install()
    agent = await Agent.open(config)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if config.web_addr:
                web = await start_web(AgentStatusView(agent, errors), config.web_addr, config.web_token)
                stack.push_async_callback(web.close)
                log.info("dashboard at %s", web.url)
            async with asyncio.TaskGroup() as group:
                group.create_task(agent.run(), name="agent")
                if progress_handler is not None:
                    group.create_task(show_progress(agent, progress_handler), name="progress")
                if ready_file is not None:
                    ready_file.write_text(agent.our_id + "\n", encoding="ascii")
    finally:
        await agent.close(endpoint_drain_limit=ENDPOINT_DRAIN_LIMIT_AT_EXIT)
        errors.remove()
