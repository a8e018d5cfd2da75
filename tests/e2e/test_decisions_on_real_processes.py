"""The core's decisions, seen from outside on real processes: in a mesh each asset arrives once per
receiver, and a library of small files crosses with one request per asset and nothing failing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.e2e.conftest import SYNC_KEY, Cluster, Node
from tests.helpers.assets import ingest, make_bytes, push_many, store_digests
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import wait_until

KiB = 1024


def received_marks(node: Node) -> Counter[str]:
    return Counter(h for (h,) in journal_rows(node.home, "SELECT hash FROM events WHERE kind='asset_received'"))


def settled_marks(node: Node, expected: set[str]) -> Counter[str]:
    """The received marks once every expected one is journaled: the agent journals a mark only after its store
    took the asset, so a store's listing can show an asset a moment before the mark is there."""
    wait_until(lambda: set(received_marks(node)) >= expected, timeout=30)
    return received_marks(node)


@pytest.mark.parametrize("order", ["abc", "cba"])
def test_in_a_mesh_of_three_each_asset_is_received_once_by_each_receiver(cluster: Cluster, order: str):
    nodes = {name: cluster.add(name) for name in "abc"}
    owned: dict[str, set[str]] = {}
    for index, (name, node) in enumerate(sorted(nodes.items())):
        owned[name] = {ingest(node.api, make_bytes(100 * index + n, 40 * KiB), f"{name}{n}.bin") for n in range(5)}
    union = set().union(*owned.values())
    first = nodes[order[0]]
    first.start_agent()
    for name in order[1:]:  # each dials the first; peer exchange makes the mesh
        nodes[name].start_agent(connect_ticket_file=first.home / "ticket.json")
    for node in nodes.values():
        assert wait_until(lambda n=node: set(store_digests(n.store.url, SYNC_KEY)) == union, timeout=60), node.name
    for name, node in nodes.items():
        marks = settled_marks(node, union - owned[name])
        assert set(marks) == union - owned[name], name
        assert max(marks.values()) == 1, f"{name} received {[h[:8] for h, c in marks.items() if c > 1]} twice"


def test_six_agents_converge_and_each_receives_each_asset_once(cluster: Cluster):
    """Six agents, each with assets of its own and one asset that three of them already hold: all end
    with the union, and no receiver takes any asset twice, however many peers offered it."""
    nodes = [cluster.add(f"n{i}") for i in range(6)]
    shared = make_bytes(999, 24 * KiB)
    owned: dict[str, set[str]] = {}
    for index, node in enumerate(nodes):
        owned[node.name] = {ingest(node.api, make_bytes(600 + 10 * index + n, 20 * KiB), f"x{n}.bin") for n in range(4)}
        if index % 2 == 0:
            owned[node.name].add(ingest(node.api, shared, "shared.bin"))
    union = set().union(*owned.values())
    hub = nodes[0]
    hub.start_agent()
    for node in nodes[1:]:  # all dial the first; peer exchange does the rest
        node.start_agent(connect_ticket_file=hub.home / "ticket.json")
    for node in nodes:
        assert wait_until(lambda n=node: set(store_digests(n.store.url, SYNC_KEY)) == union, timeout=120), node.name
    for node in nodes:
        marks = settled_marks(node, union - owned[node.name])
        assert set(marks) == union - owned[node.name], node.name
        assert max(marks.values()) == 1, f"{node.name} received {[h[:8] for h, c in marks.items() if c > 1]} twice"


def test_two_thousand_small_files_cross_with_one_request_each_and_nothing_failing(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    rng = random.Random(2000)
    sizes = [rng.randint(1 * KiB, 16 * KiB) for _ in range(2000)]
    files = [(make_bytes(10_000 + n, sizes[n]), f"s{n}.bin") for n in range(2000)]
    hashes = set(push_many(a.store.url, SYNC_KEY, files))
    assert len(hashes) == 2000
    # at the default level: DEBUG writes a line per SQL statement and HTTP event, thousands a second here
    a.start_agent(log_level="INFO")
    b.start_agent(connect_ticket_file=a.home / "ticket.json", log_level="INFO")
    assert wait_until(lambda: set(store_digests(b.store.url, SYNC_KEY)) == hashes, timeout=240, interval=1)
    requests = journal_rows(
        b.home, "SELECT count(*) FROM events WHERE kind='transfer_requested' AND json_extract(data,'$.direction')='in'"
    )[0][0]
    failed = journal_rows(b.home, "SELECT hash, data FROM events WHERE kind='transfer_failed'")
    errors = journal_rows(b.home, "SELECT data FROM events WHERE kind='peer_protocol_error'")
    errors += journal_rows(a.home, "SELECT data FROM events WHERE kind='peer_protocol_error'")
    print(f"2,000 assets: {requests} requests ({requests / 2000:.3f} per asset), {len(failed)} failed")
    assert requests <= 1.02 * 2000, requests
    assert failed == [], failed[:5]
    assert errors == [], errors[:5]
    assert max(received_marks(b).values()) == 1
