"""Two stores, two agents, real processes on 127.0.0.1: mirror, live, resume, strangers, lies."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from cansync.agent.session import CHUNK_BYTES
from cansync.agent.staging import StagingArea
from cansync.core.events import (
    Direction,
    Event,
    PeerAuthenticated,
    TransferCheckpointed,
    TransferRequested,
    TransferStarted,
)
from cansync.journal.recorder import Journal
from cansync.net.tickets import read_ticket_file
from tests.e2e.conftest import SYNC_KEY, Cluster
from tests.helpers.assets import assert_files_match_names, asset_files, ingest, make_bytes, store_digests
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import wait_until

KiB = 1024
MiB = 1024 * KiB


def mixed_sizes(count: int = 102) -> list[int]:
    """1 KiB to 64 MiB: a few large assets and many small ones, about 124 MiB in all."""
    large = [64 * MiB, 16 * MiB, 16 * MiB, 4 * MiB, 4 * MiB, 4 * MiB, 4 * MiB]
    small = [KiB * (1 + (i * 37) % 256) for i in range(count - len(large))]
    return large + small


def test_two_agents_mirror_102_mixed_assets_each_way_and_name_the_sender(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    sizes = mixed_sizes()
    a_hashes = {ingest(a.api, make_bytes(1000 + i, n), f"a{i}.bin") for i, n in enumerate(sizes)}
    b_hashes = {ingest(b.api, make_bytes(2000 + i, n), f"b{i}.bin") for i, n in enumerate(sizes)}
    assert len(a_hashes) == len(b_hashes) == 102
    union = a_hashes | b_hashes

    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    started = time.monotonic()
    assert wait_until(
        lambda: (
            set(store_digests(a.store.url, SYNC_KEY)) == union and set(store_digests(b.store.url, SYNC_KEY)) == union
        ),
        timeout=180,
        interval=0.5,
    ), "the stores did not converge on the union"
    elapsed = time.monotonic() - started
    print(f"mirrored {len(union)} assets ({2 * sum(sizes) / MiB:.0f} MiB both ways) in {elapsed:.1f} s")

    for node in (a, b):
        assert assert_files_match_names(node.store.root) == 204
        assert set(asset_files(node.store.root)) == union
    # the audit names the sender of an asset that came from A
    sample = sorted(a_hashes)[0]
    rows = b.agent.journal("--hash", sample)  # type: ignore[union-attr]
    received = [r for r in rows if r["kind"] == "asset_received"]
    assert len(received) == 1 and received[0]["peer"] == a.agent.endpoint_id  # type: ignore[union-attr]
    completed = [r for r in rows if r["kind"] == "transfer_completed"]
    assert completed and completed[0]["data"]["verified"] is True
    # nothing B received from A was sent back to A
    echoed = journal_rows(
        b.home,
        "SELECT hash FROM events WHERE kind='transfer_completed' AND peer=? AND data LIKE '%\"direction\":\"out\"%'",
        a.agent.endpoint_id,  # type: ignore[union-attr]
    )
    assert not ({h for (h,) in echoed} & a_hashes)
    # the large ones went into B's store while they arrived (no second push), each received once
    stored_live = {
        h
        for (h,) in journal_rows(
            b.home,
            "SELECT hash FROM events WHERE kind='transfer_completed' AND json_extract(data,'$.stored') = 1",
        )
    }
    sizes_by_hash = {d.hash: d.size for d in store_digests(b.store.url, SYNC_KEY).values()}
    large_from_a = {h for h in a_hashes if sizes_by_hash[h] > 256 * 1024}
    assert large_from_a and large_from_a <= stored_live
    marks = journal_rows(b.home, "SELECT hash, count(*) FROM events WHERE kind='asset_received' GROUP BY hash")
    assert {h for h, _ in marks} == a_hashes and all(n == 1 for _, n in marks)


def test_a_new_asset_appears_on_the_other_side_within_5_s_and_is_not_sent_back(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    assert wait_until(lambda: b.agent.endpoint_id in _authenticated(a.home), timeout=30)  # type: ignore[union-attr]

    for origin, target, seed in ((a, b, 1), (b, a, 2)):
        started = time.monotonic()
        asset = ingest(origin.api, make_bytes(seed, 300 * KiB), "live.bin")
        assert wait_until(
            lambda a=asset, t=target: a in store_digests(t.store.url, SYNC_KEY), timeout=5, interval=0.05
        ), f"asset ingested on {origin.name} did not reach {target.name} within 5 s"
        print(f"{origin.name} -> {target.name}: {time.monotonic() - started:.2f} s")
        time.sleep(1.5)  # give an echo every chance to happen
        back = journal_rows(
            target.home,
            "SELECT count(*) FROM events WHERE kind IN ('transfer_requested','transfer_completed') AND hash=? "
            'AND data LIKE \'%"direction":"out"%\'',
            asset,
        )
        assert back == [(0,)], f"{target.name} sent {asset[:12]} back to {origin.name}"
        origin_received = journal_rows(
            origin.home, "SELECT count(*) FROM events WHERE kind='asset_received' AND hash=?", asset
        )
        assert origin_received == [(0,)]


def _authenticated(home: Path) -> set[str]:
    rows = journal_rows(home, "SELECT DISTINCT peer FROM events WHERE kind='peer_authenticated'")
    return {peer for (peer,) in rows}


def test_kill_9_mid_transfer_resumes_from_the_last_checkpoint(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    size = 40 * CHUNK_BYTES + 88 * MiB  # a checkpoint per chunk: 40 of them before the kill, 88 MiB after it
    asset = ingest(a.api, make_bytes(7, size), "big.bin")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")

    def checkpointed() -> int:
        rows = journal_rows(b.home, "SELECT count(*) FROM events WHERE kind='transfer_checkpointed' AND hash=?", asset)
        return rows[0][0] if rows else 0

    assert wait_until(lambda: checkpointed() >= 40, timeout=120, interval=0.02), "the transfer never got going"
    b.agent.kill9()  # type: ignore[union-attr]
    last_offset = _last_checkpoint(b.home, asset)
    assert 0 < last_offset < size

    b.start_agent()
    assert wait_until(lambda: asset in store_digests(b.store.url, SYNC_KEY), timeout=120, interval=0.2)
    assert assert_files_match_names(b.store.root) == 1

    starts = journal_rows(
        b.home,
        "SELECT seq, json_extract(data,'$.offset') FROM events WHERE kind='transfer_started' AND hash=? ORDER BY seq",
        asset,
    )
    assert starts[0][1] == 0 and len(starts) >= 2
    resumed_at = starts[1][1]
    assert resumed_at == last_offset, "the transfer did not resume exactly at its last journaled checkpoint"
    # A restarted agent may meet its peer over two connections at once; when one replaces the other,
    # the transfer is cut again. Every start after the first must begin at the checkpoint before it.
    for seq, offset in starts[1:]:
        before = journal_rows(
            b.home,
            "SELECT json_extract(data,'$.offset') FROM events WHERE kind='transfer_checkpointed' AND hash=? "
            "AND seq < ? ORDER BY seq DESC LIMIT 1",
            asset,
            seq,
        )
        assert before and offset == before[0][0], f"a resume at {offset} skipped or repeated journaled bytes"
    sent_after = journal_rows(
        b.home,
        "SELECT json_extract(data,'$.sent') FROM events WHERE kind='transfer_completed' AND hash=?",
        asset,
    )
    assert sent_after == [(size - starts[-1][1],)]
    # at most one chunk per stream arrived before the kill without being checkpointed, so at most one
    # chunk (4 MiB) is sent twice
    print(f"resumed at {resumed_at / MiB:.1f} MiB of {size / MiB:.0f} MiB ({len(starts) - 1} resume(s))")


def _last_checkpoint(home: Path, asset: str) -> int:
    rows = journal_rows(
        home,
        "SELECT json_extract(data,'$.offset') FROM events WHERE kind='transfer_checkpointed' AND hash=? "
        "ORDER BY seq DESC LIMIT 1",
        asset,
    )
    return int(rows[0][0])


def test_a_stranger_with_the_wrong_passphrase_gets_nothing_and_is_journaled_as_rejected(cluster: Cluster):
    a, stranger = cluster.add("a"), cluster.add("stranger")
    secret = ingest(a.api, make_bytes(3, 10 * KiB), "secret.bin")
    a.start_agent()
    stranger.start_agent(sync_passphrase="not the passphrase", connect_ticket_file=a.home / "ticket.json")
    stranger_id = stranger.agent.endpoint_id  # type: ignore[union-attr]

    def rejected() -> list[tuple]:
        return journal_rows(a.home, "SELECT data FROM events WHERE kind='peer_rejected' AND peer=?", stranger_id)

    assert wait_until(lambda: bool(rejected()), timeout=30), "the stranger was not journaled as rejected"
    time.sleep(2)
    assert secret not in store_digests(stranger.store.url, SYNC_KEY)
    assert store_digests(stranger.store.url, SYNC_KEY) == {}
    assert _authenticated(a.home) == set()
    status = a.agent.cli("status").stdout  # type: ignore[union-attr]
    assert "rejected" in status


def test_content_that_does_not_match_its_hash_is_refused_journaled_and_re_requested(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    asset = ingest(a.api, make_bytes(11, 2 * MiB), "victim.bin")
    # damage the bytes on A's disk: A's store now serves content that does not hash to its name
    path = asset_files(a.store.root)[asset]
    data = bytearray(path.read_bytes())
    data[12345] ^= 0xFF
    path.write_bytes(bytes(data))

    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")

    def failures() -> list[tuple]:
        return journal_rows(
            b.home, "SELECT data FROM events WHERE kind='transfer_failed' AND hash=? ORDER BY seq", asset
        )

    assert wait_until(lambda: len(failures()) >= 3, timeout=60), "the bad content was not refused and re-requested"
    time.sleep(1.5)
    # after three lies from one peer the machine stops asking it: no endless loop of bad transfers
    assert len(failures()) == 3
    assert all('"discard":true' in data for (data,) in failures())
    assert "does not match its hash" in failures()[0][0]
    requests = journal_rows(
        b.home,
        "SELECT count(*) FROM events WHERE kind='transfer_requested' AND hash=? AND data LIKE '%\"direction\":\"in\"%'",
        asset,
    )
    assert requests[0][0] >= 2
    assert asset not in store_digests(b.store.url, SYNC_KEY)
    assert asset_files(b.store.root) == {}
    assert not list((b.home / "data" / "staging").glob("*.part"))


def test_two_agents_that_dial_each_other_at_once_settle_on_one_session_and_sync(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    a_asset = ingest(a.api, make_bytes(21, 50 * KiB), "a.bin")
    b_asset = ingest(b.api, make_bytes(22, 50 * KiB), "b.bin")
    # each names the other's ticket file; both dial as soon as the other's ticket appears
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    both = {a_asset, b_asset}
    assert wait_until(
        lambda: set(store_digests(a.store.url, SYNC_KEY)) == both and set(store_digests(b.store.url, SYNC_KEY)) == both,
        timeout=20,
        interval=0.2,
    ), "two agents dialing each other did not sync within 20 s"
    # and a new asset still flows live afterwards, over whichever connection survived
    later = ingest(a.api, make_bytes(23, 10 * KiB), "later.bin")
    assert wait_until(lambda: later in store_digests(b.store.url, SYNC_KEY), timeout=10, interval=0.1)


def test_a_restarted_agent_is_taken_back_at_once_although_its_old_connection_looks_alive(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    first = ingest(a.api, make_bytes(31, 10 * KiB), "first.bin")
    assert wait_until(lambda: first in store_digests(b.store.url, SYNC_KEY), timeout=20)
    a.agent.kill9()  # type: ignore[union-attr]  # B's QUIC connection to it stays "alive" until its idle timeout
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    second = ingest(a.api, make_bytes(32, 10 * KiB), "second.bin")
    assert wait_until(lambda: second in store_digests(b.store.url, SYNC_KEY), timeout=10, interval=0.1), (
        "B did not accept the restarted A while its old session was still open"
    )
    assert "peer restarted" in b.agent.log_text()  # type: ignore[union-attr]


def test_both_agents_killed_and_restarted_on_new_ports_meet_again_and_sync(cluster: Cluster):
    """Each remembers the other's old port; the rewritten ticket brings the fresh one, dialed at once beside
    the old (bench/reunion_bench.py times it: 0.8 s, against 10 s when the old dial had to time out first)."""
    a, b = cluster.add("a"), cluster.add("b")
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    first = ingest(a.api, make_bytes(41, 10 * KiB), "first.bin")
    assert wait_until(lambda: first in store_digests(b.store.url, SYNC_KEY), timeout=30)
    assert a.agent is not None and b.agent is not None
    old_ports = {n.name: read_ticket_file(n.home / "ticket.json").direct_addrs for n in (a, b)}
    before = {n.name: journal_rows(n.home, "SELECT max(seq) FROM events")[0][0] for n in (a, b)}
    a.agent.kill9()
    b.agent.kill9()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    assert {n.name: read_ticket_file(n.home / "ticket.json").direct_addrs for n in (a, b)} != old_ports
    second = ingest(b.api, make_bytes(42, 10 * KiB), "second.bin")
    assert wait_until(lambda: second in store_digests(a.store.url, SYNC_KEY), timeout=30)
    for node in (a, b):
        sql = "SELECT count(*) FROM events WHERE kind='peer_authenticated' AND seq>?"
        assert journal_rows(node.home, sql, before[node.name])[0][0] >= 1


def test_a_restart_records_who_sent_an_asset_whose_record_a_kill_9_cut_off(cluster: Cluster):
    """The window of a kill -9 that the resume test cannot aim at: our store took a streamed asset, but
    the agent died before journaling its completion. Built here as that crash leaves it (the journal up
    to a checkpoint, the staged copy, the store's copy); the restarted agent records the receipt, and
    leaves alone an asset whose staged copy does not show the peer's bytes arrived whole."""
    b = cluster.add("b")
    sender = "ab" * 32
    whole, short = make_bytes(11, 3 * MiB), make_bytes(12, 3 * MiB)
    whole_id, short_id = ingest(b.api, whole, "whole.bin"), ingest(b.api, short, "short.bin")
    data_dir = b.home / "data"

    async def crashed_journal() -> None:
        journal = await Journal.open(data_dir / "journal.db")
        try:
            await journal.append([Event.of(PeerAuthenticated(), peer=sender)])
            for asset, size in ((whole_id, len(whole)), (short_id, len(short))):
                await journal.append(
                    [
                        Event.of(TransferRequested(Direction.IN, 0), peer=sender, hash=asset),
                        Event.of(TransferStarted(Direction.IN, 0, size), peer=sender, hash=asset),
                        Event.of(TransferCheckpointed(Direction.IN, size - MiB), peer=sender, hash=asset),
                    ]
                )
        finally:
            await journal.close()

    data_dir.mkdir(parents=True)
    asyncio.run(crashed_journal())
    staging = StagingArea(data_dir / "staging")
    staging.write_whole([(whole_id, whole), (short_id, short[: 2 * MiB])])

    b.start_agent()
    assert wait_until(lambda: _kinds(b.home, short_id) >= {"local_asset_seen"}, timeout=30)
    assert _kinds(b.home, whole_id) >= {"transfer_completed", "asset_received"}
    [(completed,)] = journal_rows(
        b.home, "SELECT data FROM events WHERE kind='transfer_completed' AND hash=? AND peer=?", whole_id, sender
    )
    assert json.loads(completed)["verified"] is True and json.loads(completed)["stored"] is True
    assert not staging.path(whole_id).exists()
    assert "asset_received" not in _kinds(b.home, short_id)  # the staged copy was short: no receipt claimed
    inspected = b.agent.cli("journal", "inspect", "--hash", whole_id[:12]).stdout  # type: ignore[union-attr]
    assert "asset_received" in inspected and sender[:12] in inspected


def _kinds(home: Path, asset: str) -> set[str]:
    return {kind for (kind,) in journal_rows(home, "SELECT kind FROM events WHERE hash=?", asset)}
