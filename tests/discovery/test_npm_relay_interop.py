"""Our client against the real npm pkarr relay (loopback DHT), and against the npm client, both ways."""

from __future__ import annotations

import dataclasses
import logging
import os

import httpx
import pytest

from cansync.discovery.pkarr_packet import MAX_BUILD_DNS_BYTES, Keypair, SignedPacket, TxtRecord, encode_dns
from cansync.discovery.pkarr_relay import PkarrRelayClient, PublishOutcome, ResolveOutcome, relay_url
from tests.discovery.conftest import NpmRelay, run_js_client


def fresh_keypair() -> Keypair:
    return Keypair.from_seed(os.urandom(32))


async def test_python_publishes_and_the_npm_client_resolves(npm_relay: NpmRelay) -> None:
    keypair = fresh_keypair()
    endpoint_id = os.urandom(32).hex()
    packet = SignedPacket.build(keypair, [TxtRecord("_can_sync", endpoint_id, 300)], 1_700_000_000_123_456)
    async with PkarrRelayClient([npm_relay.url]) as client:
        [result] = await client.publish(packet)
    assert result.outcome is PublishOutcome.STORED and result.status == 200
    seen = run_js_client("resolve", npm_relay.url, keypair.z32)
    assert seen["timestamp"] == 1_700_000_000_123_456
    assert seen["records"] == [{"name": f"_can_sync.{keypair.z32}", "type": "TXT", "ttl": 300, "data": [endpoint_id]}]


async def test_npm_client_publishes_and_python_resolves(npm_relay: NpmRelay) -> None:
    seed = os.urandom(32)
    endpoint_id = os.urandom(32).hex()
    published = run_js_client("publish", npm_relay.url, seed.hex(), "_can_sync", endpoint_id)
    assert published["status"] == 200
    keypair = Keypair.from_seed(seed)
    assert published["publicKey"] == keypair.z32
    async with PkarrRelayClient([npm_relay.url]) as client:
        resolution = await client.resolve(keypair.public_key)
    packet = resolution.packet
    assert packet is not None and resolution.results[0].outcome is ResolveOutcome.FOUND
    assert packet.timestamp == published["timestamp"]
    assert [r.value for r in packet.txt("_can_sync")] == [endpoint_id]
    # The JS side writes uncompressed DNS; rebuilding the same record ourselves gives identical bytes.
    ours = SignedPacket.build(keypair, [TxtRecord("_can_sync", endpoint_id, 300)], packet.timestamp)
    assert ours.relay_payload() == packet.relay_payload()


async def test_relay_refuses_a_tampered_put_with_400(npm_relay: NpmRelay, caplog: pytest.LogCaptureFixture) -> None:
    keypair = fresh_keypair()
    good = SignedPacket.build(keypair, [TxtRecord("_can_sync", "ab" * 32, 300)], 1_700_000_000_000_001)
    bad_signature = bytes([good.signature[0] ^ 0x80]) + good.signature[1:]
    tampered = dataclasses.replace(good, signature=bad_signature)
    caplog.set_level(logging.ERROR, logger="cansync.discovery.pkarr_relay")
    async with PkarrRelayClient([npm_relay.url]) as client:
        [result] = await client.publish(tampered)
        assert result.outcome is PublishOutcome.REJECTED and result.status == 400
        assert "Invalid signature" in result.detail
        assert "cansync bug" in caplog.text
        # Nothing was stored under the key.
        assert (await client.resolve(keypair.public_key)).results[0].outcome is ResolveOutcome.NOT_FOUND
        # A good payload PUT under another key's URL is refused too.
        other = fresh_keypair()
        async with httpx.AsyncClient() as http:
            response = await http.put(relay_url(npm_relay.url, other.public_key), content=good.relay_payload())
            assert response.status_code == 400
            too_big = await http.put(relay_url(npm_relay.url, keypair.public_key), content=b"\x00" * 1073)
            assert too_big.status_code == 413


async def test_unknown_key_is_404(npm_relay: NpmRelay) -> None:
    async with PkarrRelayClient([npm_relay.url]) as client:
        resolution = await client.resolve(fresh_keypair().public_key)
    assert resolution.packet is None
    assert [(r.outcome, r.status) for r in resolution.results] == [(ResolveOutcome.NOT_FOUND, 404)]
    assert resolution.any_answered


async def test_newer_timestamp_wins_and_older_is_not_stored(npm_relay: NpmRelay) -> None:
    keypair = fresh_keypair()
    first = SignedPacket.build(keypair, [TxtRecord("_can_sync", "11" * 32, 300)], 1_700_000_000_000_000)
    second = SignedPacket.build(keypair, [TxtRecord("_can_sync", "22" * 32, 300)], 1_700_000_000_000_001)
    older = SignedPacket.build(keypair, [TxtRecord("_can_sync", "33" * 32, 300)], 1_600_000_000_000_000)
    async with PkarrRelayClient([npm_relay.url]) as client:
        assert (await client.publish(first))[0].outcome is PublishOutcome.STORED
        assert (await client.publish(second))[0].outcome is PublishOutcome.STORED
        got = (await client.resolve(keypair.public_key)).packet
        assert got is not None and got.timestamp == second.timestamp
        assert [r.value for r in got.txt("_can_sync")] == ["22" * 32]
        # The npm relay reports "not most recent" as a 500 (Rust relays: 409); either way it is not stored.
        [refused] = await client.publish(older)
        assert refused.outcome in (PublishOutcome.UNAVAILABLE, PublishOutcome.NOT_MOST_RECENT)
        assert refused.status in (500, 409)
        still = (await client.resolve(keypair.public_key)).packet
        assert still is not None and still.timestamp == second.timestamp


async def test_largest_packet_we_build_is_accepted(npm_relay: NpmRelay) -> None:
    keypair = fresh_keypair()
    # Pick a name and value length that make the DNS part exactly our limit (999), the most the JS stack takes.
    name, length = next(
        (name, length)
        for name in ("_big", "_bigg")
        for length in range(900, 1000)
        if len(encode_dns(keypair.z32, [TxtRecord(name, "v" * length, 60)])) == MAX_BUILD_DNS_BYTES
    )
    packet = SignedPacket.build(keypair, [TxtRecord(name, "v" * length, 60)], 1_700_000_000_000_000)
    assert len(packet.dns) == MAX_BUILD_DNS_BYTES
    async with PkarrRelayClient([npm_relay.url]) as client:
        assert (await client.publish(packet))[0].outcome is PublishOutcome.STORED
        got = (await client.resolve(keypair.public_key)).packet
    assert got is not None and got.txt(name)[0].value == "v" * length
