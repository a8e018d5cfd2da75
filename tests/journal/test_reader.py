"""The read-only audit path (JournalReader, no SQLAlchemy, no alembic) against the recorder's.

The reference is the inspect path as it was before the reader: the same queries through the real
Journal (kept below, verbatim but for names). On a journal written by the real Journal, with every
filter `cansync journal inspect` has, both must give the same rows and refuse with the same words.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import create_engine

from alembic import command
from cansync.core.events import Event, EventKind
from cansync.journal.database import alembic_config
from cansync.journal.errors import JournalError
from cansync.journal.inspect import AmbiguousPrefix, InspectRow, inspect_rows, resolve_prefix
from cansync.journal.reader import JournalReader
from cansync.journal.recorder import Journal

from .conftest import asset_hash, file_digest, peer_id, session_events

CANSYNC = Path(sys.executable).parent / "cansync"
START_MS = 1_790_000_000_000
STEP_MS = 250  # the test clock moves this far per group commit


# -- the reference: the inspect path before JournalReader, on the recorder ----------------------------


async def _old_resolve_prefix(journal: Journal, column: Literal["peer", "hash"], prefix: str) -> str:
    wanted = prefix.strip().lower()
    matches = await journal.match_prefix(column, wanted, limit=2)
    if wanted in matches:
        return wanted
    if not matches:
        raise AmbiguousPrefix(f"{journal.path}: no event names a {column} starting with {prefix!r}")
    if len(matches) > 1:
        raise AmbiguousPrefix(
            f"{journal.path}: {column} prefix {prefix!r} matches several "
            f"({', '.join(m[:16] for m in matches)}, ...); give more characters"
        )
    return matches[0]


async def _old_inspect_rows(
    journal: Journal,
    *,
    peer: str | None = None,
    hash: str | None = None,
    kinds: Collection[str] | None = None,
    since_time_ms: int | None = None,
) -> AsyncIterator[InspectRow]:
    async for event in journal.read(peer=peer, hash=hash, kinds=kinds, since_time_ms=since_time_ms):
        yield await _old_row(journal, event)


async def _old_row(journal: Journal, event: Event) -> InspectRow:
    data = dict(event.data)
    direction = size = verified = None
    if event.kind in (EventKind.TRANSFER_COMPLETED, EventKind.ASSET_RECEIVED):
        if event.kind is EventKind.TRANSFER_COMPLETED:
            direction = data.get("direction")
            verified = bool(data.get("verified", False)) if direction == "in" else None
            size = _int_or_none(data.get("size"))
        else:
            direction, verified = "in", True
            size = _int_or_none(data.get("size"))
            if size is None:
                size = await _old_received_size(journal, event)
    elif "direction" in data:
        direction = data.get("direction")
    return InspectRow(
        event.seq, event.time_ms, str(event.kind), event.peer, event.hash, direction, size, verified, data
    )


async def _old_received_size(journal: Journal, event: Event) -> int | None:
    size = None
    async for done in journal.read(peer=event.peer, hash=event.hash, kinds=[EventKind.TRANSFER_COMPLETED]):
        if done.seq > event.seq:
            break
        if done.data.get("direction") == "in":
            size = _int_or_none(done.data.get("size"))
    return size


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- the journal -----------------------------------------------------------------------------------------

# Two assets whose hashes share their first 8 characters, and two peers whose ids share their first 6:
# a short prefix is ambiguous, a longer one is not.
TWIN_HASHES = ("ab12cd34" + asset_hash(901)[8:], "ab12cd34" + asset_hash(902)[8:])
TWIN_PEERS = ("feed01" + peer_id(901)[6:], "feed01" + peer_id(902)[6:])
PEERS = [peer_id(n) for n in range(1, 5)] + list(TWIN_PEERS)


def _history() -> Iterator[list[Event]]:
    """Batches (one group commit each) of what an agent records: sessions with several peers, assets in
    and out, a transfer that failed its check, retries, local assets, digests, pauses."""
    for n, peer in enumerate(PEERS):
        yield session_events(peer, asset_hash(n), size=1000 + n)
    for n in range(40):
        peer, asset = PEERS[n % len(PEERS)], asset_hash(100 + n)
        batch = [
            Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=asset, data={"direction": "in", "offset": 0}),
            Event(EventKind.TRANSFER_STARTED, peer=peer, hash=asset, data={"direction": "in", "offset": 0, "size": n}),
        ]
        if n % 7 == 3:  # a first try that failed its check, then a good one
            batch.append(
                Event(
                    EventKind.TRANSFER_COMPLETED,
                    peer=peer,
                    hash=asset,
                    data={"direction": "in", "size": n + 1, "verified": False, "sent": n + 1},
                )
            )
        batch.append(
            Event(
                EventKind.TRANSFER_COMPLETED,
                peer=peer,
                hash=asset,
                data={"direction": "in", "size": 5000 + n, "verified": True, "sent": 5000 + n},
            )
        )
        received: dict[str, Any] = {"timestamp": 1_700_000_000_000 + n}
        if n % 5 == 0:
            received["size"] = 5000 + n  # newer agents record the size on the mark itself
        batch.append(Event(EventKind.ASSET_RECEIVED, peer=peer, hash=asset, data=received))
        if n % 4 == 0:
            other = PEERS[(n + 1) % len(PEERS)]
            batch += [
                Event(EventKind.TRANSFER_REQUESTED, peer=other, hash=asset, data={"direction": "out"}),
                Event(
                    EventKind.TRANSFER_COMPLETED,
                    peer=other,
                    hash=asset,
                    data={"direction": "out", "size": 5000 + n, "verified": False, "sent": 5000 + n},
                ),
            ]
        if n % 6 == 0:
            batch.append(Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(500 + n), data={"timestamp": n, "size": 9}))
        if n % 9 == 0:
            batch.append(
                Event(EventKind.HASHES_ADVERTISED, peer=peer, data={"hashes": [asset], "watermark": n, "full": False})
            )
        yield batch
    for twin_hash, twin_peer in zip(TWIN_HASHES, TWIN_PEERS, strict=True):
        yield session_events(twin_peer, twin_hash, size=777)
    yield [
        Event(EventKind.PEER_PAUSED, peer=PEERS[0], data={}),
        Event(
            EventKind.TRANSFER_FAILED,
            peer=PEERS[1],
            hash=asset_hash(101),
            data={"direction": "out", "reason": "stream reset", "discard": False},
        ),
        Event(EventKind.PEER_DISCONNECTED, peer=PEERS[1], data={"reason": "bye"}),
    ]


def _stepping_clock() -> Callable[[], int]:
    ticks = iter(range(START_MS, START_MS + 10_000_000, STEP_MS))
    return lambda: next(ticks)


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reader") / "data" / "journal.db"

    async def fill() -> None:
        async with await Journal.open(path, clock=_stepping_clock()) as journal:
            for batch in _history():
                await journal.append(batch)

    asyncio.run(fill())
    return path


# -- the same rows -------------------------------------------------------------------------------------

Filters = dict[str, Any]

# --peer/--hash as typed (a prefix), --kind, --since as epoch ms
CASES: list[Filters] = [
    {},
    {"peer": PEERS[0][:8]},
    {"peer": PEERS[2].upper()},
    {"peer": TWIN_PEERS[1][:7]},
    {"hash": asset_hash(100)[:8]},
    {"hash": asset_hash(103)},
    {"hash": asset_hash(103)[:12], "kinds": ["transfer_completed"]},
    {"hash": TWIN_HASHES[0][:9]},
    {"hash": asset_hash(104)[:8], "peer": PEERS[5][:8]},  # the peer we sent it to
    {"hash": asset_hash(101)[:8], "since_time_ms": START_MS + 20 * STEP_MS},  # only its last event
    {"kinds": ["asset_received"]},
    {"kinds": ["asset_received", "transfer_failed", "peer_paused"]},
    {"kinds": []},
    {"peer": PEERS[3][:8], "kinds": ["transfer_completed", "asset_received"]},
    {"since_time_ms": START_MS + 30 * STEP_MS},
    {"since_time_ms": START_MS},
    {"since_time_ms": START_MS + 10_000 * STEP_MS},
    {"peer": PEERS[0][:8], "since_time_ms": START_MS + 12 * STEP_MS, "kinds": ["asset_received"]},
]


def _new_rows(path: Path, filters: Filters) -> list[InspectRow]:
    with JournalReader.open(path) as reader:
        peer = resolve_prefix(reader, "peer", filters["peer"]) if "peer" in filters else None
        hash_ = resolve_prefix(reader, "hash", filters["hash"]) if "hash" in filters else None
        return list(
            inspect_rows(
                reader, peer=peer, hash=hash_, kinds=filters.get("kinds"), since_time_ms=filters.get("since_time_ms")
            )
        )


async def _old_rows(journal: Journal, filters: Filters) -> list[InspectRow]:
    peer = await _old_resolve_prefix(journal, "peer", filters["peer"]) if "peer" in filters else None
    hash_ = await _old_resolve_prefix(journal, "hash", filters["hash"]) if "hash" in filters else None
    rows = _old_inspect_rows(
        journal, peer=peer, hash=hash_, kinds=filters.get("kinds"), since_time_ms=filters.get("since_time_ms")
    )
    return [row async for row in rows]


async def test_the_reader_gives_the_rows_the_recorder_path_gave(journal_path: Path) -> None:
    new = [_new_rows(journal_path, filters) for filters in CASES]
    async with await Journal.open(journal_path) as journal:
        old = [await _old_rows(journal, filters) for filters in CASES]
    for filters, new_rows, old_rows in zip(CASES, new, old, strict=True):
        assert new_rows == old_rows, filters
    # the cases reach what they are about: sizes looked up for a mark without one, every outcome, ranges
    everything = new[0]
    assert len(everything) > 250 and [r.seq for r in everything] == list(range(1, len(everything) + 1))
    assert {r.outcome for r in everything} == {None, "sent", "verified", "NOT VERIFIED"}
    looked_up = [r for r in everything if r.kind == "asset_received" and "size" not in r.data]
    assert looked_up and all(r.size is not None for r in looked_up)
    assert [len(rows) for rows in new[14:17]] == [len([r for r in everything if r.time_ms >= START_MS + 30 * STEP_MS]),
                                                  len(everything), 0]  # fmt: skip
    assert all(rows for rows in new[1:12]) and new[12] == []


PREFIX_REFUSALS = [("hash", TWIN_HASHES[0][:8]), ("peer", "feed01"), ("peer", "zzzz"), ("hash", ""), ("hash", "0" * 64)]


@pytest.mark.parametrize(("column", "prefix"), PREFIX_REFUSALS)
async def test_an_unknown_or_ambiguous_prefix_is_refused_in_the_same_words(
    journal_path: Path, column: Literal["peer", "hash"], prefix: str
) -> None:
    with JournalReader.open(journal_path) as reader, pytest.raises(AmbiguousPrefix) as new:
        resolve_prefix(reader, column, prefix)
    async with await Journal.open(journal_path) as journal:
        with pytest.raises(AmbiguousPrefix) as old:
            await _old_resolve_prefix(journal, column, prefix)
    assert str(new.value) == str(old.value)
    assert ("matches several" in str(new.value)) == (prefix in (TWIN_HASHES[0][:8], "feed01", ""))


def _planned_indexes(path: Path, action: Callable[[JournalReader], object]) -> list[str]:
    """What SQLite's planner says of each query `action` runs through a reader on `path`."""
    statements: list[str] = []
    with JournalReader.open(path) as reader:
        assert reader._connection is not None
        reader._connection.set_trace_callback(statements.append)
        action(reader)
    plans = []
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        for sql in statements:
            if sql.lstrip().upper().startswith("SELECT"):
                plans.append(" / ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")))
    conn.close()
    return plans


