"""`_iroh` address records: built with an endpoint's own key, read back (also through the npm relay)."""

from __future__ import annotations

import os

import pytest

from cansync.discovery.iroh_records import IrohRecordError, build_iroh_address_record, parse_iroh_address_record
from cansync.discovery.pkarr_packet import Keypair, SignedPacket, TxtRecord
from cansync.discovery.pkarr_relay import PkarrRelayClient
from tests.discovery.conftest import NpmRelay, run_js_client


async def test_round_trip_through_the_relay(npm_relay: NpmRelay) -> None:
    seed = os.urandom(32)
    packet = build_iroh_address_record(
        seed, ["127.0.0.1:4433", "[::1]:4433"], "https://relay.example./", timestamp=1_700_000_000_000_000
    )
    keypair = Keypair.from_seed(seed)
    assert [r.value for r in packet.txt("_iroh")] == [
        "relay=https://relay.example./",
        "addr=127.0.0.1:4433",
        "addr=[::1]:4433",
    ]
    assert {r.ttl for r in packet.records} == {30}
    async with PkarrRelayClient([npm_relay.url]) as client:
        await client.publish(packet)
        fetched = (await client.resolve(keypair.public_key)).packet
    assert fetched is not None
    info = parse_iroh_address_record(fetched)
    assert info.endpoint_id == keypair.public_key.hex()
    assert info.relay_url == "https://relay.example./"
    assert info.addrs == ("127.0.0.1:4433", "[::1]:4433")
    seen_by_js = run_js_client("resolve", npm_relay.url, keypair.z32)
    records = seen_by_js["records"]
    assert isinstance(records, list)
    assert [r["data"] for r in records] == [[r.value] for r in packet.txt("_iroh")]


def test_without_relay_and_with_bad_values() -> None:
    seed = bytes([3]) * 32
    info = parse_iroh_address_record(build_iroh_address_record(seed, ["10.0.0.1:1"], None, timestamp=1))
    assert info.relay_url is None and info.addrs == ("10.0.0.1:1",)
    keypair = Keypair.from_seed(seed)
    odd = SignedPacket.build(
        keypair, [TxtRecord("_iroh", "user-data=hi", 30), TxtRecord("_iroh", "addr=1.1.1.1:2", 30)], 2
    )
    assert parse_iroh_address_record(odd).addrs == ("1.1.1.1:2",)
    broken = SignedPacket.build(keypair, [TxtRecord("_iroh", "no equals sign", 30)], 3)
    with pytest.raises(IrohRecordError, match="not key=value"):
        parse_iroh_address_record(broken)
