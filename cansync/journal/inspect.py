"""The audit queries behind `cansync journal inspect`: which peer sent what, when, and was it verified.

They read through a JournalReader (stdlib sqlite3, read-only): the command answers in milliseconds
without SQLAlchemy, alembic or an event loop, however long the journal.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cansync.core.events import Event, EventKind
from cansync.journal.errors import JournalError
from cansync.journal.reader import JournalReader

_TRANSFER_OUTCOMES = frozenset({EventKind.TRANSFER_COMPLETED, EventKind.ASSET_RECEIVED})


class AmbiguousPrefix(JournalError):
    """A --peer or --hash prefix that matches no value, or more than one."""


@dataclass(frozen=True, slots=True)
class InspectRow:
    """One event as the audit shows it. direction/size/verified are set for transfer outcomes.

    `verified` speaks only of incoming assets (we re-hashed what arrived); an outgoing transfer is
    never verified by us, so it has None there and reads "sent" in `outcome`.
    """

    seq: int
    time_ms: int
    kind: str
    peer: str | None
    hash: str | None
    direction: str | None
    size: int | None
    verified: bool | None
    data: dict[str, Any]

    @property
    def time_iso(self) -> str:
        return format_time(self.time_ms)

    @property
    def outcome(self) -> str | None:
        """ "sent" for an outgoing completion, "verified" / "NOT VERIFIED" for an incoming one, else None."""
        return transfer_outcome(self.kind, self.direction, self.verified)

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time_iso, "outcome": self.outcome, **asdict(self)}


def transfer_outcome(kind: str, direction: str | None, verified: bool | None) -> str | None:
    if kind not in _TRANSFER_OUTCOMES:
        return None
    if direction == "out":
        return "sent"
    return "verified" if verified else "NOT VERIFIED"


def format_time(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resolve_prefix(reader: JournalReader, column: Literal["peer", "hash"], prefix: str) -> str:
    """The one peer id or asset hash in the journal that starts with `prefix` (ids are lower-case hex)."""
    wanted = prefix.strip().lower()
    matches = reader.match_prefix(column, wanted, limit=2)
    if wanted in matches:
        return wanted
    if not matches:
        raise AmbiguousPrefix(f"{reader.path}: no event names a {column} starting with {prefix!r}")
    if len(matches) > 1:
        raise AmbiguousPrefix(
            f"{reader.path}: {column} prefix {prefix!r} matches several "
            f"({', '.join(m[:16] for m in matches)}, ...); give more characters"
        )
    return matches[0]


def inspect_rows(
    reader: JournalReader,
    *,
    peer: str | None = None,
    hash: str | None = None,
    kinds: Collection[str] | None = None,
    since_time_ms: int | None = None,
) -> Iterator[InspectRow]:
    """The filtered events, oldest first, each with its transfer outcome spelled out."""
    for event in reader.read(peer=peer, hash=hash, kinds=kinds, since_time_ms=since_time_ms):
        yield _row(reader, event)


def _row(reader: JournalReader, event: Event) -> InspectRow:
    data = dict(event.data)
    direction = size = verified = None
    if event.kind in _TRANSFER_OUTCOMES:
        if event.kind is EventKind.TRANSFER_COMPLETED:
            direction = data.get("direction")
            verified = bool(data.get("verified", False)) if direction == "in" else None
            size = _int_or_none(data.get("size"))
        else:
            # the received-from-peer mark: the asset came in from the peer and was verified into our store
            direction, verified = "in", True
            size = _int_or_none(data.get("size"))
            if size is None:
                size = _received_size(reader, event)
    elif "direction" in data:
        direction = data.get("direction")
    return InspectRow(
        event.seq, event.time_ms, str(event.kind), event.peer, event.hash, direction, size, verified, data
    )


def _received_size(reader: JournalReader, event: Event) -> int | None:
    """The size of the incoming transfer that delivered this asset from this peer (the last before it)."""
    size = None
    for done in reader.read(peer=event.peer, hash=event.hash, kinds=[EventKind.TRANSFER_COMPLETED]):
        if done.seq > event.seq:
            break
        if done.data.get("direction") == "in":
            size = _int_or_none(done.data.get("size"))
    return size


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
