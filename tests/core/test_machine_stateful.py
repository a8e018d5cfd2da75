"""The machine against a deliberately simple reference model, driven by random journal events."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cansync.core.commands import Advertise, RequestAsset, SendAsset
from cansync.core.events import Event, EventKind
from cansync.core.machine import SyncState, fold
from cansync.core.metadata import MetaValue

PEERS = ("11" * 32, "22" * 32, "33" * 32)
ASSETS = tuple(f"{i:064x}" for i in range(1, 6))

peers = st.sampled_from(PEERS)
assets = st.sampled_from(ASSETS)


class MachineVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.machine = SyncState()
        self.journal: list[Event] = []
        # the reference model: plain sets and dicts, no cleverness
        self.local: set[str] = set()
        self.has: dict[str, set[str]] = {p: set() for p in PEERS}
        self.came_from: dict[str, set[str]] = {p: set() for p in PEERS}
        self.authenticated: set[str] = set()
        self.moving_in: dict[str, set[str]] = {p: set() for p in PEERS}  # requested, not yet ended
        self.meta: dict[str, MetaValue] = {}

    def record(self, event: Event) -> list:
        stamped = event.journaled(len(self.journal) + 1, len(self.journal) + 1)
        self.journal.append(stamped)
        return self.machine.apply(stamped)

    def anyone_moving(self, asset: str) -> bool:
        return any(asset in moving for moving in self.moving_in.values())

    @rule(asset=assets)
    def local_asset(self, asset):
        commands = self.record(Event(EventKind.LOCAL_ASSET_SEEN, hash=asset))
        new = asset not in self.local
        self.local.add(asset)
        expected = {p for p in self.authenticated if asset not in self.has[p]} if new else set()
        assert {c.peer for c in commands if isinstance(c, Advertise)} == expected

    @rule(peer=peers)
    def authenticate(self, peer):
        commands = self.record(Event(EventKind.PEER_AUTHENTICATED, peer=peer))
        self.authenticated.add(peer)
        self.moving_in[peer].clear()  # a new session ends whatever the last one was moving
        requested = {c.hash for c in commands if isinstance(c, RequestAsset)}
        assert requested <= self.has[peer] - self.local
        for asset in self.has[peer] - self.local:
            if not self.anyone_moving(asset):
                assert asset in requested

    @rule(peer=peers)
    def disconnect(self, peer):
        self.record(Event(EventKind.PEER_DISCONNECTED, peer=peer))
        self.authenticated.discard(peer)
        self.moving_in[peer].clear()

    @rule(peer=peers, advertised=st.lists(assets, max_size=3, unique=True))
    def peer_advertises(self, peer, advertised):
        commands = self.record(Event(EventKind.HASHES_ADVERTISED, peer=peer, data={"hashes": advertised}))
        self.has[peer].update(advertised)
        requested = [c.hash for c in commands if isinstance(c, RequestAsset)]
        if peer not in self.authenticated:
            assert requested == []
        else:
            expected = [a for a in advertised if a not in self.local and not self.anyone_moving(a)]
            assert requested == expected

    @precondition(lambda self: any(self.authenticated))
    @rule(data=st.data())
    def request_from_peer(self, data):
        peer = data.draw(st.sampled_from(sorted(self.authenticated)))
        asset = data.draw(assets)
        self.record(Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=asset, data={"direction": "in", "offset": 0}))
        self.moving_in[peer].add(asset)

    @rule(peer=peers, asset=assets)
    def peer_wants(self, peer, asset):
        commands = self.record(
            Event(EventKind.TRANSFER_REQUESTED, peer=peer, hash=asset, data={"direction": "out", "offset": 7})
        )
        assert commands == [SendAsset(peer, asset, 7)]

    @rule(peer=peers, asset=assets)
    def sent_to_peer(self, peer, asset):
        self.record(Event(EventKind.TRANSFER_COMPLETED, peer=peer, hash=asset, data={"direction": "out", "size": 3}))
        self.has[peer].add(asset)

    @rule(peer=peers, asset=assets)
    def received_from_peer(self, peer, asset):
        self.record(
            Event(
                EventKind.TRANSFER_COMPLETED,
                peer=peer,
                hash=asset,
                data={"direction": "in", "size": 3, "verified": True},
            )
        )
        commands = self.record(Event(EventKind.ASSET_RECEIVED, peer=peer, hash=asset))
        self.local.add(asset)
        self.has[peer].add(asset)
        self.came_from[peer].add(asset)
        self.moving_in[peer].discard(asset)
        for command in commands:
            assert isinstance(command, Advertise)
            assert command.peer != peer  # never echo to the sender

    @rule(
        peer=st.one_of(st.none(), peers), asset=assets, updated=st.integers(0, 5), origin=peers, trashed=st.booleans()
    )
    def metadata(self, peer, asset, updated, origin, trashed):
        value = MetaValue(updated, origin, trashed=trashed)
        self.record(Event(EventKind.METADATA_CHANGED, peer=peer, hash=asset, data=value.to_data()))
        current = self.meta.get(asset)
        if current is None or (value.updated_ms, value.origin, value.trashed) > (
            current.updated_ms,
            current.origin,
            current.trashed,
        ):
            self.meta[asset] = value

    @invariant()
    def derived_state_matches_the_model(self):
        assert self.machine.local == self.local
        for peer in PEERS:
            state = self.machine.peer(peer)
            assert state.has == self.has[peer]
            assert self.machine.owed(peer) == self.local - self.has[peer]
            assert self.machine.wanted(peer) == self.has[peer] - self.local
            assert self.came_from[peer] <= state.received_from
            assert not (self.machine.owed(peer) & state.received_from)
        assert set(self.machine.authenticated_peers()) == self.authenticated
        assert self.machine.meta == self.meta

    def teardown(self) -> None:
        assert fold(self.journal) == self.machine


MachineVersusModel.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestMachineVersusModel = MachineVersusModel.TestCase
