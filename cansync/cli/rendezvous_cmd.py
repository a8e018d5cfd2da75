"""`cansync rendezvous`: what the pkarr relays hold in the 8 rendezvous slots of a passphrase.

The passphrase comes from --passphrase, CANSYNC_SYNC_PASSPHRASE or the config file, and is never printed.
With no relay configured it still prints the 8 slot keys (they need none) and says no relay was read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from cansync.cli.config_args import add_config_arguments, config_from_args

if TYPE_CHECKING:
    from cansync.discovery.rendezvous import RelaySlotAnswer, SlotReport

# The rendezvous (httpx, the pkarr codec) is imported inside run(): every `cansync` command builds this
# parser, and `cansync status` answers in under 200 ms only if none pays for the others' imports.

EXIT_NO_RELAY_ANSWERED = 1
NO_RELAY_NOTE = "no pkarr relay configured, so no relay was read (pass --relay URL or set pkarr_relays)"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "rendezvous",
        help="the pkarr rendezvous slots for a passphrase",
        description="Show, for each of the 8 rendezvous slots of the passphrase, its public key and what "
        "each pkarr relay holds there (endpoint id and record age). The passphrase is never printed.",
    )
    add_config_arguments(parser)  # brings --passphrase and -c config.yaml (for pkarr_relays)
    parser.add_argument(
        "--relay",
        dest="pkarr_relay",
        action="append",
        metavar="URL",
        help="a pkarr relay to ask (repeatable); default: pkarr_relays from the config",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each relay (default 5)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cansync.discovery.rendezvous import SlotReport, resolve_slots, slot_keys

    config = config_from_args(args)
    passphrase = config.require_passphrase()
    relays = tuple(args.pkarr_relay or config.pkarr_relays)
    for relay in relays:
        if not relay.startswith(("http://", "https://")):
            print(f"cansync rendezvous: --relay {relay!r} is not an http(s) URL", file=sys.stderr)
            return 2
    if not relays:
        # the slot keys come from the passphrase alone: show them, and say that nothing was asked
        keys_only = [SlotReport(key.index, key.z32, ()) for key in slot_keys(passphrase)]
        if args.json:
            print(
                json.dumps({"relays": [], "note": NO_RELAY_NOTE, "slots": [_slot_json(r) for r in keys_only]}, indent=2)
            )
        else:
            _print_table(relays, keys_only)
        print(f"cansync rendezvous: {NO_RELAY_NOTE}", file=sys.stderr)
        return 0
    reports = asyncio.run(resolve_slots(passphrase, relays, request_timeout=args.timeout))
    if args.json:
        print(json.dumps({"relays": list(relays), "slots": [_slot_json(r) for r in reports]}, indent=2))
    else:
        _print_table(relays, reports)
    answered = any(a.status not in ("unreachable", "rate_limited") for r in reports for a in r.answers)
    return 0 if answered else EXIT_NO_RELAY_ANSWERED


def _slot_json(report: SlotReport) -> dict[str, Any]:
    return {
        "index": report.index,
        "public_key": report.public_key_z32,
        "relays": [
            {
                "relay": a.relay,
                "status": a.status,
                "http_status": a.http_status,
                "endpoint_id": a.endpoint_id,
                "age_seconds": None if a.age_seconds is None else round(a.age_seconds, 3),
                "fresh": a.fresh,
                "detail": a.detail,
            }
            for a in report.answers
        ],
    }


def _describe(answer: RelaySlotAnswer) -> str:
    age = "" if answer.age_seconds is None else f", {_format_age(answer.age_seconds)} old"
    stale = "" if answer.fresh in (None, True) else ", stale"
    if answer.status == "found":
        return f"{answer.endpoint_id}{age}{stale}"
    if answer.status == "empty":
        return "empty (404)" if answer.http_status == 404 else f"empty (HTTP {answer.http_status})"
    if answer.status == "squatted":
        return f"not a can-sync id: {answer.detail[:60]!r}{age}{stale}"
    if answer.status == "unreachable":
        return f"unreachable: {answer.detail}" if answer.detail else "unreachable"
    code = f"HTTP {answer.http_status}" if answer.http_status is not None else ""
    return f"{answer.status}: {' '.join(p for p in (code, answer.detail) if p)}"


def _format_age(seconds: float) -> str:
    if seconds < 0:
        return f"{-seconds:.0f} s in the future"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_table(relays: tuple[str, ...], reports: list[SlotReport]) -> None:
    if relays:
        print(f"rendezvous slots for the configured passphrase, asked of {len(relays)} relay(s)")
    else:
        print(f"rendezvous slots for the configured passphrase; {NO_RELAY_NOTE}")
    for report in reports:
        print(f"slot {report.index}  pk:{report.public_key_z32}")
        for answer in report.answers:
            print(f"    {answer.relay}: {_describe(answer)}")
