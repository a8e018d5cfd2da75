"""Agents that share only a passphrase find each other: through the pkarr relay, through each other
(peer exchange), and on the LAN. No ticket files in the first and last; a stranger finds no one."""

from __future__ import annotations

from tests.e2e.conftest import SYNC_KEY, Cluster, Node
from tests.helpers.assets import ingest, make_bytes, store_digests
from tests.helpers.journal_db import journal_rows
from tests.helpers.npm_relay import NpmRelay
from tests.helpers.store_process import wait_until

KiB = 1024


def authenticated(node: Node) -> set[str]:
    return {p for (p,) in journal_rows(node.home, "SELECT DISTINCT peer FROM events WHERE kind='peer_authenticated'")}


def discovered_via(node: Node) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for peer, via in journal_rows(
        node.home, "SELECT peer, json_extract(data,'$.via') FROM events WHERE kind='peer_discovered'"
    ):
        found.setdefault(peer, set()).add(via)
    return found


def seed_assets(nodes: list[Node]) -> set[str]:
    return {ingest(n.api, make_bytes(500 + i, 20 * KiB), f"{n.name}.bin") for i, n in enumerate(nodes)}


def assert_full_mesh_and_union(nodes: list[Node], union: set[str], timeout: float) -> None:
    ids = {n.name: n.agent.endpoint_id for n in nodes}  # type: ignore[union-attr]
    for node in nodes:
        others = {ids[o.name] for o in nodes if o is not node}
        assert wait_until(lambda n=node, o=others: o <= authenticated(n), timeout=timeout, interval=0.25), (
            f"{node.name} did not meet {sorted(x[:8] for x in others - authenticated(node))}"
        )
    for node in nodes:
        assert wait_until(lambda n=node: set(store_digests(n.store.url, SYNC_KEY)) == union, timeout=timeout), (
            f"{node.name} did not converge"
        )


def test_three_agents_meet_through_the_pkarr_relay_and_a_stranger_meets_no_one(cluster: Cluster, npm_relay: NpmRelay):
    nodes = [cluster.add(name) for name in ("a", "b", "c")]
    stranger = cluster.add("stranger")
    union = seed_assets(nodes)
    stranger_asset = ingest(stranger.api, b"not for you" * 100, "s.bin")
    fast = {"pkarr_relays": [npm_relay.url], "rendezvous_scan_secs": 1, "rendezvous_publish_secs": 2}
    for node in nodes:
        node.start_agent(**fast)
    stranger.start_agent(sync_passphrase="another phrase entirely", **fast)

    assert_full_mesh_and_union(nodes, union, timeout=90)
    stranger_id = stranger.agent.endpoint_id  # type: ignore[union-attr]
    for node in nodes:
        assert "pkarr" in set().union(*discovered_via(node).values())
        assert stranger_id not in discovered_via(node)
        assert stranger_asset not in store_digests(node.store.url, SYNC_KEY)
    assert discovered_via(stranger) == {}
    assert set(store_digests(stranger.store.url, SYNC_KEY)) == {stranger_asset}


def test_peer_exchange_forms_a_mesh_from_one_meeting_point(cluster: Cluster):
    a, b, c = (cluster.add(name) for name in ("a", "b", "c"))
    union = seed_assets([a, b, c])
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    c.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert_full_mesh_and_union([a, b, c], union, timeout=60)
    a_found = discovered_via(a)
    assert "exchange" in a_found[c.agent.endpoint_id] or "incoming" in a_found[c.agent.endpoint_id]  # type: ignore[union-attr]
    assert "exchange" in a_found.get(c.agent.endpoint_id, set()) | discovered_via(c).get(a.agent.endpoint_id, set())  # type: ignore[union-attr]


def test_three_agents_meet_on_the_lan_with_no_relay_and_no_ticket(cluster: Cluster):
    nodes = [cluster.add(name) for name in ("a", "b", "c")]
    union = seed_assets(nodes)
    for node in nodes:
        node.start_agent(lan_discovery=True)
    assert_full_mesh_and_union(nodes, union, timeout=60)
    # the first beacons may lose the race to peer exchange; within two beacon rounds each has heard LAN beacons
    for node in nodes:
        assert wait_until(lambda n=node: "lan" in set().union(*discovered_via(n).values()), timeout=15), (
            f"{node.name} never heard a LAN beacon"
        )
