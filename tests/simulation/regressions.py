"""The bugs the deterministic simulation found, each with a seed that showed it.

tests/simulation/test_simulation.py replays every seed (it must pass) and replays it again with the fix
undone (`undo_fix`, through pytest's monkeypatch), where the named check must fail: the seed still
reaches the spot where the bug bit. Seeds are of the small (CI) profile unless `small` is False; replay
one with `.venv/bin/python bench/simulate.py --replay SEED --small`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cansync.agent import local_feed, metadata_writer, peer_directory, runtime
from cansync.can.errors import CanServiceError
from cansync.core import machine, protocol
from cansync.core.faults import Failure
from cansync.net import endpoint, streams


@dataclass(frozen=True)
class Regression:
    seed: int
    check: str  # the check that caught it ("harness": the run itself could not finish)
    bug: str
    fix: str  # where, and what changed
    undo_fix: Callable[[Any], None]
    small: bool = True
    agents: int | None = None


def _asyncio_wait_for(monkeypatch: Any) -> None:
    for module in (streams, endpoint, runtime, peer_directory, local_feed):
        monkeypatch.setattr(module, "wait_for", asyncio.wait_for)


def _drop_failed_metadata(monkeypatch: Any) -> None:
    async def run(self: metadata_writer.MetadataWriter) -> None:  # the writer as it was: one try per change
        while True:
            command = await self.queue.get()
            try:
                await self.can.update_meta(metadata_writer.meta_update(command.hash, command.value))
            except CanServiceError:
                pass

    monkeypatch.setattr(metadata_writer.MetadataWriter, "run", run)


def _no_pardon(monkeypatch: Any) -> None:
    monkeypatch.setattr(machine, "STRIKE_PARDON_MS", 1 << 62)


def _trouble_is_a_lie(monkeypatch: Any) -> None:
    def unavailable(self: protocol.PeerProtocol, message: Any, state: Any) -> list[Any]:
        transfer = state.peer(self.peer).incoming.get(message.hash)
        if transfer is None or not transfer.status.active or transfer.request_id != message.request_id:
            return []
        return self.incoming_failed(message.hash, Failure.UNAVAILABLE, f"peer cannot serve it: {message.reason}")

    monkeypatch.setattr(protocol.PeerProtocol, "unavailable", unavailable)


def _answer_before_journaling(monkeypatch: Any) -> None:
    async def nothing(self: runtime.Agent) -> None:
        return None

    monkeypatch.setattr(runtime.Agent, "journal_local_store", nothing)


REGRESSIONS: list[Regression] = [
    Regression(
        seed=56,
        small=False,
        check="union",
        bug=(
            "three wrong-byte failures from one peer (its store corrupted an asset for a while) struck it out "
            "for that asset for the rest of the session; it was the only holder, sessions last for days, and "
            "the asset never arrived after the store healed"
        ),
        fix=(
            "cansync/core/machine.py STRIKE_PARDON_MS: a struck-out peer is asked again 60 s after its last "
            "strike (Transfer.struck_ms in cansync/core/peer_state.py, appended to its snapshot record)"
        ),
        undo_fix=_no_pardon,
    ),
    Regression(
        seed=27,
        check="harness",
        bug=(
            "Python 3.11's asyncio.wait_for swallows a cancellation that lands as the awaited write finishes: "
            "a session's outbox task ran on after its TaskGroup cancelled it, the session never ended, the "
            "connection replacing it waited for it forever, and the agent could not stop (the run deadlocks)"
        ),
        fix=(
            "cansync/portable/timeouts.py: wait_for on asyncio.timeout (3.12's semantics); used in "
            "net/streams.py, net/endpoint.py, agent/runtime.py, agent/peer_directory.py, agent/local_feed.py"
        ),
        undo_fix=_asyncio_wait_for,
    ),
    Regression(
        seed=20,
        check="last_write_wins",
        bug=(
            "a winning metadata change that arrived while our store was down was logged and dropped; on a "
            "quiet mesh nothing brought it back, and that store showed the losing value for good"
        ),
        fix="cansync/agent/metadata_writer.py: a change the store could not take (down, 5xx) is retried every 2 s",
        undo_fix=_drop_failed_metadata,
    ),
    Regression(
        seed=6,
        check="fair_blame",
        bug=(
            "a peer whose own store was down (or whose stream broke) answered AssetUnavailable and was charged "
            "a strike as if its advert were a lie; three, and it was never asked again in that session"
        ),
        fix=(
            "proto/peer.proto AssetUnavailable.transient, core/messages.py, wire/peer_messages.py, "
            "core/protocol.py (send_unavailable(transient=), unavailable), core/faults.py Failure.PEER_TROUBLE "
            "(fault link, deferred), agent/session.py (store errors and broken streams say transient)"
        ),
        undo_fix=_trouble_is_a_lie,
    ),
    Regression(
        seed=44,
        check="never_echoed",
        bug=(
            "a digest answer was read from our store while our journal lagged it (the feed had not caught up "
            "after a store outage): the peer learned of an asset our machine did not know was ours, passed it "
            "on, and it came back to us, downloaded from a peer into the store it started in"
        ),
        fix=(
            "cansync/agent/session.py _answer_digests: journal our store first when the answer names an asset "
            "the journal lacks (SessionHost.journal_local_store, cansync/agent/runtime.py)"
        ),
        undo_fix=_answer_before_journaling,
    ),
]
