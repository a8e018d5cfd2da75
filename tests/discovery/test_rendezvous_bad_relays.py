"""The rendezvous keeps going through dead, silent, garbage and squatted relays, and says so clearly."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from cansync.discovery.pkarr_packet import PacketTooLargeError, SignedPacket, TxtRecord
from cansync.discovery.pkarr_relay import PkarrRelayClient, PublishOutcome
from cansync.discovery.rendezvous import NUM_SLOTS, RECORD_NAME, Rendezvous, slot_keys
from tests.discovery.conftest import NpmRelay
from tests.discovery.rendezvous_helpers import make_peer, new_id, new_passphrase, start, stop, wait_until
from tests.discovery.scripted_http import SILENCE, Reply, ScriptedHttpServer
from tests.discovery.test_relay_client_policy import closed_port_url

LOGGER = "cansync.discovery.rendezvous"


def warnings_matching(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


async def test_all_relays_down_logs_once_and_keeps_trying(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    dead = closed_port_url()
    peer = make_peer(new_passphrase(), [dead], scan_interval=0.1, publish_interval=0.2)
    start([peer])
    await asyncio.sleep(1.5)
    assert peer.task is not None and not peer.task.done()  # still running, nothing raised
    await stop([peer])
    failing = warnings_matching(caplog, f"pkarr relay {dead} is failing (cannot connect")
    assert len(failing) == 1, caplog.text  # once, not on every one of the ~10 rounds
    assert peer.rendezvous.claimed_slot is None and peer.found == {}
    # why no slot is held is said once, naming the relay, and never as "the slots are full"
    slotless = warnings_matching(caplog, "no pkarr relay answered")
    assert len(slotless) == 1, caplog.text
    assert f"none of the 8 slots could be read (relays unreachable: {dead} (cannot connect" in slotless[0]
    assert "hold live peers" not in caplog.text
    # A direct scan answers "nothing known" for every slot instead of raising.
    async with make_peer(new_passphrase(), [dead]).rendezvous as rendezvous:
        assert await rendezvous.scan_once() == dict.fromkeys(range(NUM_SLOTS))
        assert await rendezvous.publish_once() is None


async def test_discovery_works_through_one_good_relay_among_bad_ones(
    npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with (
        ScriptedHttpServer(lambda _req: SILENCE) as silent,
        ScriptedHttpServer(lambda req: Reply(200, os.urandom(150)) if req.method == "GET" else Reply(200)) as garbage,
        ScriptedHttpServer(lambda _req: Reply(500, b"internal error")) as broken,
    ):
        relays = [silent.url, garbage.url, broken.url, npm_relay.url]
        passphrase = new_passphrase()
        peers = [make_peer(passphrase, relays, request_timeout=0.4) for _ in range(2)]
        start(peers)
        try:
            await wait_until(lambda: all(len(p.found) == 1 for p in peers), 20, "two peers to meet")
        finally:
            await stop(peers)
    a, b = peers
    assert set(a.found) == {b.id} and set(b.found) == {a.id}
    assert a.rendezvous.claimed_slot != b.rendezvous.claimed_slot
    assert warnings_matching(caplog, f"pkarr relay {silent.url} is failing (timed out")
    assert warnings_matching(caplog, f"pkarr relay {broken.url} is failing (HTTP 500")
    invalid = warnings_matching(caplog, f"relay {garbage.url} gave an invalid record for slot")
    assert invalid and all("72..1072" in m or "bad signature" in m for m in invalid)


async def test_squatted_slots_are_ignored_logged_once_and_not_claimed(
    npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    passphrase = new_passphrase()
    keys = slot_keys(passphrase)
    now_us = time.time_ns() // 1000
    async with PkarrRelayClient([npm_relay.url]) as client:
        for key in keys[:6]:  # slots 0..5 hold fresh records that are not endpoint ids
            junk = (
                [TxtRecord(RECORD_NAME, "hello, not an id", 300)] if key.index % 2 else [TxtRecord("_other", "x", 300)]
            )
            assert (await client.publish(SignedPacket.build(key.keypair, junk, now_us)))[
                0
            ].outcome is PublishOutcome.STORED
    holder = make_peer(passphrase, [npm_relay.url])
    newcomer = make_peer(passphrase, [npm_relay.url])
    async with holder.rendezvous as first, newcomer.rendezvous as second:
        held = await first.publish_once()
        assert held in (6, 7)
        for _ in range(3):
            found = await second.scan_once()
        assert second.claimed_slot == ({6, 7} - {held}).pop()
        assert all(found[i] is None for i in range(6))
    assert newcomer.found == {holder.id: {held}}
    for index in range(6):
        logged = [m for m in warnings_matching(caplog, "not a can-sync endpoint id") if f"slot {index} " in m]
        assert len(logged) == 2, (index, logged)  # once per rendezvous instance, not once per scan


async def test_a_peer_squatted_out_of_its_slot_moves(npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    passphrase = new_passphrase()
    peer = make_peer(passphrase, [npm_relay.url])
    async with peer.rendezvous as rendezvous, PkarrRelayClient([npm_relay.url]) as client:
        slot = await rendezvous.publish_once()
        assert slot is not None
        junk = SignedPacket.build(
            slot_keys(passphrase)[slot].keypair, [TxtRecord(RECORD_NAME, "mine now", 300)], time.time_ns() // 1000 + 1
        )
        await client.publish(junk)
        await rendezvous.scan_once()
        assert rendezvous.claimed_slot not in (None, slot)
    assert warnings_matching(caplog, f"slot {slot} was overwritten by a non-can-sync record")


async def test_a_failing_callback_does_not_stop_discovery(
    npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture
) -> None:
    passphrase = new_passphrase()
    calls: list[str] = []

    async def explode(peer_id: str, _slot: int) -> None:
        calls.append(peer_id)
        raise RuntimeError("callback bug")

    other = make_peer(passphrase, [npm_relay.url])
    async with other.rendezvous as publisher:
        await publisher.publish_once()
    async with Rendezvous(passphrase, new_id(), [npm_relay.url], explode) as rendezvous:
        await rendezvous.scan_once()
        await rendezvous.scan_once()
    assert calls == [other.id, other.id]
    assert "on_peer callback failed" in caplog.text


def test_an_oversized_record_is_refused_with_a_clear_error() -> None:
    key = slot_keys("any")[0]
    with pytest.raises(PacketTooLargeError, match=f"pk:{key.z32} is .* bytes; relays accept at most 999"):
        SignedPacket.build(key.keypair, [TxtRecord(RECORD_NAME, "z" * 2000, 300)], 1)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="64 hex"):
        Rendezvous("p", "not-an-id", ["http://127.0.0.1:1"], lambda _i, _s: None)
    with pytest.raises(ValueError, match="at least one pkarr relay"):
        Rendezvous("p", new_id(), [], lambda _i, _s: None)
