"""What every simulated run must end with, judged from the stores and the journals the run left.

Each check returns the failures it found (empty when it holds). The rogue agent, when there is one, is
judged by nobody: its store is left out of the union and its journal out of the counts, but what the
honest agents did about it is judged like everything else.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cansync.core.events import Event, EventKind
from cansync.journal.reader import JournalReader

if TYPE_CHECKING:
    from cansync.simulation.harness import MetaEdit, Node, RunRecord


@dataclass(frozen=True)
class CheckFailure:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


def _events(path: Path, *kinds: EventKind) -> list[Event]:
    if not path.exists():
        return []
    with JournalReader.open(path) as reader:
        return list(reader.read(kinds=[k.value for k in kinds]))


def _journal(node: Node) -> Path:
    return node.data_dir / "journal.db"


def _honest(record: RunRecord) -> list[Node]:
    return [n for n in record.nodes if n.honest]


def union_held(record: RunRecord) -> list[CheckFailure]:
    """Every honest store holds every asset an honest user added, and the bytes are right."""
    union = {asset for asset, who in record.origins.items() if any(record.nodes[i].honest for i in who)}
    failures = []
    for node in _honest(record):
        holdings = node.store.holdings()
        missing = sorted(union - set(holdings))
        if missing:
            failures.append(CheckFailure("union", f"{node.name} lacks {[h[:12] for h in missing]}"))
        wrong = sorted(h for h, content in holdings.items() if _sha256(content) != h)
        if wrong:
            failures.append(CheckFailure("union", f"{node.name} holds wrong bytes for {[h[:12] for h in wrong]}"))
    if not failures and record.converged_ms is None:
        failures.append(CheckFailure("union", "the stores never agreed (metadata?) before the settle time ran out"))
    return failures


def received_once(record: RunRecord) -> list[CheckFailure]:
    """An asset is received (verified and stored) at most once by each receiver."""
    failures = []
    for node in _honest(record):
        counts = Counter(e.hash or "" for e in _events(_journal(node), EventKind.ASSET_RECEIVED))
        twice = sorted((h, n) for h, n in counts.items() if n > 1)
        if twice:
            shown = [f"{h[:12]} x{n}" for h, n in twice]
            failures.append(CheckFailure("received_once", f"{node.name} received {shown}"))
    return failures


def never_echoed(record: RunRecord) -> list[CheckFailure]:
    """No asset goes back where it came from: its origin never receives it, and a receiver never sends
    it back to the peer it came from (nor receives it again from a peer it gave it to)."""
    failures = []
    ids = {n.endpoint_id: n for n in record.nodes}
    received: dict[str, list[Event]] = {}
    sent: dict[str, set[tuple[str | None, str | None]]] = {}
    for node in record.nodes:
        path = _journal(node)
        received[node.name] = _events(path, EventKind.ASSET_RECEIVED)
        sent[node.name] = {
            (e.peer, e.hash) for e in _events(path, EventKind.TRANSFER_COMPLETED) if e.data.get("direction") == "out"
        }
    for node in _honest(record):
        for event in received[node.name]:
            asset, source = event.hash or "", ids.get(event.peer or "")
            if node.index in record.origins.get(asset, set()):
                failures.append(CheckFailure("never_echoed", f"{node.name} received its own {asset[:12]}"))
            if source is None or not source.honest:
                continue
            if (source.endpoint_id, asset) in sent[node.name]:
                failures.append(
                    CheckFailure("never_echoed", f"{node.name} sent {asset[:12]} back to {source.name}, its sender")
                )
            if any(e.hash == asset and e.peer == node.endpoint_id for e in received[source.name]):
                failures.append(
                    CheckFailure("never_echoed", f"{asset[:12]} went {source.name} -> {node.name} -> {source.name}")
                )
    return failures


def fair_blame(record: RunRecord) -> list[CheckFailure]:
    """A failed transfer is charged to the peer (fault "peer") only when its bytes or answers were
    wrong: the rogue, or a peer whose store corrupted that asset on a pull."""
    failures = []
    ids = {n.endpoint_id: n for n in record.nodes}
    for node in _honest(record):
        for event in _events(_journal(node), EventKind.TRANSFER_FAILED):
            if event.data.get("fault") != "peer" or event.data.get("direction") != "in":
                continue
            peer = ids.get(event.peer or "")
            if peer is None or not peer.honest or (peer.endpoint_id, event.hash) in record.corrupted:
                continue
            reason = str(event.data.get("reason", ""))[:160]
            failures.append(
                CheckFailure(
                    "fair_blame",
                    f"{node.name} charged {peer.name} for {str(event.hash)[:12]} (seq {event.seq}): {reason}",
                )
            )
    return failures


def journals_verify(record: RunRecord) -> list[CheckFailure]:
    """Every journal's hash chain verifies (crashes included)."""
    return [
        CheckFailure("journal_verifies", f"{name}: {reason}")
        for name, (ok, reason) in sorted(record.journal_reports.items())
        if not ok
    ]


def last_write_wins(record: RunRecord) -> list[CheckFailure]:
    """Every honest store shows, for every edited asset, the edit with the latest time (a tie going to the
    larger origin id)."""
    failures = []
    latest: dict[str, MetaEdit] = {}
    for edit in record.edits:
        current = latest.get(edit.hash)
        if current is None or (edit.at_ms, edit.origin) > (current.at_ms, current.origin):
            latest[edit.hash] = edit
    for asset, edit in sorted(latest.items()):
        want = (tuple(edit.tags), edit.description, edit.trashed)
        for node in _honest(record):
            if asset not in node.store.holdings():
                continue  # the union check says so
            meta = node.store.meta_of(asset)
            have = (tuple(meta.tags), meta.description, bool(meta.trashed))
            if have != want:
                failures.append(
                    CheckFailure("last_write_wins", f"{node.name} shows {have} for {asset[:12]}, the last edit {want}")
                )
    return failures


def harness_trouble(record: RunRecord) -> list[CheckFailure]:
    """The run itself went wrong (an agent that could not open, or did not close)."""
    return [CheckFailure("harness", error) for error in record.errors]


CHECKS: dict[str, Callable[[RunRecord], list[CheckFailure]]] = {
    "union": union_held,
    "received_once": received_once,
    "never_echoed": never_echoed,
    "fair_blame": fair_blame,
    "journal_verifies": journals_verify,
    "last_write_wins": last_write_wins,
    "harness": harness_trouble,
}


def judge(record: RunRecord) -> list[CheckFailure]:
    failures: list[CheckFailure] = []
    for check in CHECKS.values():
        failures += check(record)
    return failures


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
