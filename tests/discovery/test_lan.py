"""LAN discovery: real multicast beacons on lo inside the loopback-only namespace (tests/isolate.sh).

Every agent here sends and listens on 127.0.0.1 only; a module fixture refuses to run outside the namespace so
no test ever multicasts on a real interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.discovery.lan import (
    DEFAULT_GROUP,
    MAGIC,
    MAX_ADDRS,
    MAX_BEACON_SIZE,
    Beacon,
    BeaconError,
    DropReason,
    LanDiscovery,
    LanKeys,
    decode_beacon,
    dialable_addrs,
    encode_beacon,
    multicast_interfaces,
)

LOOPBACK = ["127.0.0.1"]
INTERVAL = 0.1
WAIT = 5.0


def _ip_json(*args: str) -> list[dict[str, Any]]:
    return json.loads(subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout)


@pytest.fixture(scope="module", autouse=True)
def inside_isolated_namespace() -> None:
    links = [str(link["ifname"]) for link in _ip_json("link", "show")]
    if links != ["lo"]:
        pytest.fail(
            f"test_lan.py multicasts: run it through tests/isolate.sh (interfaces here: {links})", pytrace=False
        )
    assert "MULTICAST" in _ip_json("link", "show", "lo")[0]["flags"], "tests/isolate.sh should set multicast on lo"


@pytest.fixture
def port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_id() -> str:
    return os.urandom(32).hex()


class PeerLog:
    """What one agent's on_peer was told: endpoint id -> the latest address list."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def sync(self, endpoint_id: str, addrs: list[str]) -> None:
        self.seen[endpoint_id] = addrs

    async def awaitable(self, endpoint_id: str, addrs: list[str]) -> None:
        await asyncio.sleep(0)
        self.seen[endpoint_id] = addrs


def agent(
    passphrase: str,
    endpoint_id: str,
    addrs: list[str],
    port: int,
    on_peer: Callable[[str, list[str]], Any],
    interfaces: list[str] | None = LOOPBACK,
) -> LanDiscovery:
    return LanDiscovery(
        passphrase, endpoint_id, lambda: list(addrs), on_peer, port=port, interval=INTERVAL, interfaces=interfaces
    )


@contextlib.asynccontextmanager
async def running(*discoveries: LanDiscovery) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(d.run()) for d in discoveries]
    try:
        yield tasks
        for task in tasks:
            assert not task.done(), f"run() ended on its own: {task.exception()!r}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {WAIT} s waiting for {what}")
        await asyncio.sleep(0.02)


def sees_exactly(peers: PeerLog, expected: dict[str, list[str]]) -> Callable[[], bool]:
    return lambda: peers.seen == expected


def has_dropped(discovery: LanDiscovery, at_least: dict[str, int]) -> Callable[[], bool]:
    return lambda: all(discovery.dropped.get(reason, 0) >= n for reason, n in at_least.items())


