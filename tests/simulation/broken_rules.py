"""For each check of a simulated run, a rule of the agent broken on purpose and a seed on which the check
catches it: a check that no broken rule can make fail would prove nothing.

Each `apply` takes pytest's monkeypatch (anything with its `setattr` and `setitem`), so the break is
undone after the test.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cansync.agent import runtime
from cansync.core import faults, machine
from cansync.core.events import Fault
from cansync.core.faults import Failure, Verdict
from cansync.core.metadata import MetaValue
from cansync.journal import recorder


@dataclass(frozen=True)
class BrokenRule:
    check: str  # the check (cansync.simulation.checks.CHECKS) that must fail
    seed: int  # a seed of the small (CI) profile on which it does
    what: str
    apply: Callable[[Any], None]
    small: bool = True  # the seed's profile (False: the full one of bench/simulate.py)


def _request_nothing(monkeypatch: Any) -> None:
    monkeypatch.setattr(machine.SyncState, "plan", lambda self, now_ms: [])


def _ask_every_holder(monkeypatch: Any) -> None:
    # "at most one incoming transfer per asset across all peers" forgotten: an asset in flight from one
    # peer is asked of the next as well
    monkeypatch.setattr(machine.SyncState, "claimed", lambda self, asset: False)


def _tell_before_journaling(monkeypatch: Any) -> None:
    # a digest answer straight from our store, ahead of our journal: a peer is told of an asset our machine
    # does not yet know is ours, passes it on, and it comes back to us
    async def nothing(self: runtime.Agent) -> None:
        return None

    monkeypatch.setattr(runtime.Agent, "journal_local_store", nothing)


def _blame_the_link_on_the_peer(monkeypatch: Any) -> None:
    for failure in (Failure.LINK_LOST, Failure.STALLED, Failure.PEER_TROUBLE):
        monkeypatch.setitem(faults._VERDICTS, failure, Verdict(Fault.PEER, False, "transfer", False))


def _chain_a_wrong_digest(monkeypatch: Any) -> None:
    honest = recorder.event_digest

    def digest(prev: bytes, seq: int, time_ms: int, kind: str, *rest: Any) -> bytes:
        value = honest(prev, seq, time_ms, kind, *rest)
        writing = sys._getframe(1).f_code.co_name == "_write_group"  # verify still computes it right
        return bytes(32) if writing and kind == "asset_received" else value

    monkeypatch.setattr(recorder, "event_digest", digest)


def _first_write_wins(monkeypatch: Any) -> None:
    def beats(self: MetaValue, other: MetaValue | None) -> bool:
        return other is None or (self.updated_ms, self.origin) < (other.updated_ms, other.origin)

    monkeypatch.setattr(MetaValue, "beats", beats)


BROKEN_RULES: dict[str, BrokenRule] = {
    rule.check: rule
    for rule in (
        BrokenRule("union", 1, "the machine plans no request", _request_nothing),
        BrokenRule("received_once", 60, "an asset in flight is asked of every holder", _ask_every_holder, small=False),
        BrokenRule("never_echoed", 44, "answers tell of assets before the journal knows them", _tell_before_journaling),
        BrokenRule("fair_blame", 6, "a cut link or a peer's own trouble is charged to it", _blame_the_link_on_the_peer),
        BrokenRule("journal_verifies", 1, "asset_received events get a wrong chain digest", _chain_a_wrong_digest),
        BrokenRule("last_write_wins", 7, "the earlier metadata write wins", _first_write_wins),
    )
}
