"""`cansync peer pause ID` / `cansync peer resume ID`: stop or restart syncing with one peer.

The running agent is asked through its local API (it journals the change and ends or allows the
session at once). When no agent runs, the change is journaled directly and the next start obeys it.
ID may be any unambiguous start of the peer's endpoint id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.cli.status_cmd import API_TIMEOUT, api_url, ask_running_agent
from cansync.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("peer", help="pause or resume syncing with one peer")
    actions = parser.add_subparsers(dest="peer_action", metavar="ACTION", required=True)
    for action, text in (("pause", "stop syncing with a peer until resumed"), ("resume", "sync with it again")):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("peer", metavar="ID", help="the peer's endpoint id, or an unambiguous start of it")
        add_config_arguments(sub)
        sub.set_defaults(func=change_peer, paused=action == "pause")


def change_peer(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    status, _where = ask_running_agent(config)
    if status is not None:
        known = [str(p["id"]) for p in status.get("peers", [])]
        peer = _resolve(args.peer, known)
        if peer is None:
            return 1
        return _ask_agent(config, peer, args.paused)
    if not config.journal_path.exists():
        print(
            f"cansync peer: no journal at {config.journal_path} (has the agent run with this data_dir?)",
            file=sys.stderr,
        )
        return 1
    return asyncio.run(_journal_directly(config, args.peer, args.paused))


def _resolve(prefix: str, known: list[str]) -> str | None:
    matches = [p for p in known if p.startswith(prefix.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        print(f"cansync peer: no known peer's id starts with {prefix!r}", file=sys.stderr)
    else:
        print(f"cansync peer: {prefix!r} fits {len(matches)} peers; give more of the id", file=sys.stderr)
    return None


def _ask_agent(config: Config, peer: str, paused: bool) -> int:
    base = api_url(config.web_addr).removesuffix("/api/status")
    url = f"{base}/api/peers/{peer}/{'pause' if paused else 'resume'}"
    request = urllib.request.Request(url, method="POST", headers={"X-Cansync-Request": "1"})
    if config.web_token:
        request.add_header("Authorization", f"Bearer {config.web_token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=API_TIMEOUT) as response:
            json.loads(response.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"cansync peer: the running agent at {base} did not take it: {exc}", file=sys.stderr)
        return 1
    print(f"peer {peer[:10]} {'paused' if paused else 'resumed'} (the running agent obeys at once)")
    return 0


async def _journal_directly(config: Config, prefix: str, paused: bool) -> int:
    from cansync.core.events import Event, PeerPaused, PeerResumed
    from cansync.journal.recorder import Journal
    from cansync.journal.replay import rebuild_state

    journal = await Journal.open(config.journal_path)
    try:
        state, _ = await rebuild_state(journal)
        peer = _resolve(prefix, sorted(state.peers))
        if peer is None:
            return 1
        await journal.append([Event.of(PeerPaused() if paused else PeerResumed(), peer=peer)])
    finally:
        await journal.close()
    print(f"peer {peer[:10]} {'paused' if paused else 'resumed'} (journaled; the agent obeys it when it starts)")
    return 0
