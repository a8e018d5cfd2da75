"""The relay client's status policy and bad input, against scripted real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import socket
import time

import pytest

from cansync.discovery.pkarr_packet import Keypair, SignedPacket, TxtRecord
from cansync.discovery.pkarr_relay import PkarrRelayClient, PublishOutcome, ResolveOutcome
from tests.discovery.scripted_http import SILENCE, Reply, ScriptedHttpServer

KEYPAIR = Keypair.from_seed(bytes([9]) * 32)
PACKET = SignedPacket.build(KEYPAIR, [TxtRecord("_can_sync", "ef" * 32, 300)], 1_700_000_000_000_000)


def answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> ScriptedHttpServer:
    return ScriptedHttpServer(lambda _req: Reply(status, body, headers or {}))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: connection refused


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, PublishOutcome.STORED),
        (204, PublishOutcome.STORED),
        (409, PublishOutcome.NOT_MOST_RECENT),
        (428, PublishOutcome.NOT_MOST_RECENT),
        (412, PublishOutcome.CAS_FAILED),
        (400, PublishOutcome.REJECTED),
        (413, PublishOutcome.REJECTED),
        (500, PublishOutcome.UNAVAILABLE),
        (503, PublishOutcome.UNAVAILABLE),
    ],
)
async def test_publish_status_policy(status: int, outcome: PublishOutcome) -> None:
    async with answer(status) as server, PkarrRelayClient([server.url]) as client:
        [result] = await client.publish(PACKET)
    assert (result.outcome, result.status) == (outcome, status)
    [request] = server.requests
    assert request.method == "PUT" and request.path == f"/{KEYPAIR.z32}"
    assert request.body == PACKET.relay_payload()


async def test_rejection_is_logged_as_our_bug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    async with answer(400, b"Invalid signature") as server, PkarrRelayClient([server.url]) as client:
        [result] = await client.publish(PACKET)
    assert result.detail == "Invalid signature"
    assert f"{server.url} refused our packet for pk:{KEYPAIR.z32} with HTTP 400 (Invalid signature)" in caplog.text


async def test_429_backs_off_without_asking_again() -> None:
    now = [1000.0]
    async with answer(429, headers={"Retry-After": "7"}) as server:
        async with PkarrRelayClient([server.url], monotonic=lambda: now[0]) as client:
            assert (await client.publish(PACKET))[0].outcome is PublishOutcome.RATE_LIMITED
            assert (await client.resolve(KEYPAIR.public_key)).results[0].outcome is ResolveOutcome.RATE_LIMITED
            assert len(server.requests) == 1  # the second call did not reach the relay
            now[0] += 7.5
            await client.publish(PACKET)
            assert len(server.requests) == 2


async def test_relay_under_a_path_prefix() -> None:
    async with answer(204) as server, PkarrRelayClient([server.url + "/pkarr/"]) as client:
        await client.publish(PACKET)
    assert server.requests[0].path == f"/pkarr/{KEYPAIR.z32}"


@pytest.mark.parametrize(
    ("reply", "outcome"),
    [
        (Reply(404), ResolveOutcome.NOT_FOUND),
        (Reply(304), ResolveOutcome.NOT_FOUND),
        (Reply(200, b""), ResolveOutcome.NOT_FOUND),
        (Reply(200, os.urandom(200)), ResolveOutcome.INVALID),
        (Reply(200, os.urandom(10)), ResolveOutcome.INVALID),
        (Reply(200, b"\x00" * 5000), ResolveOutcome.INVALID),
        (Reply(500, b"boom"), ResolveOutcome.UNAVAILABLE),
        (Reply(400, b"Invalid key"), ResolveOutcome.REJECTED),
        (Reply(200, PACKET.relay_payload()), ResolveOutcome.FOUND),
    ],
)
async def test_resolve_outcomes(reply: Reply, outcome: ResolveOutcome) -> None:
    async with ScriptedHttpServer(lambda _req: reply) as server, PkarrRelayClient([server.url]) as client:
        resolution = await client.resolve(KEYPAIR.public_key)
    [result] = resolution.results
    assert result.outcome is outcome
    assert (resolution.packet is not None) == (outcome is ResolveOutcome.FOUND)


async def test_a_tampered_get_body_is_refused() -> None:
    tampered = bytearray(PACKET.relay_payload())
    tampered[-1] ^= 0x01  # last byte of the TXT value
    async with answer(200, bytes(tampered)) as server, PkarrRelayClient([server.url]) as client:
        resolution = await client.resolve(KEYPAIR.public_key)
    assert resolution.packet is None
    assert resolution.results[0].outcome is ResolveOutcome.INVALID
    assert "bad signature" in resolution.results[0].detail


async def test_a_relay_that_never_answers_times_out_and_the_others_still_count() -> None:
    async with ScriptedHttpServer(lambda _req: SILENCE) as silent, answer(200, PACKET.relay_payload()) as good:
        async with PkarrRelayClient([silent.url, good.url], request_timeout=0.3) as client:
            started = time.monotonic()
            resolution = await client.resolve(KEYPAIR.public_key)
            published = await client.publish(PACKET)
            elapsed = time.monotonic() - started
    assert elapsed < 3.0  # two bounded waits, not a hang
    assert [r.outcome for r in resolution.results] == [ResolveOutcome.UNAVAILABLE, ResolveOutcome.FOUND]
    assert resolution.results[0].detail == "timed out"
    assert resolution.packet == PACKET
    assert [r.outcome for r in published] == [PublishOutcome.UNAVAILABLE, PublishOutcome.STORED]


async def test_connection_refused_is_unavailable_not_an_exception() -> None:
    async with PkarrRelayClient([closed_port_url()]) as client:
        [put] = await client.publish(PACKET)
        resolution = await client.resolve(KEYPAIR.public_key)
    assert put.outcome is PublishOutcome.UNAVAILABLE and put.status is None
    assert put.detail.startswith("cannot connect")
    assert resolution.results[0].outcome is ResolveOutcome.UNAVAILABLE
    assert not resolution.any_answered


async def test_most_recent_packet_wins_across_relays() -> None:
    newer = SignedPacket.build(KEYPAIR, [TxtRecord("_can_sync", "01" * 32, 300)], PACKET.timestamp + 1)
    async with answer(200, PACKET.relay_payload()) as a, answer(200, newer.relay_payload()) as b:
        async with PkarrRelayClient([a.url, b.url]) as client:
            assert (await client.resolve(KEYPAIR.public_key)).packet == newer
        async with PkarrRelayClient([b.url, a.url]) as client:
            assert (await client.resolve(KEYPAIR.public_key)).packet == newer


def test_relay_urls_must_be_http() -> None:
    with pytest.raises(ValueError, match="not an http"):
        PkarrRelayClient(["ftp://example"])
