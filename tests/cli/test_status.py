"""`cansync status` as a user runs it: a summary from the running agent's API, else from the journal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cansync.core.events import Event, EventKind
from cansync.journal.recorder import Journal
from cansync.web.server import WebServer, start_web
from tests.helpers.store_process import free_port
from tests.web.journal_view import ALICE, BOB, OURS, STRANGER, JournalView, asset_hash, fill_journal

CANSYNC = str(Path(sys.executable).parent / "cansync")
QUEUED = 60  # transfers asked of bob and not started: the old status printed a line for each


async def cansync_status(data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANSYNC_")}
    process = await asyncio.create_subprocess_exec(
        CANSYNC, "status", "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def view(tmp_path: Path) -> AsyncIterator[JournalView]:
    """The web tests' journal plus QUEUED requested transfers, and this data_dir's ticket naming OURS."""
    data_dir = tmp_path / "data"
    journal = await Journal.open(data_dir / "journal.db")
    try:
        state = await fill_journal(journal)
        queued = [
            Event(
                EventKind.TRANSFER_REQUESTED,
                peer=BOB,
                hash=asset_hash(f"queued {n}"),
                data={"direction": "in", "offset": 0},
            )
            for n in range(QUEUED)
        ]
        for event in await journal.append(queued):
            state.apply(event)
        (data_dir / "ticket.json").write_text(json.dumps({"id": OURS, "addrs": []}))
        yield JournalView(journal, state)
    finally:
        await journal.close()


@pytest.fixture
async def agent_api(view: JournalView) -> AsyncIterator[WebServer]:
    server = await start_web(view, "127.0.0.1:0", token="status-token")
    try:
        yield server
    finally:
        await server.close()


def web_addr(server: WebServer) -> str:
    return server.url.removeprefix("http://")


async def test_without_a_running_agent_the_journal_is_summarised(view: JournalView) -> None:
    data_dir = view.journal.path.parent
    closed = f"127.0.0.1:{free_port()}"
    code, out, err = await cansync_status(data_dir, "--web-addr", closed)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"agent {OURS[:12]}: agent not running (nothing answers at http://{closed}/api/status")
    assert "local assets 6; journal events 88" in out
    assert "peers 3 (2 authenticated, 1 rejected)" in out
    stranger = next(line for line in lines if line.lstrip().startswith(STRANGER[:12]))
    assert "rejected" in stranger and "we owe 0, it owes 0" in stranger
    assert f"in flight {QUEUED + 2} ({QUEUED + 1} in, 1 out)" in out
    assert f"... the 5 largest of {QUEUED + 2} shown" in out
    assert len(lines) < 20  # a summary: never one line per queued transfer
    largest = [line for line in lines if line.startswith(("  <-", "  ->"))]
    assert len(largest) == 5 and "40.0% of 9.5 MiB" in largest[0] and "0.0% of 8.6 MiB" in largest[1]


async def test_a_running_agent_answers_through_its_api(view: JournalView, agent_api: WebServer) -> None:
    data_dir = view.journal.path.parent
    code, out, err = await cansync_status(data_dir, "--web-addr", web_addr(agent_api), "--web-token", "status-token")
    assert code == 0, err
    assert out.splitlines()[0] == f"agent {OURS[:12]}: the running agent at {agent_api.url}"
    assert "store http://127.0.0.1:3210 answers; sessions 2; in 1.4 MiB/s, out 244.1 KiB/s" in out
    code, out, _err = await cansync_status(
        data_dir, "--web-addr", web_addr(agent_api), "--web-token", "status-token", "--json"
    )
    answer = json.loads(out)
    assert answer["source"] == f"the running agent at {agent_api.url}"
    assert {p["id"] for p in answer["peers"]} == {ALICE, BOB, STRANGER}
    assert len(answer["transfers"]) == QUEUED + 2 and answer["rates"]["bytes_in_per_s"] == 1_500_000.0


async def test_a_refused_token_or_another_agent_falls_back_to_the_journal(
    view: JournalView, agent_api: WebServer
) -> None:
    data_dir = view.journal.path.parent
    code, out, err = await cansync_status(data_dir, "--web-addr", web_addr(agent_api), "--web-token", "wrong")
    assert code == 0, err
    assert "agent not running" in out and "it refused our web_token" in out and "wrong" not in out
    (data_dir / "ticket.json").write_text(json.dumps({"id": "ab" * 32, "addrs": []}))
    code, out, err = await cansync_status(data_dir, "--web-addr", web_addr(agent_api), "--web-token", "status-token")
    assert code == 0, err
    assert f"is another one ({OURS[:10]}), not this data_dir's" in out


async def test_no_agent_and_no_journal_is_an_error(tmp_path: Path) -> None:
    code, out, err = await cansync_status(tmp_path / "nothing", "--web-addr", "")
    assert code == 1 and out == ""
    assert "web_addr is off" in err and "no journal at" in err
