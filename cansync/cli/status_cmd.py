"""`cansync status`: a summary of the agent: peers, what is in flight, what is owed, rates.

When the agent runs, its dashboard API answers (`GET /api/status` on web_addr, with web_token if one is
set): that is one local HTTP request, however long the journal. Otherwise the status is folded from
the journal's newest snapshot plus the events after it. Either way the output is a summary: counts,
the few largest transfers in flight, one line per peer, never one line per queued transfer.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.config import Config

if TYPE_CHECKING:
    from cansync.core.machine import SyncState

API_TIMEOUT = 2.0  # a local request: an agent that takes longer is stuck, and the journal still answers
LARGEST_SHOWN = 5
PEERS_SHOWN = 20
ERRORS_SHOWN = 3


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("status", help="peers, in-flight transfers, what is owed each way")
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON (the /api/status schema)")
    parser.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    summary, source = ask_running_agent(config)
    if summary is None:
        if not config.journal_path.exists():
            print(
                f"cansync status: the agent is not running ({source}) and there is no journal at "
                f"{config.journal_path} (has the agent run with this data_dir?)",
                file=sys.stderr,
            )
            return 1
        summary = _from_journal(config)
        source = f"agent not running ({source}): from the journal {config.journal_path}"
    if args.json:
        print(json.dumps({"source": source, **summary}, indent=2))
    else:
        print(render(summary, source))
    return 0


# -- where the status comes from -------------------------------------------------------------------


def api_url(web_addr: str) -> str:
    """The URL to reach a dashboard listening on web_addr (a wildcard address is reached on loopback)."""
    host, _sep, port = web_addr.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}.get(host, host)
    return f"http://{host}:{port}/api/status"


def ask_running_agent(config: Config) -> tuple[dict[str, Any] | None, str]:
    """(status, where it came from) from the running agent's API, or (None, why not)."""
    if not config.web_enabled:
        return None, "web_addr is off, so it cannot be asked"
    url = api_url(config.web_addr)
    if not _listening(url):
        return None, f"nothing answers at {url}: connection refused"
    import urllib.error  # here: a status read from the journal (no agent) skips their 15 ms of imports
    import urllib.request

    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if config.web_token:
        request.add_header("Authorization", f"Bearer {config.web_token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(request, timeout=API_TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        why = "it refused our web_token" if exc.code in (401, 403) else f"it answered HTTP {exc.code}"
        return None, f"{url}: {why}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"nothing answers at {url}: {reason}"
    if not isinstance(answer, dict) or "peers" not in answer:
        return None, f"{url} did not answer with a cansync status"
    ours = _our_endpoint_id(config.data_dir)
    if ours is not None and answer.get("endpoint_id") not in (ours, None, ""):
        return None, f"the agent at {url} is another one ({str(answer.get('endpoint_id'))[:10]}), not this data_dir's"
    return answer, f"the running agent at {url.removesuffix('/api/status')}"


def _listening(url: str) -> bool:
    """Whether something accepts connections where `url` points (a loopback probe, far cheaper than HTTP)."""
    host_port = url.removeprefix("http://").split("/", 1)[0]
    host, _sep, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=API_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


def _our_endpoint_id(data_dir: Path) -> str | None:
    """This data_dir's endpoint id, from the ticket.json the agent writes at start (None if unknown)."""
    try:
        ticket = json.loads((data_dir / "ticket.json").read_text())
    except (OSError, ValueError):
        return None
    endpoint_id = ticket.get("id") if isinstance(ticket, dict) else None
    return endpoint_id if isinstance(endpoint_id, str) else None


def _from_journal(config: Config) -> dict[str, Any]:
    from cansync.journal.read_only import rebuild_without_writing
    from cansync.web.state_status import status_from_state

    rebuilt = rebuild_without_writing(config.journal_path)
    state = rebuilt[0] if rebuilt is not None else _rebuild_after_upgrade(config)
    store_url = config.can_service_url or f"http://127.0.0.1:{config.store_port}"
    return status_from_state(state, endpoint_id=_our_endpoint_id(config.data_dir) or "", store_url=store_url)


def _rebuild_after_upgrade(config: Config) -> SyncState:
    """A journal an older cansync wrote: Journal.open upgrades its schema first (the slow path)."""
    import asyncio

    from cansync.journal.recorder import Journal
    from cansync.journal.replay import rebuild_state

    async def rebuild() -> SyncState:
        journal = await Journal.open(config.journal_path)
        try:
            state, _ = await rebuild_state(journal)
        finally:
            await journal.close()
        return state

    return asyncio.run(rebuild())


# -- the summary -----------------------------------------------------------------------------------


def _when(ms: int) -> str:
    if not ms:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bytes(n: float | None) -> str:
    if n is None:
        return "?"
    value, units = float(n), ("B", "KiB", "MiB", "GiB", "TiB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.0f} {units[unit]}" if unit == 0 else f"{value:.1f} {units[unit]}"


def render(summary: dict[str, Any], source: str) -> str:
    """The status as a few lines: counts first, then peers, the largest transfers, errors."""
    store = summary.get("store") or {}
    totals = summary.get("totals") or {}
    rates = summary.get("rates") or {}
    peers = summary.get("peers") or []
    transfers = summary.get("transfers") or []
    failures = summary.get("failures") or {}
    endpoint = str(summary.get("endpoint_id") or "")
    lines = [f"agent {endpoint[:12] or '?'}: {source}"]
    if "running agent" in source:
        reachable = "answers" if store.get("reachable") else "DOES NOT ANSWER"
        lines.append(
            f"store {store.get('url', '?')} {reachable}; sessions {summary.get('sessions', 0)}; "
            f"in {_bytes(rates.get('bytes_in_per_s', 0))}/s, out {_bytes(rates.get('bytes_out_per_s', 0))}/s"
        )
    events = (summary.get("journal") or {}).get("events", 0)
    lines.append(f"local assets {totals.get('local_assets', 0)}; journal events {events}")
    links: dict[str, int] = {}
    for peer in peers:
        links[str(peer.get("link"))] = links.get(str(peer.get("link")), 0) + 1
    paused = sum(1 for p in peers if p.get("paused"))
    counts = ", ".join(f"{n} {link}" for link, n in sorted(links.items()))
    lines.append(f"peers {len(peers)}" + (f" ({counts}{f', {paused} paused' if paused else ''})" if peers else ""))
    for peer in peers[:PEERS_SHOWN]:
        via = ",".join(peer.get("found_via") or []) or "-"
        state = str(peer.get("link")) + (" paused" if peer.get("paused") else "")
        lines.append(
            f"  {str(peer.get('id'))[:12]}  {state:<15} via {via:<9} last sync {_when(peer.get('last_sync_ms', 0))}  "
            f"in {_bytes(peer.get('bytes_in'))} ({peer.get('assets_in', 0)})  "
            f"out {_bytes(peer.get('bytes_out'))} ({peer.get('assets_out', 0)})  "
            f"we owe {peer.get('owed', 0)}, it owes {peer.get('wanted', 0)}"
        )
    if len(peers) > PEERS_SHOWN:
        lines.append(f"  ... and {len(peers) - PEERS_SHOWN} more (--json lists them all)")
    incoming = sum(1 for t in transfers if t.get("direction") == "in")
    lines.append(f"in flight {len(transfers)} ({incoming} in, {len(transfers) - incoming} out)")
    largest = sorted(transfers, key=lambda t: t.get("size") or 0, reverse=True)[:LARGEST_SHOWN]
    for move in largest:
        size = move.get("size")
        progress = f"{100 * (move.get('offset') or 0) / size:5.1f}%" if size else "    ?"
        arrow, whom = ("<-", "from") if move.get("direction") == "in" else ("->", "to")
        lines.append(
            f"  {arrow} {str(move.get('hash'))[:12]} {whom} {str(move.get('peer'))[:12]}  "
            f"{str(move.get('status')):<12} {progress} of {_bytes(size)}"
        )
    if len(transfers) > len(largest):
        lines.append(f"  ... the {len(largest)} largest of {len(transfers)} shown")
    lines.append(
        f"owed: we owe peers {totals.get('owed', 0)}, peers owe us {totals.get('wanted', 0)}; "
        f"being stored {totals.get('storing', 0)}"
    )
    if any(failures.values()):
        lines.append("failures: " + ", ".join(f"{fault} {n}" for fault, n in sorted(failures.items())))
    errors = summary.get("errors") or []
    for error in errors[-ERRORS_SHOWN:]:
        lines.append(f"error {_when(error.get('time_ms', 0))}: {error.get('message', '')}")
    return "\n".join(lines)
