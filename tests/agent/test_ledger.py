"""The ledger on a real journal file: one way in, decisions made and journaled in one step, and a writer
that reports every failure to its callers and never stops serving them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from cansync.agent import ledger as ledger_module
from cansync.agent.ledger import Ledger, LedgerError
from cansync.core.commands import Command, RequestAsset
from cansync.core.events import (
    Direction,
    Event,
    EventKind,
    HashesAdvertised,
    LocalAssetSeen,
    PeerAuthenticated,
    TransferRequested,
)
from cansync.core.machine import SyncState
from cansync.journal.recorder import Journal

A, B = "aa" * 32, "bb" * 32
ASSET = "01" * 32


class Dispatched:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    def __call__(self, commands: Sequence[Command]) -> None:
        self.commands.extend(commands)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    journal = await Journal.open(tmp_path / "journal.db")
    yield journal
    await journal.close()


async def open_ledger(journal: Journal, dispatched: Dispatched | None = None) -> Ledger:
    return await Ledger.open(journal, dispatch=dispatched or Dispatched())


async def journal_kinds(journal: Journal, kind: EventKind) -> list[Event]:
    return [e async for e in journal.read(kinds=[kind])]


async def test_record_journals_folds_and_dispatches_what_the_events_imply(journal: Journal):
    dispatched = Dispatched()
    ledger = await open_ledger(journal, dispatched)
    try:
        journaled = await ledger.record(Event.of(PeerAuthenticated(), peer=A))
        assert [e.seq for e in journaled] == [1]
        await ledger.record(Event.of(HashesAdvertised((ASSET,)), peer=A))
        # the request was decided, journaled and folded before record() returned
        requests = await journal_kinds(journal, EventKind.TRANSFER_REQUESTED)
        assert [(e.peer, e.hash, e.data["direction"]) for e in requests] == [(A, ASSET, "in")]
        assert dispatched.commands == [RequestAsset(A, ASSET, 0, requests[0].seq)]
        assert ledger.state.claimed(ASSET)
    finally:
        await ledger.close()


async def test_two_peers_advertising_at_once_lead_to_one_request(journal: Journal):
    ledger = await open_ledger(journal)
    try:
        await ledger.record(Event.of(PeerAuthenticated(), peer=A), Event.of(PeerAuthenticated(), peer=B))
        adverts = [ledger.record(Event.of(HashesAdvertised((ASSET,)), peer=p)) for p in (A, B) for _ in range(5)]
        await asyncio.gather(*adverts)
        requests = await journal_kinds(journal, EventKind.TRANSFER_REQUESTED)
        assert len(requests) == 1
    finally:
        await ledger.close()


async def test_a_decision_sees_every_decision_queued_before_it(journal: Journal):
    ledger = await open_ledger(journal)
    try:
        await ledger.record(Event.of(PeerAuthenticated(), peer=A))

        def request_unless_claimed(state: SyncState) -> tuple[list[Event], bool]:
            if state.claimed(ASSET):
                return [], False
            return [Event.of(TransferRequested(Direction.IN), peer=A, hash=ASSET)], True

        verdicts = await asyncio.gather(*(ledger.decide(request_unless_claimed) for _ in range(10)))
        assert verdicts.count(True) == 1
        assert len(await journal_kinds(journal, EventKind.TRANSFER_REQUESTED)) == 1
    finally:
        await ledger.close()


async def test_a_decision_that_raises_fails_its_caller_only(journal: Journal):
    ledger = await open_ledger(journal)
    try:

        def broken(state: SyncState) -> tuple[list[Event], None]:
            raise ValueError("a bug in a decision")

        results = await asyncio.gather(
            ledger.decide(broken),
            ledger.record(Event.of(LocalAssetSeen(), hash=ASSET)),
            return_exceptions=True,
        )
        assert isinstance(results[0], ValueError)
        assert not isinstance(results[1], BaseException)
        assert ASSET in ledger.state.local
    finally:
        await ledger.close()


class MachineWithABug(SyncState):
    """A machine that fails to fold one kind of event, as a bug would."""

    def apply(self, event: Event) -> list[Command]:
        if event.kind is EventKind.PEER_PROTOCOL_ERROR:
            raise RuntimeError("fold bug")
        return super().apply(event)


async def test_a_failing_fold_is_reported_to_the_caller_and_the_ledger_keeps_working(journal: Journal):
    ledger = Ledger(journal, MachineWithABug(), 0, dispatch=Dispatched())
    ledger._start_writer()
    try:
        with pytest.raises(LedgerError, match="could not be folded"):
            await ledger.record(Event(EventKind.PEER_PROTOCOL_ERROR, peer=A, data={"reason": "x"}))
        assert ledger.fold_failures == 1
        assert ledger.last_error is not None and "fold bug" in ledger.last_error
        await asyncio.wait_for(ledger.record(Event.of(LocalAssetSeen(), hash=ASSET)), 5)
        assert ASSET in ledger.state.local
    finally:
        await ledger.close()


async def test_a_failing_append_fails_its_callers_and_the_next_one_lands(journal: Journal, monkeypatch):
    ledger = await open_ledger(journal)
    real_append = journal.append
    calls = 0

    async def failing_once(events: Sequence[Event]) -> list[Event]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(28, "No space left on device")
        return await real_append(events)

    monkeypatch.setattr(journal, "append", failing_once)
    try:
        with pytest.raises(OSError, match="No space left"):
            await ledger.record(Event.of(LocalAssetSeen(), hash=ASSET))
        assert ASSET not in ledger.state.local  # nothing folded that was not journaled
        await asyncio.wait_for(ledger.record(Event.of(LocalAssetSeen(), hash=ASSET)), 5)
        assert ASSET in ledger.state.local
    finally:
        await ledger.close()


async def test_a_failing_snapshot_is_retried_and_never_stops_the_writer(journal: Journal, monkeypatch):
    monkeypatch.setattr(ledger_module, "SNAPSHOT_EVERY", 5)
    monkeypatch.setattr(ledger_module, "SNAPSHOT_RETRY_EVENTS", 5)
    ledger = await open_ledger(journal)
    real_save = journal.save_snapshot
    attempts: list[int] = []

    async def save_failing_first(seq: int, state: dict) -> None:  # type: ignore[type-arg]
        attempts.append(seq)
        if len(attempts) == 1:
            raise OSError(28, "No space left on device")
        await real_save(seq, state)

    monkeypatch.setattr(journal, "save_snapshot", save_failing_first)
    try:
        for n in range(20):
            await asyncio.wait_for(ledger.record(Event.of(LocalAssetSeen(), hash=f"{n:064x}")), 5)
        assert ledger.last_error is not None and "snapshot" in ledger.last_error
    finally:
        await ledger.close()  # waits for the writer, whose snapshots have then all finished
    assert len(attempts) >= 2  # the first failed, later ones were made
    loaded = await journal.load_snapshot()
    assert loaded is not None and loaded[0] == attempts[-1] == ledger.state.last_seq


def test_a_bigger_state_waits_longer_between_snapshots():
    # a small state: every SNAPSHOT_EVERY events; a million assets (a 53 MB snapshot) about every 104,000
    assert ledger_module.events_between_snapshots(2_847_882) == ledger_module.SNAPSHOT_EVERY == 10_000
    assert ledger_module.events_between_snapshots(53_300_000) == 53_300_000 // 512


@pytest.mark.parametrize(("chars_per_event", "expected"), [(10**9, [5, 10, 15, 20, 25]), (1, [5])])
async def test_the_ledger_spaces_snapshots_by_the_size_of_the_last(
    journal: Journal, monkeypatch, chars_per_event: int, expected: list[int]
):
    monkeypatch.setattr(ledger_module, "SNAPSHOT_EVERY", 5)
    monkeypatch.setattr(ledger_module, "SNAPSHOT_CHARS_PER_EVENT", chars_per_event)
    real_save = journal.save_snapshot
    saved_at: list[int] = []

    async def save_and_note(seq: int, state: dict) -> int:  # type: ignore[type-arg]
        saved_at.append(seq)
        return await real_save(seq, state)

    monkeypatch.setattr(journal, "save_snapshot", save_and_note)
    ledger = await open_ledger(journal)
    try:
        for n in range(27):
            await asyncio.wait_for(ledger.record(Event.of(LocalAssetSeen(), hash=f"{n:064x}")), 5)
        # with one event per character, the interval after the first snapshot is its length: hundreds
        assert saved_at == expected
    finally:
        await ledger.close()
    assert saved_at[-1] == 27  # and the close leaves one at the last event


async def test_a_dispatch_that_raises_does_not_stop_the_writer(journal: Journal):
    def broken_dispatch(commands: Sequence[Command]) -> None:
        raise RuntimeError("agent bug")

    ledger = await Ledger.open(journal, dispatch=broken_dispatch)
    try:
        await ledger.record(Event.of(PeerAuthenticated(), peer=A))
        await ledger.record(Event.of(HashesAdvertised((ASSET,)), peer=A))  # dispatches a RequestAsset
        await asyncio.wait_for(ledger.record(Event.of(LocalAssetSeen(), hash=ASSET)), 5)
        assert ASSET in ledger.state.local
    finally:
        await ledger.close()


async def test_close_works_through_what_was_queued_and_leaves_a_snapshot(journal: Journal):
    ledger = await open_ledger(journal)
    pending = [asyncio.ensure_future(ledger.record(Event.of(LocalAssetSeen(), hash=f"{n:064x}"))) for n in range(50)]
    await asyncio.sleep(0)
    await ledger.close()
    await asyncio.gather(*pending)
    assert len(ledger.state.local) == 50
    snapshot = await journal.load_snapshot()
    assert snapshot is not None and snapshot[0] == ledger.state.last_seq
    with pytest.raises(LedgerError):
        await ledger.record(Event.of(LocalAssetSeen(), hash=ASSET))