@contextlib.contextmanager
def injector() -> Iterator[Callable[[bytes, int], None]]:
    """A bare socket multicasting arbitrary datagrams to the group on lo, like a stranger on the LAN."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))

        def send(data: bytes, port: int) -> None:
            sock.sendto(data, (DEFAULT_GROUP, port))

        yield send


# --- agents on one host find each other -------------------------------------------------------------------


async def test_three_agents_of_one_passphrase_find_each_other_and_not_a_fourth(port: int) -> None:
    ids = [new_id() for _ in range(4)]
    logs = [PeerLog() for _ in range(4)]
    announced = [
        ["127.0.0.1:5001", "[::1]:5001"],
        ["0.0.0.0:5002"],
        ["0.0.0.0:5003", "[::]:5004", "127.0.0.1:5003"],
        ["127.0.0.1:5004"],
    ]
    expected = [["127.0.0.1:5001", "[::1]:5001"], ["127.0.0.1:5002"], ["127.0.0.1:5003"]]
    callbacks = [logs[0].sync, logs[1].awaitable, logs[2].sync]  # one agent with an async callback
    agents = [agent("correct horse", ids[i], announced[i], port, callbacks[i]) for i in range(3)]
    stranger = agent("battery staple", ids[3], announced[3], port, logs[3].sync)

    async with running(*agents, stranger):
        for i in range(3):
            others = {ids[j]: expected[j] for j in range(3) if j != i}
            await wait_until(sees_exactly(logs[i], others), f"agent {i} to see the other two")
        # the stranger's beacons did arrive (and ours at the stranger), and were dropped as another room's
        await wait_until(
            lambda: (
                all(a.dropped.get("wrong_room", 0) >= 2 for a in agents) and stranger.dropped.get("wrong_room", 0) >= 6
            ),
            "beacons of the other passphrase to arrive",
        )

    assert logs[3].seen == {} and stranger.accepted == 0
    assert all(ids[3] not in log.seen for log in logs[:3])
    assert all(a.dropped.get("own", 0) >= 1 for a in [*agents, stranger])
    assert all(set(a.dropped) <= {"own", "wrong_room"} for a in [*agents, stranger])
    assert all(a.accepted >= 2 for a in agents)


async def test_the_default_interfaces_are_the_multicast_ones(port: int) -> None:
    oracle = [
        str(info["local"])
        for link in _ip_json("-4", "addr", "show")
        if {"UP", "MULTICAST"} <= set(link["flags"])
        for info in link["addr_info"][:1]
    ]
    assert multicast_interfaces() == oracle == ["127.0.0.1"]

    ids, logs = [new_id(), new_id()], [PeerLog(), PeerLog()]
    agents = [agent("pw", ids[i], [f"0.0.0.0:{7000 + i}"], port, logs[i].sync, interfaces=None) for i in range(2)]
    async with running(*agents):
        await wait_until(lambda: ids[1] in logs[0].seen and ids[0] in logs[1].seen, "both to meet on lo")
    assert logs[0].seen == {ids[1]: ["127.0.0.1:7001"]}


# --- what a stranger on the LAN can send --------------------------------------------------------------------


def _sealed(keys: LanKeys, body: bytes) -> bytes:
    return body + hmac.digest(keys.mac_key, body, "sha256")


async def test_forged_broken_and_own_beacons_are_dropped_and_discovery_goes_on(port: int) -> None:
    keys = LanKeys.from_passphrase("pw")
    ids, logs = [new_id(), new_id(), new_id()], [PeerLog(), PeerLog(), PeerLog()]
    a, b = (agent("pw", ids[i], [f"127.0.0.1:{8000 + i}"], port, logs[i].sync) for i in range(2))
    forger_ids = [new_id() for _ in range(3)]
    valid = encode_beacon(keys, forger_ids[0], ["127.0.0.1:6666"])
    tampered = bytearray(encode_beacon(keys, forger_ids[1], ["127.0.0.1:6666"]))
    tampered[-33] ^= 0x01  # the last byte of the port, just before the 32-byte MAC
    header_count_1 = valid[: len(MAGIC) + 1 + 16] + bytes.fromhex(forger_ids[2]) + bytes([1])
    junk = {
        "bad_mac": [
            encode_beacon(LanKeys(keys.room, os.urandom(32)), forger_ids[0], ["127.0.0.1:6666"]),
            bytes(tampered),
        ],
        "malformed": [valid[:40], _sealed(keys, header_count_1), _sealed(keys, header_count_1 + b"\x05" + b"\0" * 6)],
        "foreign": [b"", b"X" + os.urandom(99)],
        "unknown_version": [MAGIC + b"\x02" + valid[5:]],
        "oversized": [valid + b"\0" * (MAX_BEACON_SIZE + 1 - len(valid)), MAGIC + os.urandom(4000)],
    }
    repeats = 3

    async with running(a, b):
        await wait_until(lambda: ids[1] in logs[0].seen and ids[0] in logs[1].seen, "a and b to meet")
        own_at_a = a.dropped.get("own", 0)
        with injector() as send:
            for _ in range(repeats):
                for datagrams in junk.values():
                    for datagram in datagrams:
                        send(datagram, port)
                send(encode_beacon(keys, ids[0], ["127.0.0.1:6666"]), port)  # a's id from the injector
                await asyncio.sleep(0.01)
        expected = {reason: repeats * len(datagrams) for reason, datagrams in junk.items()}
        for listener in (a, b):
            await wait_until(has_dropped(listener, expected), "every junk datagram to be counted")
        assert a.dropped.get("own", 0) >= own_at_a + repeats
        assert logs[1].seen[ids[0]] in (["127.0.0.1:8000"], ["127.0.0.1:6666"])  # a valid beacon is a valid beacon

        c = agent("pw", ids[2], ["127.0.0.1:8002"], port, logs[2].sync)
        async with running(c):
            await wait_until(
                lambda: ids[2] in logs[0].seen and ids[2] in logs[1].seen and {ids[0], ids[1]} <= set(logs[2].seen),
                "a newcomer to be found after the junk",
            )

    for listener in (a, b):
        assert {r: listener.dropped.get(r, 0) for r in expected} == expected
    assert not set(forger_ids) & (set(logs[0].seen) | set(logs[1].seen) | set(logs[2].seen))


# --- trouble with sockets and callbacks ----------------------------------------------------------------------


async def test_socket_and_callback_trouble_is_logged_and_retried(port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cansync.discovery.lan")
    ids, logs = [new_id(), new_id()], [PeerLog(), PeerLog()]
    calls = 0

    def failing_callback(endpoint_id: str, addrs: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the caller's bug")
        logs[0].sync(endpoint_id, addrs)

    # an interface address no interface here has: joining and sending on it fail, lo still works
    announced = ["127.0.0.1:9000", "not an address", "[fe80::1%lo]:9"]
    a = agent("pw", ids[0], announced, port, failing_callback, interfaces=["10.9.9.9", "127.0.0.1"])
    b = agent("pw", ids[1], ["127.0.0.1:9001"], port, logs[1].sync)

    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # holds the port without SO_REUSEADDR
    blocker.bind(("0.0.0.0", port))
    try:
        async with running(a, b):
            await wait_until(lambda: "multicast socket" in caplog.text, "the bind failure to be logged")
            blocker.close()  # the port frees up: both reopen their sockets on the next round
            await wait_until(lambda: ids[1] in logs[0].seen and ids[0] in logs[1].seen, "a and b to meet")
    finally:
        blocker.close()

    assert calls >= 2
    assert logs[1].seen[ids[0]] == ["127.0.0.1:9000"]  # the unusable addresses were left out
    text = caplog.text
    assert f"239.255.67.83:{port} failed" in text and "reopening" in text
    assert "cannot join 239.255.67.83 on interface 10.9.9.9" in text
    assert f"cannot send to 239.255.67.83:{port} on interface 10.9.9.9" in text
    assert "on_peer callback failed" in text and "the caller's bug" in text
    assert "not announcing" in text


def test_constructor_rejects_bad_settings() -> None:
    def make(**kwargs: Any) -> LanDiscovery:
        return LanDiscovery("pw", kwargs.pop("eid", new_id()), list, PeerLog().sync, **kwargs)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"eid": "abc"}, "64 hex"),
        ({"group": "10.0.0.1"}, "multicast"),
        ({"port": 0}, "1..65535"),
        ({"interval": 0}, "positive"),
        ({"interfaces": ["eth0"]}, "eth0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            make(**kwargs)


# --- the beacon format, as pure functions ----------------------------------------------------------------------

ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: f"[{ipaddress.IPv6Address(n)}]", st.integers(0, 2**128 - 1))
socket_addr = st.builds(lambda host, p: f"{host}:{p}", ipv4 | ipv6, st.integers(1, 65535))
endpoint_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)
passphrases = st.text(max_size=40)


@settings(max_examples=200, deadline=None)
@given(passphrases, endpoint_ids, st.lists(socket_addr, max_size=MAX_ADDRS))
def test_round_trip(passphrase: str, endpoint_id: str, addrs: list[str]) -> None:
    keys = LanKeys.from_passphrase(passphrase)
    data = encode_beacon(keys, endpoint_id.upper(), addrs)
    assert len(data) <= MAX_BEACON_SIZE
    assert decode_beacon(keys, data) == Beacon(endpoint_id, tuple(addrs))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_BEACON_SIZE + 50) | st.binary(max_size=200).map(lambda b: MAGIC + b"\x01" + b))
def test_decoding_arbitrary_bytes_only_raises_beacon_error(data: bytes) -> None:
    with pytest.raises(BeaconError) as caught:
        decode_beacon(LanKeys.from_passphrase("pw"), data)
    assert caught.value.reason in set(DropReason) - {DropReason.OWN}


def _reason_for_change_at(index: int) -> DropReason:
    if index < len(MAGIC):
        return DropReason.FOREIGN
    if index == len(MAGIC):
        return DropReason.UNKNOWN_VERSION
    if index < len(MAGIC) + 1 + 16:
        return DropReason.WRONG_ROOM
    return DropReason.BAD_MAC  # everything after the room tag, the MAC itself included, is covered by the MAC


@settings(max_examples=300, deadline=None)
@given(endpoint_ids, st.lists(socket_addr, max_size=4), st.data())
def test_every_changed_byte_is_caught_by_the_right_check(
    endpoint_id: str, addrs: list[str], data: st.DataObject
) -> None:
    keys = LanKeys.from_passphrase("pw")
    beacon = bytearray(encode_beacon(keys, endpoint_id, addrs))
    index = data.draw(st.integers(0, len(beacon) - 1))
    beacon[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(BeaconError) as caught:
        decode_beacon(keys, bytes(beacon))
    assert caught.value.reason is _reason_for_change_at(index)


@settings(max_examples=100, deadline=None)
@given(endpoint_ids, st.lists(socket_addr, max_size=4), st.integers(1, 200))
def test_cut_or_extended_beacons_are_refused(endpoint_id: str, addrs: list[str], amount: int) -> None:
    keys = LanKeys.from_passphrase("pw")
    beacon = encode_beacon(keys, endpoint_id, addrs)
    for changed in (beacon[: max(0, len(beacon) - amount)], beacon + os.urandom(amount)):
        with pytest.raises(BeaconError):
            decode_beacon(keys, changed)


def test_rooms_and_keys_come_from_the_passphrase() -> None:
    keys = LanKeys.from_passphrase("pw")
    context = "cansync 2026-11 lan room v1"
    assert keys.room == blake3.blake3(b"pw", derive_key_context=context).digest()[:16]
    assert len(keys.mac_key) == 32 and keys.mac_key[:16] != keys.room
    assert "mac_key" not in repr(keys)
    other = LanKeys.from_passphrase("pw ")
    assert other.room != keys.room
    with pytest.raises(BeaconError) as caught:
        decode_beacon(other, encode_beacon(keys, new_id(), ["127.0.0.1:1"]))
    assert caught.value.reason is DropReason.WRONG_ROOM


def test_encode_refuses_what_it_cannot_announce() -> None:
    keys = LanKeys.from_passphrase("pw")
    for bad in ["localhost:1", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4: 5", "[fe80::1%lo]:5", "::1:5"]:
        with pytest.raises(ValueError):
            encode_beacon(keys, new_id(), [bad])
    with pytest.raises(ValueError, match="64 hex"):
        encode_beacon(keys, "zz" * 32, [])
    with pytest.raises(ValueError, match="at most 16"):
        encode_beacon(keys, new_id(), ["127.0.0.1:1"] * (MAX_ADDRS + 1))
    biggest = encode_beacon(keys, new_id(), [f"[{ipaddress.IPv6Address(2**128 - 1)}]:65535"] * MAX_ADDRS)
    assert len(biggest) <= MAX_BEACON_SIZE


def test_unspecified_addresses_become_the_source() -> None:
    announced = ("0.0.0.0:5", "[::]:6", "10.0.0.2:5", "192.168.1.9:7", "[2001:db8::1]:8")
    assert dialable_addrs(announced, "10.0.0.2") == ["10.0.0.2:5", "192.168.1.9:7", "[2001:db8::1]:8"]
