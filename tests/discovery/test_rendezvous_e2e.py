"""Rendezvous instances meeting through the real npm relay on loopback."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from cansync.discovery.pkarr_packet import SignedPacket, TxtRecord
from cansync.discovery.pkarr_relay import PkarrRelayClient, PublishOutcome
from cansync.discovery.rendezvous import NUM_SLOTS, RECORD_NAME, Rendezvous, slot_keys
from tests.discovery.conftest import NpmRelay
from tests.discovery.rendezvous_helpers import make_peer, new_id, new_passphrase, start, stop, wait_until


async def test_three_peers_find_each_other_and_a_fourth_with_another_passphrase_finds_none(
    npm_relay: NpmRelay,
) -> None:
    shared = new_passphrase()
    trio = [make_peer(shared, [npm_relay.url]) for _ in range(3)]
    outsider = make_peer(new_passphrase(), [npm_relay.url])
    everyone = [*trio, outsider]
    start(everyone)
    try:

        def all_met() -> bool:
            return all({p.id for p in trio} - {me.id} <= set(me.found) for me in trio)

        await wait_until(all_met, 20, "the three peers to discover each other")
        await wait_until(lambda: outsider.rendezvous.claimed_slot is not None, 10, "the outsider to claim a slot")
        await asyncio.sleep(1.0)  # a few more scans: the outsider still must not see the trio
    finally:
        await stop(everyone)
    slots = [p.rendezvous.claimed_slot for p in trio]
    assert None not in slots and len(set(slots)) == 3, slots
    for me in trio:
        assert me.id not in me.found  # never reported to itself
        assert set(me.found) == {p.id for p in trio} - {me.id}
        for other in trio:
            if other is not me:
                assert me.found[other.id] == {other.rendezvous.claimed_slot}
    assert outsider.found == {}
    assert not {p.id for p in trio} & set(outsider.found)


async def test_nine_peers_fill_all_eight_slots_and_everyone_sees_every_holder(
    npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cansync.discovery.rendezvous")
    passphrase = new_passphrase()
    peers = [make_peer(passphrase, [npm_relay.url], publish_interval=1.0, scan_interval=0.5) for _ in range(9)]
    start(peers)
    try:

        def settled() -> bool:
            held = [p.rendezvous.claimed_slot for p in peers if p.rendezvous.claimed_slot is not None]
            if len(held) != NUM_SLOTS or len(set(held)) != NUM_SLOTS:
                return False
            holders = {p.id for p in peers if p.rendezvous.claimed_slot is not None}
            return all(holders - {p.id} <= set(p.found) for p in peers)

        await wait_until(settled, 40, "8 distinct slot holders seen by all 9 peers")
        # What the relay holds agrees with what the peers think they hold.
        observer = Rendezvous(passphrase, new_id(), [npm_relay.url], lambda _i, _s: None)
        seen = await observer.scan_once()
        await observer.aclose()
    finally:
        await stop(peers)
    holders = {p.rendezvous.claimed_slot: p.id for p in peers if p.rendezvous.claimed_slot is not None}
    slotless = [p for p in peers if p.rendezvous.claimed_slot is None]
    assert len(slotless) == 1
    assert set(holders.values()) <= set(slotless[0].found)  # the slotless peer still discovers every holder
    # The observer itself claimed nothing usable (all slots fresh), and saw each holder in its own slot.
    assert observer.claimed_slot is None
    assert seen == holders
    # and it said why in words that mean it: the slots are full, the relay answered
    said = [r.getMessage() for r in caplog.records]
    assert "rendezvous: no free slot: all 8 slots hold live peers; discovering without one" in "\n".join(said)
    assert not [m for m in said if "no pkarr relay answered" in m]


async def test_overwritten_peer_with_the_higher_id_moves_to_a_free_slot(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    peer = make_peer(passphrase, [npm_relay.url], endpoint_id="f" * 64)
    intruder_id = "0" * 64
    async with peer.rendezvous as rendezvous, PkarrRelayClient([npm_relay.url]) as client:
        first = await rendezvous.publish_once()
        assert first is not None and rendezvous.claimed_slot == first
        key = slot_keys(passphrase)[first]
        intruder = SignedPacket.build(
            key.keypair, [TxtRecord(RECORD_NAME, intruder_id, 300)], time.time_ns() // 1000 + 1
        )
        assert (await client.publish(intruder))[0].outcome is PublishOutcome.STORED

        found = await rendezvous.scan_once()
        assert found[first] == intruder_id
        moved = rendezvous.claimed_slot
        assert moved is not None and moved != first
        assert peer.found == {intruder_id: {first}}
        # It did not fight: the intruder keeps the old slot, and the peer is published in its new one.
        after = await rendezvous.scan_once()
        assert after[first] == intruder_id and after[moved] == peer.id
        assert rendezvous.claimed_slot == moved


async def test_overwritten_peer_with_the_lower_id_reasserts_once_then_yields(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    peer = make_peer(passphrase, [npm_relay.url], endpoint_id="0" * 63 + "1")
    rival_id = "e" * 64
    async with peer.rendezvous as rendezvous, PkarrRelayClient([npm_relay.url]) as client:
        slot = await rendezvous.publish_once()
        assert slot is not None
        key = slot_keys(passphrase)[slot]

        async def rival_writes() -> None:
            packet = SignedPacket.build(
                key.keypair, [TxtRecord(RECORD_NAME, rival_id, 300)], time.time_ns() // 1000 + 1
            )
            assert (await client.publish(packet))[0].outcome is PublishOutcome.STORED

        await rival_writes()
        found = await rendezvous.scan_once()  # sees the rival: lower id keeps the slot, re-publishes
        assert found[slot] == rival_id
        assert rendezvous.claimed_slot == slot
        assert (await rendezvous.scan_once())[slot] == peer.id

        await rival_writes()  # the rival does not follow the rule: it writes again
        await rendezvous.scan_once()
        assert rendezvous.claimed_slot not in (None, slot)  # so we yield instead of ping-ponging
        assert (await rendezvous.scan_once())[slot] == rival_id


async def test_a_peer_reclaims_its_own_slot_after_a_restart(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    endpoint_id = new_id()
    before = make_peer(passphrase, [npm_relay.url], endpoint_id=endpoint_id)
    async with before.rendezvous as rendezvous:
        slot = await rendezvous.publish_once()
    again = make_peer(passphrase, [npm_relay.url], endpoint_id=endpoint_id)
    async with again.rendezvous as rendezvous:
        await rendezvous.scan_once()
        assert rendezvous.claimed_slot == slot


async def test_a_stale_slot_is_taken_by_a_slotless_peer(npm_relay: NpmRelay) -> None:
    passphrase = new_passphrase()
    keys = slot_keys(passphrase)
    now_us = time.time_ns() // 1000
    async with PkarrRelayClient([npm_relay.url]) as client:
        for key in keys:  # all 8 fresh, except slot 5 whose record is 10 minutes old (TTL 300 s)
            stamp = now_us - 600_000_000 if key.index == 5 else now_us
            packet = SignedPacket.build(key.keypair, [TxtRecord(RECORD_NAME, new_id(), 300)], stamp)
            assert (await client.publish(packet))[0].outcome is PublishOutcome.STORED
    peer = make_peer(passphrase, [npm_relay.url])
    async with peer.rendezvous as rendezvous:
        found = await rendezvous.scan_once()
        assert found[5] is None and sum(v is not None for v in found.values()) == 7
        assert rendezvous.claimed_slot == 5
        assert len(peer.found) == 7  # the stale holder is not reported as a peer
        assert (await rendezvous.scan_once())[5] == peer.id
