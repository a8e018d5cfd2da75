"""Metadata and trash follow, live and across an outage; concurrent edits settle the same everywhere."""

from __future__ import annotations

import time

from tests.e2e.conftest import Cluster, Node
from tests.helpers import plain_http
from tests.helpers.assets import ingest, make_bytes
from tests.helpers.store_process import wait_until

KiB = 1024


def record(node: Node, asset: str) -> dict:
    listing = plain_http.get(f"{node.api}/list", params={"include_trashed": "true"}, timeout=30).json()["data"]
    return next(r for r in listing if r["hash"] == asset)


def view(node: Node, asset: str) -> tuple:
    r = record(node, asset)
    return (tuple(sorted(r["tags"])), r["description"], r["trashed"])


def test_trash_and_retag_follow_live_and_after_an_outage(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    asset = ingest(a.api, make_bytes(41, 10 * KiB), "doc.txt", tags="draft")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert wait_until(lambda: any(r["hash"] == asset for r in plain_http.get(f"{b.api}/list").json()["data"]), 20)

    # live
    plain_http.post(f"{a.api}/asset/{asset}/trash").raise_for_status()
    assert wait_until(lambda: view(b, asset)[2] is True, 10), "trash did not follow live"

    # while B's agent is down, A restores and retags; B catches up when it comes back
    b.agent.stop()  # type: ignore[union-attr]
    plain_http.post(f"{a.api}/asset/{asset}/restore").raise_for_status()
    plain_http.patch(f"{a.api}/asset/{asset}", json={"tags": "final,reviewed", "description": "v2"}).raise_for_status()
    b.start_agent()
    assert wait_until(lambda: view(b, asset) == (("final", "reviewed"), "v2", False), 20), (
        f"B did not catch up on edits made while it was away: {view(b, asset)}"
    )


def test_concurrent_edits_on_both_sides_settle_on_the_later_one_everywhere(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    asset = ingest(a.api, make_bytes(42, 10 * KiB), "both.txt")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert wait_until(lambda: any(r["hash"] == asset for r in plain_http.get(f"{b.api}/list").json()["data"]), 20)
    a.agent.stop()  # type: ignore[union-attr]
    b.agent.stop()  # type: ignore[union-attr]
    # two edits while apart: B's is later
    plain_http.patch(f"{a.api}/asset/{asset}", json={"description": "from a"}).raise_for_status()
    time.sleep(0.05)
    plain_http.patch(f"{b.api}/asset/{asset}", json={"description": "from b"}).raise_for_status()
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert wait_until(lambda: view(a, asset)[1] == "from b" and view(b, asset)[1] == "from b", 20), (
        f"edits did not settle: a={view(a, asset)} b={view(b, asset)}"
    )
    # the losing edit is journaled, not silently dropped
    lost = [r for node in (a, b) for r in node.agent.journal("--hash", asset, "--kind", "metadata_superseded")]  # type: ignore[union-attr]
    assert any(r["data"]["loser"]["description"] == "from a" for r in lost)
