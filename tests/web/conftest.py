"""A real journal file, the AgentView over it, and the web server serving that view on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cansync.journal.recorder import Journal
from cansync.web.server import WebServer, start_web
from tests.web.journal_view import JournalView, fill_journal


@pytest.fixture
async def view(tmp_path: Path) -> AsyncIterator[JournalView]:
    journal = await Journal.open(tmp_path / "data" / "journal.db")
    try:
        yield JournalView(journal, await fill_journal(journal))
    finally:
        await journal.close()


@pytest.fixture
async def server(view: JournalView) -> AsyncIterator[WebServer]:
    running = await start_web(view, "127.0.0.1:0", token=None)
    try:
        yield running
    finally:
        await running.close()
