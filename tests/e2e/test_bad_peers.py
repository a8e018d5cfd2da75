"""Peers that misbehave, and a store that goes away: the agent says so clearly, keeps its other peers
going, and loses nothing.

The rogue peer here is a real iroh endpoint in the test process that knows the passphrase (so it gets
past the handshake) and then breaks the protocol on purpose.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from pathlib import Path

from cansync.net.endpoint import PeerConnection, open_endpoint
from cansync.net.handshake import HandshakeKey, authenticate
from cansync.net.node_key import load_or_create_key
from cansync.net.tickets import read_ticket_file
from cansync.wire.frames import FrameType
from cansync.wire.pb import can_sync_pb2, peer_pb2
from tests.e2e.conftest import PASSPHRASE, SYNC_KEY, Cluster
from tests.helpers.assets import assert_files_match_names, ingest, make_bytes, store_digests
from tests.helpers.journal_db import journal_rows
from tests.helpers.store_process import start_store_process, wait_until

KiB = 1024
MiB = 1024 * KiB


async def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return bool(predicate())


async def rogue_session(tmp_path: Path, target_home: Path) -> tuple[object, PeerConnection, object, str]:
    """Dial the agent at target_home as a peer that knows the passphrase; return (endpoint, conn, control, id)."""
    (tmp_path / "rogue").mkdir(parents=True, exist_ok=True)
    endpoint = await open_endpoint(load_or_create_key(tmp_path / "rogue"), bind_addr="127.0.0.1:0", relays=[])
    address = read_ticket_file(target_home / "ticket.json")
    conn = await endpoint.connect(address)
    control = await conn.open_control()
    key = HandshakeKey.derive(PASSPHRASE)
    await authenticate(control, key=key, our_id=endpoint.id_hex, their_id=address.endpoint_id, initiator=True)
    return endpoint, conn, control, endpoint.id_hex


async def test_malformed_and_oversized_control_frames_are_journaled_and_the_agent_keeps_serving(
    cluster: Cluster, tmp_path: Path
):
    a, b = cluster.add("a"), cluster.add("b")
    a.start_agent()
    for label, raw in (
        ("unknown type", struct.pack(">BI", 0x63, 4) + b"junk"),
        ("oversized", struct.pack(">BI", FrameType.DIGEST_BATCH, 1 << 30)),
        ("malformed protobuf", struct.pack(">BI", FrameType.WANT, 3) + b"\xff\xff\xff"),
    ):
        endpoint, conn, control, rogue_id = await rogue_session(tmp_path / label.replace(" ", "-"), a.home)
        await control.writer._send.write_all(raw)  # raw bytes: our own FrameWriter refuses to write them

        def errors(rid: str = rogue_id) -> list[tuple]:
            return journal_rows(a.home, "SELECT data FROM events WHERE kind='peer_protocol_error' AND peer=?", rid)

        assert await wait_for(lambda: bool(errors()), 20), f"{label}: no protocol error journaled"
        assert await wait_for(
            lambda rid=rogue_id: bool(
                journal_rows(a.home, "SELECT 1 FROM events WHERE kind='peer_disconnected' AND peer=?", rid)
            ),
            20,
        ), f"{label}: the session with the rogue did not end"
        await endpoint.close()
    assert a.agent.is_running()  # type: ignore[union-attr]

    # an honest peer still syncs afterwards
    asset = ingest(a.api, make_bytes(5, 100 * KiB), "after.bin")
    b.start_agent(connect_ticket_file=a.home / "ticket.json")
    assert await wait_for(lambda: asset in store_digests(b.store.url, SYNC_KEY), 30)


async def test_a_peer_that_stalls_mid_transfer_is_cut_off_and_the_asset_comes_from_elsewhere_later(
    cluster: Cluster, tmp_path: Path
):
    a = cluster.add("a")
    a.start_agent(transfer_stall_secs=2)
    endpoint, conn, control, rogue_id = await rogue_session(tmp_path / "staller", a.home)
    content = make_bytes(9, 3 * MiB)

    asset = hashlib.sha256(content).hexdigest()
    # tell the agent we hold an asset it lacks, then serve its Want with one chunk and go silent
    await control.write_message(
        peer_pb2.DigestBatch(
            digests=[can_sync_pb2.AssetDigest(hash=asset, size=len(content))], watermark=1, full=True, last=True
        )
    )
    want = None
    deadline = time.monotonic() + 20
    while want is None and time.monotonic() < deadline:
        frame = await control.read_message(timeout=20)
        assert frame is not None
        if frame[0] is FrameType.WANT:
            want = frame[1]
    assert want is not None and want.items[0].hash == asset
    writer = await conn.open_transfer()
    meta = can_sync_pb2.AssetMeta(hash=asset, timestamp=1_700_000_000_000, size=len(content))
    await writer.write_message(peer_pb2.AssetHeader(meta=meta, offset=0, request_id=want.items[0].request_id))
    await writer.write_chunk(content[: 1 * MiB])

    def failed() -> list[tuple]:
        return journal_rows(
            a.home, "SELECT data FROM events WHERE kind='transfer_failed' AND peer=? AND hash=?", rogue_id, asset
        )

    assert await wait_for(lambda: bool(failed()), 20), "the stalled transfer was not cut off"
    assert "nothing arrived for 2 s" in failed()[0][0]
    checkpoints = journal_rows(
        a.home,
        "SELECT max(json_extract(data,'$.offset')) FROM events WHERE kind='transfer_checkpointed' AND hash=?",
        asset,
    )
    assert checkpoints == [(MiB,)]  # what did arrive is kept for a resume
    assert asset not in store_digests(a.store.url, SYNC_KEY)
    assert a.agent.is_running()  # type: ignore[union-attr]
    await endpoint.close()


def test_the_local_store_going_down_and_back_loses_nothing(cluster: Cluster):
    a, b = cluster.add("a"), cluster.add("b")
    b.start_agent()
    a.start_agent(connect_ticket_file=b.home / "ticket.json")
    first = {ingest(a.api, make_bytes(100 + i, 64 * KiB), f"f{i}.bin") for i in range(5)}
    assert wait_until(lambda: first <= set(store_digests(b.store.url, SYNC_KEY)), timeout=30)

    port = b.store.port
    b.store.stop()
    second = {ingest(a.api, make_bytes(200 + i, 256 * KiB), f"s{i}.bin") for i in range(5)}

    def tried_failed_and_said_so() -> bool:
        rows = journal_rows(b.home, "SELECT hash FROM events WHERE kind='transfer_completed'")
        arrived = {h for (h,) in rows}  # every byte came from a, verified, and waits for b's store
        return second <= arrived and f"store http://127.0.0.1:{port} unreachable" in b.agent.log_text()  # type: ignore[union-attr]

    assert wait_until(tried_failed_and_said_so, timeout=30), "b never received the assets, or never said why"
    assert b.agent.is_running()  # type: ignore[union-attr]
    b.store = start_store_process(b.store.root, port=port, sync_key=SYNC_KEY)
    assert wait_until(lambda: (first | second) <= set(store_digests(b.store.url, SYNC_KEY)), timeout=60), (
        "the assets sent while the store was down never arrived"
    )
    assert assert_files_match_names(b.store.root) == 10
    log = b.agent.log_text()  # type: ignore[union-attr]
    assert (
        f"store http://127.0.0.1:{port} unreachable" in log or f"store http://127.0.0.1:{port} event stream lost" in log
    )