def test_hash_queries_run_on_the_hash_index(journal_path: Path) -> None:
    def by_hash_prefix(reader: JournalReader) -> None:
        list(inspect_rows(reader, hash=resolve_prefix(reader, "hash", asset_hash(111)[:8])))

    plans = _planned_indexes(journal_path, by_hash_prefix)
    # the prefix range, the rows of the asset, the size look-up for its received mark (peer, hash, kind)
    assert len(plans) == 3, plans
    assert plans[0] == "SEARCH events USING COVERING INDEX ix_events_hash_seq (hash>? AND hash<?)"
    assert plans[1:] == ["SEARCH events USING INDEX ix_events_hash_seq (hash=? AND seq>?)"] * 2


def test_peer_and_kind_queries_run_on_their_indexes(journal_path: Path) -> None:
    def by_peer_and_kind(reader: JournalReader) -> None:
        peer = resolve_prefix(reader, "peer", PEERS[0][:8])
        list(reader.read(peer=peer, kinds=["asset_received"]))
        list(reader.read(kinds=["asset_received"]))

    plans = _planned_indexes(journal_path, by_peer_and_kind)
    assert plans == [
        "SEARCH events USING COVERING INDEX ix_events_peer_seq (peer>? AND peer<?)",
        "SEARCH events USING INDEX ix_events_peer_seq (peer=? AND seq>?)",
        "SEARCH events USING INDEX ix_events_kind_seq (kind=? AND seq>?)",
    ]


