"""`cansync journal inspect | verify | replay` as a user runs them: a real process, a real journal."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cansync.core.events import Event, EventKind
from cansync.journal.recorder import Journal
from cansync.journal.replay import rebuild_state, write_snapshot

from .conftest import asset_hash, peer_id, session_events

CANSYNC = Path(sys.executable).parent / "cansync"


def cansync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CANSYNC), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two peers each sending us an asset, an outgoing transfer, a failure and a local asset."""
    root = tmp_path_factory.mktemp("cli")

    async def fill() -> None:
        journal = await Journal.open(root / "journal.db")
        try:
            await journal.append(session_events(peer_id(1), asset_hash(1), size=1111))
            await journal.append(session_events(peer_id(2), asset_hash(2), size=2222))
            await journal.append(
                [
                    Event(EventKind.LOCAL_ASSET_SEEN, hash=asset_hash(3), data={"timestamp": 5, "size": 33}),
                    Event(EventKind.TRANSFER_REQUESTED, peer=peer_id(1), hash=asset_hash(3), data={"direction": "out"}),
                    Event(
                        EventKind.TRANSFER_COMPLETED,
                        peer=peer_id(1),
                        hash=asset_hash(3),
                        data={"direction": "out", "size": 33, "verified": False, "sent": 33},
                    ),
                    Event(
                        EventKind.TRANSFER_FAILED,
                        peer=peer_id(2),
                        hash=asset_hash(3),
                        data={"direction": "out", "reason": "stream reset", "discard": False},
                    ),
                ]
            )
            state, last = await rebuild_state(journal)
            await write_snapshot(journal, state, last)
            await journal.append_one(Event(EventKind.PEER_DISCONNECTED, peer=peer_id(2), data={"reason": "bye"}))
        finally:
            await journal.close()

    asyncio.run(fill())
    return root


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_inspect_lists_every_event_with_transfer_outcomes(data_dir: Path) -> None:
    result = cansync("journal", "inspect", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["SEQ", "TIME", "(UTC)"]
    assert len(lines) == 1 + 21 and "21 event(s)" in result.stderr
    assert lines[0].split()[7:9] == ["SIZE", "OUTCOME"] and "VERIFIED" not in lines[0]
    completed = next(line for line in lines if " 7  " in line[:10])
    assert "transfer_completed" in completed and "1111" in completed and " verified " in completed
    assert peer_id(1)[:12] in completed and " in " in completed
    received = next(line for line in lines if line.lstrip().startswith("8 "))
    assert "asset_received" in received and " in " in received and " verified " in received
    outgoing = next(line for line in lines if line.lstrip().startswith("19 "))
    assert " out " in outgoing and " sent " in outgoing and "VERIFIED" not in outgoing and "NO" not in outgoing
    failed = next(line for line in lines if line.lstrip().startswith("20 "))
    assert "transfer_failed" in failed and " sent " not in failed and "verified" not in failed


def test_an_incoming_asset_that_failed_its_check_reads_not_verified(tmp_path: Path) -> None:
    async def fill() -> None:
        async with await Journal.open(tmp_path / "journal.db") as journal:
            await journal.append_one(
                Event(
                    EventKind.TRANSFER_COMPLETED,
                    peer=peer_id(1),
                    hash=asset_hash(9),
                    data={"direction": "in", "size": 5, "verified": False, "sent": 5},
                )
            )

    asyncio.run(fill())
    result = cansync("journal", "inspect", "--data-dir", str(tmp_path))
    assert "NOT VERIFIED" in result.stdout.splitlines()[1]
    [row] = _json_lines(cansync("journal", "inspect", "--data-dir", str(tmp_path), "--json").stdout)
    assert (row["direction"], row["verified"], row["outcome"]) == ("in", False, "NOT VERIFIED")


def test_inspect_json_filters_by_peer_prefix_and_kind(data_dir: Path) -> None:
    result = cansync(
        "journal", "inspect", "--data-dir", str(data_dir), "--peer", peer_id(2)[:8],
        "--kind", "asset_received", "--kind", "transfer_completed", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert [(r["seq"], r["kind"]) for r in rows] == [(15, "transfer_completed"), (16, "asset_received")]
    for row in rows:
        assert row["peer"] == peer_id(2) and row["hash"] == asset_hash(2)
        assert (row["direction"], row["size"], row["verified"], row["outcome"]) == ("in", 2222, True, "verified")
        assert str(row["time"]).endswith("Z")


def test_inspect_by_hash_shows_who_sent_what(data_dir: Path) -> None:
    result = cansync("journal", "inspect", "--data-dir", str(data_dir), "--hash", asset_hash(3)[:10], "--json")
    rows = _json_lines(result.stdout)
    assert [r["kind"] for r in rows] == [
        "local_asset_seen",
        "transfer_requested",
        "transfer_completed",
        "transfer_failed",
    ]
    assert rows[3]["data"] == {"direction": "out", "reason": "stream reset", "discard": False}
    assert (rows[2]["direction"], rows[2]["verified"], rows[2]["outcome"]) == ("out", None, "sent")
    assert rows[3]["outcome"] is None


def test_inspect_since(data_dir: Path) -> None:
    assert (
        len(_json_lines(cansync("journal", "inspect", "--data-dir", str(data_dir), "--since", "1h", "--json").stdout))
        == 21
    )
    future = cansync("journal", "inspect", "--data-dir", str(data_dir), "--since", "2999-01-01T00:00:00Z", "--json")
    assert future.returncode == 0 and future.stdout == ""
    bad = cansync("journal", "inspect", "--data-dir", str(data_dir), "--since", "last tuesday")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr


def test_inspect_refuses_an_unknown_or_ambiguous_prefix(data_dir: Path) -> None:
    unknown = cansync("journal", "inspect", "--data-dir", str(data_dir), "--peer", "zzzz")
    assert unknown.returncode == 2 and "no event names a peer starting with 'zzzz'" in unknown.stderr
    both = cansync("journal", "inspect", "--data-dir", str(data_dir), "--hash", "")
    assert both.returncode == 2 and "matches several" in both.stderr


def test_a_missing_journal_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    for action in ("inspect", "verify", "replay"):
        result = cansync("journal", action, "--data-dir", str(tmp_path / "nowhere"))
        assert result.returncode == 2 and "no journal at" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_the_config_file_finds_the_journal(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {data_dir}\nsync_passphrase: correct horse\n")
    result = cansync("journal", "verify", "-c", str(config))
    assert result.returncode == 0 and result.stdout.strip() == "ok: 21 events"
    assert "correct horse" not in result.stdout + result.stderr


def test_replay_prints_the_per_peer_state(data_dir: Path) -> None:
    text = cansync("journal", "replay", "--data-dir", str(data_dir))
    assert text.returncode == 0, text.stderr
    assert "folded to seq 21 from the snapshot at seq 20" in text.stdout
    assert f"peer {peer_id(1)}:" in text.stdout and f"peer {peer_id(2)}:" in text.stdout
    assert "local_assets: 3" in text.stdout
    with_snapshot = json.loads(cansync("journal", "replay", "--data-dir", str(data_dir), "--json").stdout)
    scratch = json.loads(cansync("journal", "replay", "--data-dir", str(data_dir), "--json", "--no-snapshot").stdout)
    assert with_snapshot == scratch
    peers = scratch["state"]["peers"]
    assert scratch["folded_to_seq"] == 21 and peers[peer_id(2)]["link"] != "authenticated"
    assert peers[peer_id(1)]["bytes_in"] == 1111 and peers[peer_id(1)]["bytes_out"] == 33


def test_verify_names_the_first_bad_event(tmp_path: Path) -> None:
    async def fill() -> None:
        journal = await Journal.open(tmp_path / "journal.db")
        await journal.append(session_events(peer_id(1), asset_hash(1)) * 2)
        await journal.close()

    asyncio.run(fill())
    ok = cansync("journal", "verify", "--data-dir", str(tmp_path))
    assert ok.returncode == 0 and ok.stdout.strip() == "ok: 16 events"
    with sqlite3.connect(tmp_path / "journal.db") as conn:
        conn.execute("""UPDATE events SET data = '{"verified":true}' WHERE seq = 9""")
    conn.close()
    bad = cansync("journal", "verify", "--data-dir", str(tmp_path))
    assert bad.returncode == 1 and bad.stdout.startswith("BAD: event 9: ") and "edited" in bad.stdout
    report = json.loads(cansync("journal", "verify", "--data-dir", str(tmp_path), "--json").stdout)
    assert (report["ok"], report["first_bad_seq"], report["checked"]) == (False, 9, 8)


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "journal.db").write_bytes(b"\x00" * 4096)
    result = cansync("journal", "inspect", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "not a SQLite database" in result.stderr
    assert (tmp_path / "journal.db").read_bytes() == b"\x00" * 4096
