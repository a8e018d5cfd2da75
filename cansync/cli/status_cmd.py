"""`cansync status`: peers, what is in flight (with progress), what is owed each way, last sync per peer.

Everything shown is derived from the journal, so it works whether or not the agent is running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from cansync.cli.config_args import add_config_arguments, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("status", help="peers, in-flight transfers, what is owed each way")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if not config.journal_path.exists():
        print(
            f"cansync status: no journal at {config.journal_path} (has the agent run with this data_dir?)",
            file=sys.stderr,
        )
        return 1
    summary = asyncio.run(_summary(config.journal_path))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render(summary))
    return 0


async def _summary(path: Any) -> dict[str, Any]:
    from cansync.journal.recorder import Journal
    from cansync.journal.replay import rebuild_state

    journal = await Journal.open(path)
    try:
        state, _ = await rebuild_state(journal)
    finally:
        await journal.close()
    return state.describe()


def _when(ms: int) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(summary: dict[str, Any]) -> str:
    lines = [f"local assets: {summary['local_assets']}   journal events: {summary['last_seq']}"]
    peers = summary["peers"]
    if not peers:
        lines.append("no peers yet")
    for peer, info in peers.items():
        lines.append("")
        lines.append(f"peer {peer[:16]}  {info['link']}  found via {', '.join(info['found_via']) or '-'}")
        if info["reject_reason"]:
            lines.append(f"  rejected: {info['reject_reason']}")
        lines.append(
            f"  we owe it {info['owed']}, it owes us {info['wanted']}; received {info['received_from']} from it; "
            f"last sync {_when(info['last_sync_ms'])}"
        )
        for move in info["in_flight"]:
            size = move["size"]
            progress = f"{100 * move['offset'] / size:5.1f}%" if size else "  ?  "
            arrow = "<-" if move["direction"] == "in" else "->"
            lines.append(f"  {arrow} {move['hash'][:16]} {move['status']:<12} {progress} of {size or '?'} bytes")
    return "\n".join(lines)