# -- the command: refusals, read-only, no SQLAlchemy ------------------------------------------------


def cansync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CANSYNC), *args], capture_output=True, text=True, timeout=60)


def _recorder_refusal(path: Path) -> str:
    with pytest.raises(JournalError) as caught:
        asyncio.run(Journal.open(path))
    return str(caught.value)


def _newer_schema(path: Path) -> None:
    async def fill() -> None:
        async with await Journal.open(path) as journal:
            await journal.append(session_events(peer_id(1), asset_hash(1)))

    asyncio.run(fill())
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    conn.close()


def _another_programs_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()


def _no_events_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES ('0002_snapshots_indexes')")
    conn.close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda path: path.write_bytes(b"\x00" * 4096), "is not a SQLite database"),
        (lambda path: path.write_text("hello\n"), "is not a SQLite database"),
        (_another_programs_database, "something else (tables: photos)"),
        (_newer_schema, "0099_from_the_future, which this cansync does not know (it knows up to 0002"),
        (_no_events_table, "has no events table"),
    ],
)
def test_a_file_that_is_not_a_readable_journal_is_refused_as_the_recorder_refuses_it(
    tmp_path: Path, make: Callable[[Path], object], words: str
) -> None:
    path = tmp_path / "journal.db"
    make(path)
    before = file_digest(path)
    result = cansync("journal", "inspect", "--data-dir", str(tmp_path))
    refusal = _recorder_refusal(path)
    assert words in refusal
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"cansync journal: {refusal}\n")
    with pytest.raises(JournalError) as caught:
        JournalReader.open(path)
    assert str(caught.value) == refusal
    assert file_digest(path) == before


