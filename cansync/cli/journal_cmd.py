"""`cansync journal`: inspect (the audit), verify (the hash chain), replay (the derived state)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from cansync.cli.config_args import add_config_arguments, config_from_args
from cansync.core.events import EventKind

if TYPE_CHECKING:
    from cansync.journal.inspect import InspectRow
    from cansync.journal.reader import JournalReader
    from cansync.journal.recorder import Journal

# The journal modules are imported inside the handlers: every `cansync` command builds this parser, and
# none but `cansync journal verify | replay` should pay ~0.3 s of SQLAlchemy and alembic imports for it.
# inspect reads through cansync.journal.reader (stdlib sqlite3, read-only, no event loop): it answers
# in tens of milliseconds on a journal of millions of events.

EXIT_OK, EXIT_BAD_CHAIN, EXIT_ERROR = 0, 1, 2
_ID_WIDTH = 12  # ids are shown shortened in tables; any unique prefix works as a filter
_DETAIL_WIDTH = 80


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("journal", help="the event journal: inspect, verify, replay")
    actions = parser.add_subparsers(dest="journal_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    inspect = actions.add_parser("inspect", help="list events: which peer sent what, when, and was it verified")
    add_config_arguments(inspect)
    inspect.add_argument("--peer", metavar="ID", help="only this peer (a unique prefix of its endpoint id)")
    inspect.add_argument("--hash", metavar="H", help="only this asset (a unique prefix of its hash)")
    inspect.add_argument(
        "--kind",
        metavar="K",
        action="append",
        choices=[k.value for k in EventKind],
        help="only events of this kind (repeatable): " + ", ".join(k.value for k in EventKind),
    )
    inspect.add_argument(
        "--since",
        metavar="T",
        help="only events from T on: ISO-8601 time, epoch ms, or a duration ago (90s, 2h, 3d)",
    )
    inspect.add_argument("--json", action="store_true", help="one JSON object per line, full ids and data")
    inspect.set_defaults(func=_run_inspect, logs=False)  # nothing on its path logs: no logging set-up

    verify = actions.add_parser("verify", help="walk the hash chain: prove no event was edited or dropped")
    add_config_arguments(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=lambda args: _run(args, _verify))

    replay = actions.add_parser("replay", help="rebuild the per-peer sync state from the events and show it")
    add_config_arguments(replay)
    replay.add_argument("--json", action="store_true", help="print the state as JSON")
    replay.add_argument("--no-snapshot", action="store_true", help="fold every event from the start")
    replay.set_defaults(func=lambda args: _run(args, _replay))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_ERROR


def _run(args: argparse.Namespace, action: Callable[[Journal, argparse.Namespace], Awaitable[int]]) -> int:
    """Run `action` on the journal opened by the recorder (verify, replay)."""

    def run_on(path: Path) -> int:
        import asyncio

        return asyncio.run(_with_journal(path, args, action))

    return _on_journal_file(args, run_on)


def _run_inspect(args: argparse.Namespace) -> int:
    """inspect reads the journal file read-only, without the recorder (and its migration check)."""

    def inspect_file(path: Path) -> int:
        from cansync.journal.reader import JournalReader

        with JournalReader.open(path) as reader:
            return _inspect(reader, args)

    return _on_journal_file(args, inspect_file)


def _on_journal_file(args: argparse.Namespace, action: Callable[[Path], int]) -> int:
    """`action` on the configured journal file; a missing file or a JournalError is a message and exit 2."""
    path = config_from_args(args).journal_path
    if not path.is_file():
        print(
            f"cansync journal: no journal at {path}: the agent writes it under data_dir; "
            "pass the agent's -c config.yaml or --data-dir",
            file=sys.stderr,
        )
        return EXIT_ERROR
    from cansync.journal.errors import JournalError

    try:
        return action(path)
    except JournalError as exc:
        print(f"cansync journal: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `cansync journal inspect | head`
        sys.stderr.close()
        return EXIT_OK


async def _with_journal(
    path: Path, args: argparse.Namespace, action: Callable[[Journal, argparse.Namespace], Awaitable[int]]
) -> int:
    from cansync.journal.recorder import Journal

    journal = await Journal.open(path)
    try:
        return await action(journal, args)
    finally:
        await journal.close()


# -- inspect ------------------------------------------------------------------------------------


def _inspect(reader: JournalReader, args: argparse.Namespace) -> int:
    from cansync.journal.inspect import inspect_rows, resolve_prefix
    from cansync.journal.since import parse_since

    since_ms = None
    if args.since is not None:
        try:
            since_ms = parse_since(args.since, time.time_ns() // 1_000_000)
        except ValueError as exc:
            print(f"cansync journal inspect: {exc}", file=sys.stderr)
            return EXIT_ERROR
    peer = resolve_prefix(reader, "peer", args.peer) if args.peer is not None else None
    hash_ = resolve_prefix(reader, "hash", args.hash) if args.hash is not None else None
    out = sys.stdout
    rows = inspect_rows(reader, peer=peer, hash=hash_, kinds=args.kind, since_time_ms=since_ms)
    if args.json:
        for row in rows:
            out.write(json.dumps(row.to_json(), sort_keys=True) + "\n")
        return EXIT_OK
    count = 0
    _write_header(out)
    for row in rows:
        _write_row(out, row)
        count += 1
    print(f"{count} event(s)", file=sys.stderr)
    return EXIT_OK


# OUTCOME: "sent" for what we sent (the receiver verifies it, not us), "verified" / "NOT VERIFIED" for
# what we received
_COLUMNS = ("SEQ", "TIME (UTC)", "KIND", "PEER", "HASH", "DIR", "SIZE", "OUTCOME", "DETAILS")
_FORMAT = "{:>8}  {:<24}  {:<21}  {:<12}  {:<12}  {:<3}  {:>10}  {:<12}  {}\n"


def _write_header(out: TextIO) -> None:
    out.write(_FORMAT.format(*_COLUMNS))


def _write_row(out: TextIO, row: InspectRow) -> None:
    details = {k: v for k, v in row.data.items() if k not in ("direction", "size", "verified")}
    out.write(
        _FORMAT.format(
            row.seq,
            row.time_iso,
            row.kind,
            (row.peer or "-")[:_ID_WIDTH],
            (row.hash or "-")[:_ID_WIDTH],
            row.direction or "-",
            "-" if row.size is None else row.size,
            row.outcome or "-",
            _summarise(details),
        )
    )


def _summarise(details: dict[str, Any]) -> str:
    """A one-line view of an event's other data: long lists become counts, long text is cut."""
    parts = []
    for key, value in sorted(details.items()):
        if isinstance(value, list | tuple) and len(value) > 3:
            shown = f"[{len(value)} items]"
        else:
            shown = json.dumps(value, separators=(",", ":"))
        parts.append(f"{key}={shown}")
    text = " ".join(parts)
    return text if len(text) <= _DETAIL_WIDTH else text[: _DETAIL_WIDTH - 3] + "..."


