"""A journal in a list and a machine: the ledger's rule without the disk, for pure tests.

`record` journals events (giving each the next seq, and a time that is its seq unless `now` is set),
folds them, then journals and folds what the machine decides in consequence (requests, lost metadata
changes) until it decides nothing more, exactly as cansync.agent.ledger does; it returns every
command to carry out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cansync.core.commands import Command
from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState


@dataclass
class Node:
    name: str
    state: SyncState = field(default_factory=SyncState)
    journal: list[Event] = field(default_factory=list)
    now: int | None = None  # ms; None: each event's time is its seq

    def clock(self) -> int:
        return self.now if self.now is not None else len(self.journal)

    def record(self, *events: Event) -> list[Command]:
        return self._settle(list(events), [])

    def tick(self) -> list[Command]:
        """Time passed: what the machine decides with no new event (deferred requests, pushes to retry)."""
        return self._settle([], self.state.store_retries(self.clock()))

    def _settle(self, pending: list[Event], carry_out: list[Command]) -> list[Command]:
        if not pending:
            pending, ready = self.state.decide([], self.clock())
            carry_out = carry_out + ready
        while pending:
            commands: list[Command] = []
            for event in pending:
                seq = len(self.journal) + 1
                stamped = event.journaled(seq, self.now if self.now is not None else seq)
                self.journal.append(stamped)
                commands.extend(self.state.apply(stamped))
            pending, ready = self.state.decide(commands, self.clock())
            carry_out.extend(ready)
        return carry_out

    def requested(self) -> dict[str, list[str]]:
        """Incoming requests journaled so far, per asset, in order (the peers asked)."""
        asked: dict[str, list[str]] = {}
        for event in self.journal:
            if event.kind is EventKind.TRANSFER_REQUESTED and event.data.get("direction") == "in":
                assert event.hash is not None and event.peer is not None
                asked.setdefault(event.hash, []).append(event.peer)
        return asked

    def active_incoming(self) -> dict[str, set[str]]:
        """Per asset, the peers whose incoming transfer of it is in flight."""
        active: dict[str, set[str]] = {}
        for peer, state in self.state.peers.items():
            for asset, transfer in state.incoming.items():
                if transfer.status.active:
                    active.setdefault(asset, set()).add(peer)
        return active
