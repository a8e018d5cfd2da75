"""The machine against a deliberately simple reference model, driven by random journal events.

Besides what a peer holds and what we owe it, the model checks the rules of the decisions: an asset is
in flight from at most one peer at a time, only a peer that holds it is asked, and every asset that
some peer in session holds and we lack is being fetched, unless a failure paused it or every holder
has used up its strikes.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cansync.core.commands import Advertise, SendAsset
from cansync.core.events import (
    AssetReceived,
    Direction,
    Event,
    HashesAdvertised,
    LocalAssetSeen,
    MetadataChanged,
    PeerAuthenticated,
    PeerDisconnected,
    TransferCompleted,
    TransferRequested,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.machine import MAX_FAILURES_PER_PEER, fold
from cansync.core.metadata import MetaValue
from tests.core.node import Node

PEERS = ("11" * 32, "22" * 32, "33" * 32)
ASSETS = tuple(f"{i:064x}" for i in range(1, 6))

peers = st.sampled_from(PEERS)
assets = st.sampled_from(ASSETS)
failures = st.sampled_from(list(Failure))


class MachineVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.node = Node("00" * 32, now=1_000)
        # the reference model: plain sets and dicts, no cleverness
        self.local: set[str] = set()
        self.has: dict[str, set[str]] = {p: set() for p in PEERS}
        self.came_from: dict[str, set[str]] = {p: set() for p in PEERS}
        self.authenticated: set[str] = set()
        self.meta: dict[str, MetaValue] = {}

    @property
    def machine(self):  # type: ignore[no-untyped-def]
        return self.node.state

    def in_flight_from(self, asset: str) -> str | None:
        active = self.node.active_incoming().get(asset, set())
        return next(iter(active)) if active else None

    @rule(asset=assets)
    def local_asset(self, asset):
        commands = self.node.record(Event.of(LocalAssetSeen(), hash=asset))
        new = asset not in self.local
        self.local.add(asset)
        expected = {p for p in self.authenticated if asset not in self.has[p]} if new else set()
        assert {c.peer for c in commands if isinstance(c, Advertise)} == expected

    @rule(peer=peers)
    def authenticate(self, peer):
        self.node.record(Event.of(PeerAuthenticated(), peer=peer))
        self.authenticated.add(peer)

    @rule(peer=peers)
    def disconnect(self, peer):
        self.node.record(Event.of(PeerDisconnected("gone"), peer=peer))
        self.authenticated.discard(peer)

    @rule(peer=peers, advertised=st.lists(assets, max_size=3, unique=True))
    def peer_advertises(self, peer, advertised):
        self.node.record(Event.of(HashesAdvertised(tuple(advertised)), peer=peer))
        self.has[peer].update(advertised)

    @rule(asset=assets)
    def transfer_arrives_and_is_stored(self, asset):
        peer = self.in_flight_from(asset)
        if peer is None:
            return
        done = TransferCompleted(Direction.IN, 3, 3, verified=True, meta={"hash": asset, "size": 3})
        self.node.record(Event.of(done, peer=peer, hash=asset))
        assert self.node.state.claimed(asset) or asset in self.local  # claimed until its push lands
        commands = self.node.record(Event.of(AssetReceived(), peer=peer, hash=asset))
        self.local.add(asset)
        self.has[peer].add(asset)
        self.came_from[peer].add(asset)
        for command in commands:
            if isinstance(command, Advertise):
                assert command.peer != peer  # never echo to the sender

    @rule(asset=assets, failure=failures)
    def transfer_fails(self, asset, failure):
        peer = self.in_flight_from(asset)
        if peer is None:
            return
        self.node.record(failed_transfer(peer, asset, Direction.IN, failure, "it failed"))

    @rule()
    def time_passes(self):
        assert self.node.now is not None
        self.node.now += 6_000
        self.node.tick()

    @rule(peer=peers, asset=assets)
    def peer_wants(self, peer, asset):
        commands = self.node.record(Event.of(TransferRequested(Direction.OUT, 7, 42), peer=peer, hash=asset))
        assert commands == [SendAsset(peer, asset, 7, 42)]

    @rule(peer=peers, asset=assets)
    def sent_to_peer(self, peer, asset):
        if asset not in self.local:
            return  # we only ever send what our store holds
        self.node.record(Event.of(TransferCompleted(Direction.OUT, 3, 3), peer=peer, hash=asset))
        self.has[peer].add(asset)

    @rule(
        peer=st.one_of(st.none(), peers), asset=assets, updated=st.integers(0, 5), origin=peers, trashed=st.booleans()
    )
    def metadata(self, peer, asset, updated, origin, trashed):
        value = MetaValue(updated, origin, trashed=trashed)
        self.node.record(Event.of(MetadataChanged(updated, origin, trashed=trashed), peer=peer, hash=asset))
        if value.beats(self.meta.get(asset)):
            self.meta[asset] = value

    @invariant()
    def derived_state_matches_the_model(self):
        assert set(self.machine.local) == self.local
        for peer in PEERS:
            state = self.machine.peer(peer)
            assert self.machine.holdings(peer) == self.has[peer]
            assert self.machine.owed(peer) == self.local - self.has[peer]
            assert self.machine.wanted(peer) == self.has[peer] - self.local
            assert self.came_from[peer] <= state.received_from
            assert not (self.machine.owed(peer) & state.received_from)
        assert set(self.machine.authenticated_peers()) == self.authenticated
        assert self.machine.meta == self.meta

    @invariant()
    def an_asset_is_fetched_from_one_peer_at_a_time_and_only_from_a_holder(self):
        for asset, peers_moving in self.node.active_incoming().items():
            assert len(peers_moving) <= 1, f"{asset[:8]} in flight from {len(peers_moving)} peers"
        for asset, asked in self.node.requested().items():
            assert asked[-1] in {p for p in PEERS if asset in self.has[p]}

    @precondition(lambda self: self.node.now is not None)
    @invariant()
    def every_asset_a_peer_in_session_holds_is_being_fetched(self):
        state = self.machine
        assert self.node.now is not None
        for asset in ASSETS:
            if asset in self.local or state.claimed(asset) or state.paused_until(asset) > self.node.now:
                continue
            askable = []
            for p in sorted(self.authenticated):
                transfer = state.peer(p).incoming.get(asset)
                if asset in self.has[p] and (transfer is None or transfer.failures < MAX_FAILURES_PER_PEER):
                    askable.append(p)
            assert not askable, f"{asset[:8]} is held by {[p[:4] for p in askable]} in session, and not asked for"

    def teardown(self) -> None:
        assert fold(self.node.journal) == self.machine


MachineVersusModel.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
TestMachineVersusModel = MachineVersusModel.TestCase
