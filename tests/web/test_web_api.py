"""The JSON API, /metrics and the guards, served over real sockets from a view of a real journal."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cansync.web.server import REQUEST_HEADER, WebConfigError, WebServer, start_web
from tests.web.journal_view import (
    ALICE,
    BOB,
    FROM_ALICE,
    LOCAL,
    MOVING_IN,
    MOVING_OUT,
    OURS,
    STORE_URL,
    STRANGER,
    TO_BOB,
    JournalView,
)


def client(server: WebServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10)


async def test_status_follows_the_documented_schema(server: WebServer) -> None:
    async with client(server) as http:
        response = await http.get("/api/status")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    status = response.json()
    assert set(status) == {
        "endpoint_id", "started_ms", "store", "journal", "peers", "transfers", "totals", "failures", "sessions",
        "errors", "rates",
    }  # fmt: skip
    assert status["endpoint_id"] == OURS and status["store"] == {"url": STORE_URL, "reachable": True}
    peers = {p["id"]: p for p in status["peers"]}
    assert set(peers) == {ALICE, BOB, STRANGER}
    alice, bob, stranger = peers[ALICE], peers[BOB], peers[STRANGER]
    assert (alice["link"], alice["found_via"], alice["in_session"]) == ("authenticated", ["lan"], True)
    assert (alice["bytes_in"], alice["assets_in"], alice["assets_out"]) == (5000, 1, 0)
    assert (bob["found_via"], bob["bytes_out"], bob["assets_out"], bob["wanted"]) == (["pkarr"], 2048, 1, 1)
    assert stranger["link"] == "rejected" and (stranger["owed"], stranger["wanted"]) == (0, 0)  # no debts
    moving = {(t["direction"], t["hash"]): t for t in status["transfers"]}
    assert set(moving) == {("in", MOVING_IN), ("out", MOVING_OUT)}
    assert (moving["in", MOVING_IN]["offset"], moving["in", MOVING_IN]["size"]) == (4_000_000, 10_000_000)
    assert status["totals"]["local_assets"] == len(LOCAL) + 3 and status["totals"]["in_flight"] == 2
    assert status["sessions"] == 2 and status["journal"]["events"] == 28


async def test_journal_finds_an_asset_by_hash_prefix(server: WebServer) -> None:
    async with client(server) as http:
        rows = (await http.get("/api/journal", params={"hash": FROM_ALICE[:6].upper()})).json()["rows"]
        exact = (await http.get("/api/journal", params={"hash": FROM_ALICE})).json()["rows"]
        sent = (await http.get("/api/journal", params={"hash": TO_BOB[:10], "kind": "transfer_completed"})).json()
        by_peer = (await http.get("/api/journal", params={"peer": BOB[:8], "limit": "2"})).json()["rows"]
        everything = (await http.get("/api/journal")).json()["rows"]
    assert rows == exact and [r["kind"] for r in rows] == [
        "asset_received", "transfer_completed", "transfer_started", "transfer_requested",
    ]  # fmt: skip
    received = rows[0]
    assert (received["peer"], received["direction"], received["verified"], received["outcome"]) == (
        ALICE, "in", True, "verified",
    )  # fmt: skip
    assert received["time_ms"] > 0 and rows[1]["size"] == 5000
    [completed] = sent["rows"]
    assert (completed["peer"], completed["direction"], completed["verified"], completed["outcome"]) == (
        BOB, "out", None, "sent",
    )  # fmt: skip
    assert [r["seq"] for r in by_peer] == [25, 24] and all(r["peer"] == BOB for r in by_peer)
    assert len(everything) == 28 and everything[0]["seq"] == 28 and everything[0]["reason"] == "wrong passphrase proof"


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"hash": "xyz"}, "hash must be hex"),
        ({"hash": "a" * 65}, "hash must be hex"),
        ({"kind": "nonsense"}, "kind must be one of"),
        ({"limit": "many"}, "limit must be a whole number"),
    ],
)
async def test_journal_refuses_bad_filters(server: WebServer, params: dict[str, str], words: str) -> None:
    async with client(server) as http:
        response = await http.get("/api/journal", params=params)
    assert response.status_code == 400 and words in response.json()["error"]


async def test_pause_and_resume_a_peer(server: WebServer, view: JournalView) -> None:
    async with client(server) as http:
        refused = await http.post(f"/api/peers/{BOB}/pause")
        assert refused.status_code == 403 and REQUEST_HEADER in refused.json()["error"]
        headers = {REQUEST_HEADER: "1"}
        paused = await http.post(f"/api/peers/{BOB}/pause", headers=headers)
        assert paused.json() == {"peer": BOB, "paused": True}
        assert {p["id"]: p["paused"] for p in (await http.get("/api/status")).json()["peers"]}[BOB] is True
        await http.post(f"/api/peers/{BOB}/resume", headers=headers)
        unknown = await http.post(f"/api/peers/{'0' * 64}/pause", headers=headers)
    assert unknown.status_code == 404
    assert view.pause_calls == [(BOB, True), (BOB, False)] and view.paused == set()


async def test_metrics_parse_as_prometheus_text(server: WebServer) -> None:
    async with client(server) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert all(name.startswith("cansync_") for name in families)

    def sample(family: str, **labels: str) -> float:
        [value] = [s.value for s in families[family].samples if s.labels == labels and not s.name.endswith("_created")]
        return value

    assert families["cansync_peer_received_bytes"].type == "counter"
    assert sample("cansync_peer_received_bytes", peer=ALICE) == 5000
    assert sample("cansync_peer_sent_bytes", peer=BOB) == 2048
    assert sample("cansync_peer_received_assets", peer=ALICE) == 1
    assert sample("cansync_peer_sent_assets", peer=BOB) == 1
    assert sample("cansync_transfers_in_flight", direction="in") == 1
    assert sample("cansync_transfers_in_flight", direction="out") == 1
    assert {s.labels["fault"] for s in families["cansync_failures"].samples} == {"peer", "ours", "link"}
    assert sample("cansync_sessions") == 2
    assert sample("cansync_journal_events") == 28
    assert sample("cansync_store_reachable") == 1
    assert sample("cansync_peer_owed_assets", peer=STRANGER) == 0


async def test_with_a_token_every_route_needs_it(view: JournalView) -> None:
    token = "a-long-random-dashboard-token"
    running = await start_web(view, "127.0.0.1:0", token=token)
    try:
        async with httpx.AsyncClient(base_url=running.url, trust_env=False, timeout=10) as http:
            for path in ("/", "/api/status", "/api/journal", "/metrics"):
                refused = await http.get(path)
                assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
                assert "web_token" in refused.json()["error"] and token not in refused.text
                assert (await http.get(path, params={"token": token + "x"})).status_code == 401
                assert (await http.get(path, params={"token": token})).status_code == 200
                assert (await http.get(path, headers={"Authorization": f"Bearer {token}"})).status_code == 200
            refused_post = await http.post(f"/api/peers/{ALICE}/pause", params={"token": token})
            assert refused_post.status_code == 403  # the token is not enough: a POST needs the page's header
            no_token_post = await http.post(f"/api/peers/{ALICE}/pause", headers={REQUEST_HEADER: "1"})
            assert no_token_post.status_code == 401
    finally:
        await running.close()
    assert view.pause_calls == []


async def test_without_a_token_only_loopback_host_names_are_answered(server: WebServer) -> None:
    async with client(server) as http:
        rebound = await http.get("/api/status", headers={"Host": "attacker.example:3290"})
        local = await http.get("/api/status", headers={"Host": "localhost:3290"})
    assert rebound.status_code == 403 and "loopback" in rebound.json()["error"]
    assert local.status_code == 200


async def test_the_page_is_one_self_contained_file(server: WebServer) -> None:
    async with client(server) as http:
        page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/status" in page.text and "/api/journal" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, nothing fetched from elsewhere


async def test_a_busy_address_is_a_clear_error(server: WebServer, view: JournalView, tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    with pytest.raises(WebConfigError, match=f"cannot serve the dashboard on web_addr 127.0.0.1:{port}"):
        await start_web(view, f"127.0.0.1:{port}", token=None)