# -- verify -------------------------------------------------------------------------------------


async def _verify(journal: Journal, args: argparse.Namespace) -> int:
    report = await journal.verify()
    if args.json:
        print(json.dumps({"journal": str(journal.path), **asdict(report)}, sort_keys=True))
    elif report.ok:
        print(f"ok: {report.checked} events")
    else:
        print(
            f"BAD: event {report.first_bad_seq}: {report.reason} "
            f"({report.checked} event(s) before it check out) in {journal.path}"
        )
    return EXIT_OK if report.ok else EXIT_BAD_CHAIN


# -- replay -------------------------------------------------------------------------------------


async def _replay(journal: Journal, args: argparse.Namespace) -> int:
    from cansync.journal.replay import rebuild_state

    snapshot = None if args.no_snapshot else await _snapshot_seq(journal)
    state, last_seq = await rebuild_state(journal, use_snapshot=not args.no_snapshot)
    summary = state.describe()
    source = "every event" if snapshot is None else f"the snapshot at seq {snapshot} and the events after it"
    if args.json:
        print(json.dumps({"journal": str(journal.path), "folded_to_seq": last_seq, "state": summary}, sort_keys=True))
        return EXIT_OK
    print(f"journal {journal.path}: folded to seq {last_seq} from {source}")
    peers = summary.get("peers", {})
    rest = {k: v for k, v in summary.items() if k != "peers"}
    print(yaml.safe_dump(rest, sort_keys=True, default_flow_style=False).rstrip())
    if not peers:
        print("peers: none")
    for peer, described in peers.items():
        print(f"peer {peer}:")
        print("  " + yaml.safe_dump(described, sort_keys=True, default_flow_style=False).rstrip().replace("\n", "\n  "))
    return EXIT_OK


async def _snapshot_seq(journal: Journal) -> int | None:
    from cansync.journal.errors import JournalError

    try:
        snapshot = await journal.load_snapshot()
    except JournalError:
        return None  # rebuild_state passes over it too
    return None if snapshot is None else snapshot[0]
