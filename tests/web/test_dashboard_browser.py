"""The dashboard in a real headless chromium: it loads, shows the peers and transfers, pauses a peer,
and the audit search finds an asset by a prefix of its hash."""

from __future__ import annotations

from pathlib import Path

from cansync.web.server import start_web
from tests.helpers.browser import launch_browser
from tests.web.journal_view import ALICE, BOB, FROM_ALICE, MOVING_IN, STRANGER, JournalView

ROWS = "[...document.querySelectorAll('{table} tbody tr')]"


async def test_the_dashboard_shows_peers_and_finds_an_asset_by_hash_prefix(view: JournalView, tmp_path: Path) -> None:
    token = "browser-test-token"
    server = await start_web(view, "127.0.0.1:0", token=token)
    try:
        async with launch_browser(tmp_path / "chromium") as browser:
            page = await browser.open(f"{server.url}/?token={token}")
            # the page polled /api/status (passing the token on) and drew the three peers
            await page.wait_for(f"{ROWS.format(table='#peers')}.length === 3")
            peers = await page.evaluate(
                f"Object.fromEntries({ROWS.format(table='#peers')}.map(r => [r.dataset.peer, r.innerText]))"
            )
            assert set(peers) == {ALICE, BOB, STRANGER}
            assert "authenticated" in peers[ALICE] and "lan" in peers[ALICE] and "4.9 KiB / 1 assets" in peers[ALICE]
            assert "pkarr" in peers[BOB] and "2.0 KiB / 1 assets" in peers[BOB]
            assert "rejected" in peers[STRANGER]
            assert await page.evaluate("document.getElementById('no-peers').hidden") is True
            # transfers with their progress
            moving = await page.evaluate(
                f"Object.fromEntries({ROWS.format(table='#transfers')}.map(r => [r.dataset.hash, r.innerText]))"
            )
            assert len(moving) == 2 and "40%" in moving[MOVING_IN] and "in" in moving[MOVING_IN]

            # pause bob with the button, as a person would; the page shows it from the next status
            await page.click(f"#peers tr[data-peer='{BOB}'] button")
            await page.wait_for(
                f"document.querySelector(\"#peers tr[data-peer='{BOB}']\").innerText.includes('(paused)')"
            )
            assert view.pause_calls == [(BOB, True)]

            # the audit: type the first 7 characters of a hash, press Find
            await page.type_text("#audit-input", FROM_ALICE[:7])
            await page.click("#audit-button")
            await page.wait_for(f"{ROWS.format(table='#audit')}.length > 0")
            found = await page.evaluate(
                f"{ROWS.format(table='#audit')}.map(r => [r.dataset.kind, r.dataset.hash, r.innerText])"
            )
            assert {hash_ for _kind, hash_, _text in found} == {FROM_ALICE}
            received = next(text for kind, _hash, text in found if kind == "asset_received")
            assert ALICE[:12] in received and "verified" in received and "in" in received
            note = await page.evaluate("document.getElementById('audit-note').textContent")
            assert note == f"{len(found)} event(s), newest first"
            await page.screenshot(tmp_path / "dashboard.png")
            assert not [line for line in page.console if line.startswith("uncaught")], page.console
    finally:
        await server.close()