_MODULES_AFTER_INSPECT = """
import json, sys
from cansync.cli import main
code = main(sys.argv[2:])
loaded = sorted({name.split(".")[0] for name in sys.modules})
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "loaded": loaded}, out)
"""


@pytest.mark.parametrize("output", [[], ["--json"]])
def test_inspect_imports_neither_sqlalchemy_nor_alembic_and_writes_nothing(
    journal_path: Path, tmp_path: Path, output: list[str]
) -> None:
    before = file_digest(journal_path)
    report = tmp_path / "modules.json"
    args = ["journal", "inspect", "--data-dir", str(journal_path.parent), "--hash", asset_hash(100)[:8], *output]
    result = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER_INSPECT, str(report), *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(report.read_text())
    assert found["code"] == 0 and asset_hash(100)[:12] in result.stdout
    assert "cansync" in found["loaded"] and "sqlite3" in found["loaded"]
    assert {"sqlalchemy", "alembic", "aiosqlite", "asyncio"}.isdisjoint(found["loaded"])
    assert file_digest(journal_path) == before


def test_an_older_revision_is_read_as_it_is_not_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    engine = create_engine(f"sqlite:///{path}")
    cfg = alembic_config()
    with engine.connect() as migrating:
        cfg.attributes["connection"] = migrating
        command.upgrade(cfg, "0001_events")
        migrating.commit()
    engine.dispose()
    with sqlite3.connect(path) as conn:  # the chain is no business of inspect's
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, 'peer_discovered', ?, NULL, '{\"via\":\"lan\"}', '', '')",
            [(seq, START_MS + seq, peer_id(seq)) for seq in (1, 2, 3)],
        )
    conn.close()
    before = file_digest(path)
    result = cansync("journal", "inspect", "--data-dir", str(tmp_path), "--peer", peer_id(2)[:8], "--json")
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert (row["seq"], row["peer"], row["data"]) == (2, peer_id(2), {"via": "lan"})
    assert file_digest(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001_events",)]
    conn.close()


def test_an_empty_file_reads_as_no_events_and_stays_empty(tmp_path: Path) -> None:
    (tmp_path / "journal.db").touch()
    result = cansync("journal", "inspect", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and result.stdout.split()[:2] == ["SEQ", "TIME"] and "0 event(s)" in result.stderr
    unknown = cansync("journal", "inspect", "--data-dir", str(tmp_path), "--hash", "ab")
    assert unknown.returncode == 2 and "no event names a hash starting with 'ab'" in unknown.stderr
    assert (tmp_path / "journal.db").stat().st_size == 0
