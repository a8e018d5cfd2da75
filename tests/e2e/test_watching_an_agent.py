"""Watching and steering a running agent as a person would: the dashboard in a real browser during a
sync, /metrics, pausing a peer from the command line, a quiet log, and a wrong key said in one line."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import SYNC_KEY, Cluster
from tests.helpers import plain_http
from tests.helpers.agent_process import AgentStartError
from tests.helpers.assets import ingest, make_bytes, store_digests
from tests.helpers.browser import launch_browser
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import free_port, wait_until

KiB = 1024
MiB = 1024 * KiB
ROWS = "[...document.querySelectorAll('{table} tbody tr')]"


def status(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(f"{url}/api/status", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


async def test_the_dashboard_shows_two_peers_and_a_transfer_during_a_sync_and_finds_an_asset(
    cluster: Cluster, tmp_path: Path
):
    a, b, c = cluster.add("a"), cluster.add("b"), cluster.add("c")
    web = f"127.0.0.1:{free_port()}"
    url = f"http://{web}"
    a.start_agent(web_addr=web)
    small = ingest(c.api, make_bytes(3, 20 * KiB), "small.bin")
    big = ingest(b.api, make_bytes(4, 8 * MiB), "big.bin")
    c.start_agent(connect_ticket_file=a.home / "ticket.json")
    async with launch_browser(tmp_path / "chromium") as browser:
        page = await browser.open(url)
        # b starts once the page is open, so its transfer need only outlast a few of the page's 1 s refreshes,
        # not the browser's start as well: 8 MiB at this limit are in flight for ~7 s
        await asyncio.to_thread(b.start_agent, connect_ticket_file=a.home / "ticket.json", max_send_kbps=2048)
        await page.wait_for(
            f"{ROWS.format(table='#peers')}.filter(r => r.innerText.includes('authenticated')).length === 2"
        )
        await page.wait_for(f"{ROWS.format(table='#transfers')}.some(r => r.dataset.hash === '{big}')", timeout=30)
        moving = await page.evaluate(
            f"{ROWS.format(table='#transfers')}.filter(r => r.dataset.hash === '{big}').map(r => r.innerText)[0]"
        )
        assert "in" in moving and b.agent is not None and b.agent.endpoint_id[:12] in moving
        assert wait_until(lambda: small in store_digests(a.store.url, SYNC_KEY), timeout=30)
        await page.type_text("#audit-input", small[:8])
        await page.click("#audit-button")
        await page.wait_for(f"{ROWS.format(table='#audit')}.some(r => r.dataset.kind === 'asset_received')")
        found = await page.evaluate(f"{ROWS.format(table='#audit')}.map(r => [r.dataset.kind, r.innerText])")
        received = [text for kind, text in found if kind == "asset_received"]
        assert c.agent is not None and len(received) == 1 and c.agent.endpoint_id[:12] in received[0]
        assert not [line for line in page.console if line.startswith("uncaught")], page.console
    assert wait_until(lambda: big in store_digests(a.store.url, SYNC_KEY), timeout=60)


def test_metrics_parse_and_count_what_moved(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    web = f"127.0.0.1:{free_port()}"
    a.start_agent(web_addr=web)
    assets = [ingest(b.api, make_bytes(10 + n, 30 * KiB), f"m{n}.bin") for n in range(3)]
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    assert wait_until(lambda: set(assets) <= set(store_digests(a.store.url, SYNC_KEY)), timeout=30)
    assert b.agent is not None
    peer = b.agent.endpoint_id

    def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = plain_http.get(f"http://{web}/metrics", timeout=5).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    assert wait_until(lambda: samples().get(("cansync_peer_received_assets_total", (("peer", peer),))) == 3, 10)
    found = samples()
    assert found[("cansync_peer_received_bytes_total", (("peer", peer),))] == 90 * KiB
    assert found[("cansync_sessions", ())] == 1
    assert found[("cansync_store_reachable", ())] == 1
    assert found[("cansync_journal_events_total", ())] > 0


def test_a_peer_paused_from_the_command_line_stops_syncing_until_resumed(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    web = f"127.0.0.1:{free_port()}"
    a.start_agent(web_addr=web)
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    first = ingest(b.api, make_bytes(20, 10 * KiB), "first.bin")
    assert wait_until(lambda: first in store_digests(a.store.url, SYNC_KEY), timeout=30)
    assert a.agent is not None and b.agent is not None
    peer = b.agent.endpoint_id
    out = a.agent.cli("peer", "pause", peer[:12]).stdout
    assert "paused" in out
    assert wait_until(lambda: status(f"http://{web}")["sessions"] == 0, timeout=10)
    held_back = ingest(b.api, make_bytes(21, 10 * KiB), "held.bin")

    def dials_from_b() -> int:
        rows = journal_rows(a.home, "SELECT data FROM events WHERE kind='peer_connected' AND peer=?", peer)
        return sum(json.loads(data)["direction"] == "in" for (data,) in rows)

    # b keeps dialing with held_back to offer (every ~0.5 s); a takes each connection and refuses it while paused
    dials = dials_from_b()
    assert wait_until(lambda: dials_from_b() >= dials + 3 or held_back in store_digests(a.store.url, SYNC_KEY), 30)
    assert held_back not in store_digests(a.store.url, SYNC_KEY)
    shown = {p["id"]: p for p in status(f"http://{web}")["peers"]}
    assert shown[peer]["paused"] is True
    a.agent.cli("peer", "resume", peer[:12])
    assert wait_until(lambda: held_back in store_digests(a.store.url, SYNC_KEY), timeout=30)
    kinds = [k for (k,) in journal_rows(a.home, "SELECT kind FROM events WHERE peer=? ORDER BY seq", peer)]
    assert "peer_paused" in kinds and "peer_resumed" in kinds
    assert kinds.index("peer_paused") < kinds.index("peer_resumed")


def test_an_idle_synced_pair_is_silent_at_the_default_log_level(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    a.start_agent(log_level="INFO")
    ingest(a.api, make_bytes(30, 10 * KiB), "one.bin")
    b.start_agent(connect_ticket_file=a.home / "ticket.json", log_level="INFO")
    assert wait_until(lambda: len(store_digests(b.store.url, SYNC_KEY)) == 1, timeout=30)
    time.sleep(3)  # let the sync's own lines finish
    assert a.agent is not None and b.agent is not None
    before = (len(a.agent.log_text().splitlines()), len(b.agent.log_text().splitlines()))
    time.sleep(12)  # keepalives (10 s) and store polls (3 s) go on, and say nothing (bench/idle_log_bench.py: 5 min)
    after = (len(a.agent.log_text().splitlines()), len(b.agent.log_text().splitlines()))
    new_lines = a.agent.log_text().splitlines()[before[0] :] + b.agent.log_text().splitlines()[before[1] :]
    assert after == before, new_lines
    assert not [line for line in a.agent.log_text().splitlines() if "HTTP Request" in line]


def test_a_wrong_sync_api_key_stops_the_agent_with_one_line_that_says_what_to_fix(cluster: Cluster):
    a = cluster.add("a")
    try:
        a.start_agent(sync_api_key="not-the-stores-key", log_level="INFO")
    except AgentStartError as refused:
        message = str(refused)
    else:
        raise AssertionError("an agent with a wrong sync_api_key kept running")
    lines = [line for line in message.splitlines() if line.startswith("cansync run:")]
    assert len(lines) == 1, message
    assert "sync_api_key" in lines[0] and re.search(r"40[13]", lines[0]), lines[0]
    assert "Traceback" not in message
