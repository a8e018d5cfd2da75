"""The rules of one session (`core.protocol.PeerProtocol`): outbox, digest answers, control messages,
liveness, the send queue and the admission of incoming streams."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cansync.core import messages as msg
from cansync.core.commands import RequestAsset, SendAsset
from cansync.core.events import (
    Direction,
    Event,
    EventKind,
    Fault,
    HashesAdvertised,
    HashesSent,
    MetadataChanged,
    PeerDisconnected,
    PeerProtocolError,
    TransferCheckpointed,
    TransferCompleted,
    TransferFailed,
    TransferRequested,
    TransferStarted,
)
from cansync.core.faults import Failure, failed_transfer
from cansync.core.machine import SyncState, fold
from cansync.core.metadata import MetaValue
from cansync.core.protocol import (
    ASSETS_PER_STREAM,
    DIGESTS_PER_FRAME,
    KEEPALIVE_MS,
    SILENCE_LIMIT_MS,
    WANTS_PER_FRAME,
    Admission,
    AnswerDigests,
    DigestAnswerPart,
    LearnPeers,
    PeerProtocol,
    SendJob,
)
from cansync.wire.frames import FrameType, message_type
from cansync.wire.peer_messages import MAX_DIGESTS, MAX_WANTS, decode_control, encode_control
from tests.core.strategies import ASSETS, PEERS

PEER = PEERS[0]
OTHER_PEER = PEERS[1]
A, B, C, D, E, F = ASSETS
T0 = 1_000_000


def proto(**kwargs: Any) -> PeerProtocol:
    return PeerProtocol(PEER, now_ms=T0, **kwargs)


def many_assets(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(1, n + 1)]


def requested(asset: str, seq: int, offset: int = 0, peer: str = PEER) -> Event:
    """We asked `peer` for `asset` (journaled at `seq`, which is the request id)."""
    return Event.of(TransferRequested(Direction.IN, offset), peer=peer, hash=asset).journaled(seq, 1_000 + seq)


def later(event: Event, seq: int) -> Event:
    return event.journaled(seq, 1_000 + seq)


def header(asset: str, request_id: int, offset: int = 0, size: int = 1000) -> msg.AssetHeader:
    return msg.AssetHeader(asset, size, offset, request_id, {"hash": asset, "size": size})


def meta(updated_ms: int = 5, tags: tuple[str, ...] = ("a",)) -> MetaValue:
    return MetaValue(updated_ms, PEERS[2], tags, "described", False)


# ---------------------------------------------------------------------------------------------- start


def test_start_asks_for_digests_since_the_remembered_watermark_then_shares_peers() -> None:
    p = proto()
    known = [msg.PeerInfo(PEERS[2], ("1.2.3.4:5",), "https://relay.example")]
    p.start(42, known)
    out, events = p.take_output(T0)
    assert out == [msg.DigestRequest(since=42), msg.PeerList(tuple(known))]
    assert events == []


def test_start_without_known_peers_sends_no_empty_peer_list() -> None:
    p = proto()
    p.start(0, [])
    assert p.take_output(T0)[0] == [msg.DigestRequest(since=0)]


# ---------------------------------------------------------------------------------------------- outbox


def test_nothing_to_say_is_no_output() -> None:
    p = proto()
    assert not p.has_output()
    assert p.take_output(T0) == ([], [])


def test_wants_coalesce_into_one_frame_and_a_re_ask_replaces_the_older_item() -> None:
    p = proto()
    p.want(A, 0, 1)
    p.want(B, 10, 2)
    p.want(A, 500, 3)  # asked again (after a failure): only the newest request goes out
    assert p.has_output()
    out, events = p.take_output(T0)
    assert out == [msg.Want((msg.WantItem(A, 500, 3), msg.WantItem(B, 10, 2)))]
    assert events == []
    assert not p.has_output()
    assert p.take_output(T0) == ([], [])


@pytest.mark.parametrize("n", [1, WANTS_PER_FRAME - 1, WANTS_PER_FRAME, WANTS_PER_FRAME + 1, 2 * WANTS_PER_FRAME + 5])
def test_wants_split_into_frames_of_at_most_wants_per_frame_in_order(n: int) -> None:
    p = proto()
    assets = many_assets(n)
    for i, asset in enumerate(assets):
        p.want(asset, i, i + 1)
    out, _ = p.take_output(T0)
    assert all(isinstance(frame, msg.Want) for frame in out)
    sizes = [len(frame.items) for frame in out if isinstance(frame, msg.Want)]
    assert sizes == [WANTS_PER_FRAME] * (n // WANTS_PER_FRAME) + ([n % WANTS_PER_FRAME] if n % WANTS_PER_FRAME else [])
    items = [item for frame in out if isinstance(frame, msg.Want) for item in frame.items]
    assert items == [msg.WantItem(asset, i, i + 1) for i, asset in enumerate(assets)]
    assert max(sizes) <= MAX_WANTS  # the peer's wire check accepts every frame


def test_adverts_deduplicate_and_record_what_was_sent_live() -> None:
    p = proto()
    p.advertise([A, B])
    p.advertise([B, C, A])
    out, events = p.take_output(T0)
    assert out == [msg.Advertise((A, B, C))]
    assert events == [Event.of(HashesSent((A, B, C), live=True), peer=PEER)]
    assert events[0].payload.live


@pytest.mark.parametrize("n", [DIGESTS_PER_FRAME, DIGESTS_PER_FRAME + 1, 2 * DIGESTS_PER_FRAME + 3])
def test_adverts_split_into_frames_each_with_its_own_record(n: int) -> None:
    p = proto()
    assets = many_assets(n)
    p.advertise(assets)
    out, events = p.take_output(T0)
    chunks = [tuple(assets[i : i + DIGESTS_PER_FRAME]) for i in range(0, n, DIGESTS_PER_FRAME)]
    assert out == [msg.Advertise(chunk) for chunk in chunks]
    assert events == [Event.of(HashesSent(chunk, live=True), peer=PEER) for chunk in chunks]
    assert all(len(chunk) <= MAX_DIGESTS for chunk in chunks)


def test_an_empty_advert_sends_nothing() -> None:
    p = proto()
    p.advertise([])
    assert not p.has_output()
    assert p.take_output(T0) == ([], [])


def test_ordered_frames_leave_first_in_call_order_then_wants_then_adverts() -> None:
    p = proto()
    p.advertise([A])
    p.want(B, 0, 7)
    p.forward_metadata(C, meta(1))
    p.share_peers([msg.PeerInfo(PEERS[2])])
    p.forward_metadata(D, meta(2))
    out, _ = p.take_output(T0)
    assert out == [
        msg.MetaChange(C, meta(1)),
        msg.PeerList((msg.PeerInfo(PEERS[2]),)),
        msg.MetaChange(D, meta(2)),
        msg.Want((msg.WantItem(B, 0, 7),)),
        msg.Advertise((A,)),
    ]


def test_every_metadata_change_is_forwarded_even_for_one_asset() -> None:
    # metadata is a register: each change goes out (the peer's fold keeps the winner), none coalesced away
    p = proto()
    p.forward_metadata(A, meta(1))
    p.forward_metadata(A, meta(2))
    assert p.take_output(T0)[0] == [msg.MetaChange(A, meta(1)), msg.MetaChange(A, meta(2))]


# ---------------------------------------------------------------------------------------------- digest answers


def digest(asset: str, meta_updated_ms: int = 0) -> msg.Digest:
    return msg.Digest(asset, timestamp=1, size=10, changed_seq=3, meta_updated_ms=meta_updated_ms)


def test_an_empty_answer_is_one_empty_last_batch_with_the_watermark() -> None:
    parts = proto().answer_digests(7, [], 99, set().__contains__)
    assert parts == [DigestAnswerPart(msg.DigestBatch((), 99, False, True), ())]


def test_a_first_meeting_answer_is_full() -> None:
    parts = proto().answer_digests(0, [digest(A)], 12, set().__contains__)
    assert [part.batch for part in parts] == [msg.DigestBatch((digest(A),), 12, True, True)]


def test_the_echo_filter_leaves_out_what_the_peer_vouched_for_unless_its_metadata_changed() -> None:
    digests = [digest(A), digest(B, meta_updated_ms=50), digest(C), digest(D, meta_updated_ms=9)]
    parts = proto().answer_digests(3, digests, 20, ({A, B}).__contains__)
    assert len(parts) == 1
    assert parts[0].batch == msg.DigestBatch((digest(B, 50), digest(C), digest(D, 9)), 20, False, True)
    assert parts[0].with_metadata == (B, D)


def test_everything_vouched_for_is_still_one_empty_last_batch() -> None:
    parts = proto().answer_digests(3, [digest(A), digest(B)], 20, (frozenset({A, B})).__contains__)
    assert parts == [DigestAnswerPart(msg.DigestBatch((), 20, False, True), ())]


@pytest.mark.parametrize("n", [1, DIGESTS_PER_FRAME, DIGESTS_PER_FRAME + 1, 2 * DIGESTS_PER_FRAME + 1])
def test_answers_split_into_batches_and_only_the_last_carries_the_watermark(n: int) -> None:
    digests = [digest(asset) for asset in many_assets(n)]
    parts = proto().answer_digests(5, digests, 777, set().__contains__)
    batches = [part.batch for part in parts]
    assert len(batches) == -(-n // DIGESTS_PER_FRAME)
    assert [d for batch in batches for d in batch.digests] == digests
    assert all(len(batch.digests) == DIGESTS_PER_FRAME for batch in batches[:-1])
    assert [batch.last for batch in batches] == [False] * (len(batches) - 1) + [True]
    assert [batch.watermark for batch in batches] == [0] * (len(batches) - 1) + [777]
    assert not any(batch.full for batch in batches)


asset_pool = st.sampled_from(many_assets(40))


@settings(max_examples=200)
@given(
    entries=st.lists(st.tuples(asset_pool, st.sampled_from([0, 0, 1, 123])), unique_by=lambda e: e[0], max_size=40),
    vouched=st.sets(asset_pool, max_size=40),
    since=st.sampled_from([0, 1, 10**9]),
    watermark=st.integers(0, 1 << 62),
)
def test_digest_answer_properties(
    entries: list[tuple[str, int]], vouched: set[str], since: int, watermark: int
) -> None:
    digests = [digest(asset, updated) for asset, updated in entries]
    parts = proto().answer_digests(since, digests, watermark, vouched.__contains__)
    kept = [d for d in digests if d.hash not in vouched or d.meta_updated_ms]
    assert parts  # always at least the last batch: it carries the watermark
    assert [d for part in parts for d in part.batch.digests] == kept  # in the store's order, nothing lost
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        assert part.batch.last is last
        assert part.batch.watermark == (watermark if last else 0)
        assert part.batch.full is (since == 0)
        assert len(part.batch.digests) <= DIGESTS_PER_FRAME
        assert part.with_metadata == tuple(d.hash for d in part.batch.digests if d.meta_updated_ms)


def test_a_queued_answer_part_sends_its_metadata_first_and_records_what_was_sent() -> None:
    p = proto()
    batch = msg.DigestBatch((digest(A, 5), digest(B)), 31, True, True)
    events = p.queue_digest_part(DigestAnswerPart(batch, (A,)), [(A, meta(5))])
    assert events == [Event.of(HashesSent((A, B), 31, True), peer=PEER)]
    assert not events[0].payload.live
    out, output_events = p.take_output(T0)
    assert out == [msg.MetaChange(A, meta(5)), batch]
    assert output_events == []


def test_queued_answer_parts_keep_their_order_and_only_the_last_record_carries_the_watermark() -> None:
    p = proto()
    digests = [digest(asset) for asset in many_assets(DIGESTS_PER_FRAME + 2)]
    parts = p.answer_digests(9, digests, 64, set().__contains__)
    recorded = [event for part in parts for event in p.queue_digest_part(part, [])]
    assert [event.payload.watermark for event in recorded] == [0, 64]
    assert [event.payload.hashes for event in recorded] == [tuple(d.hash for d in part.batch.digests) for part in parts]
    out, _ = p.take_output(T0)
    assert out == [part.batch for part in parts]


# ---------------------------------------------------------------------------------------------- receive


def test_receive_keepalive_does_nothing_but_count_as_heard() -> None:
    p = proto()
    reaction = p.receive(msg.KeepAlive(), T0 + SILENCE_LIMIT_MS - 1)
    assert (reaction.events, reaction.actions, reaction.close) == ([], [], None)
    # heard just now: not silent at what would have been the limit counted from the start
    assert p.tick(T0 + SILENCE_LIMIT_MS + 5) is None


def test_receive_goodbye_closes_with_its_reason() -> None:
    p = proto()
    reaction = p.receive(msg.Goodbye("shutting down"), T0)
    assert reaction.close is not None and "shutting down" in reaction.close
    assert p.close_reason == reaction.close
    assert (reaction.events, reaction.actions) == ([], [])


def test_receive_digest_request_asks_the_session_for_an_answer() -> None:
    reaction = proto().receive(msg.DigestRequest(since=17), T0)
    assert reaction.actions == [AnswerDigests(17)]
    assert (reaction.events, reaction.close) == ([], None)


@pytest.mark.parametrize("full", [False, True])
def test_receive_a_middle_batch_records_its_hashes_without_the_watermark(full: bool) -> None:
    batch = msg.DigestBatch((digest(A), digest(B)), 55, full, False)
    reaction = proto().receive(batch, T0)
    assert reaction.events == [Event.of(HashesAdvertised((A, B), 0, full), peer=PEER)]
    assert (reaction.actions, reaction.close) == ([], None)


@pytest.mark.parametrize("full", [False, True])
def test_receive_the_last_batch_records_the_watermark(full: bool) -> None:
    reaction = proto().receive(msg.DigestBatch((digest(C),), 55, full, True), T0)
    assert reaction.events == [Event.of(HashesAdvertised((C,), 55, full), peer=PEER)]
    assert not reaction.events[0].payload.live


def test_receive_an_empty_last_batch_still_records_the_watermark() -> None:
    reaction = proto().receive(msg.DigestBatch((), 8, False, True), T0)
    assert reaction.events == [Event.of(HashesAdvertised((), 8, False), peer=PEER)]


def test_receive_advertise_records_live_hashes() -> None:
    reaction = proto().receive(msg.Advertise((A, B)), T0)
    assert reaction.events == [Event.of(HashesAdvertised((A, B), live=True), peer=PEER)]
    assert reaction.events[0].payload.live


def test_receive_want_records_one_outgoing_request_per_item() -> None:
    want = msg.Want((msg.WantItem(A, 0, 4), msg.WantItem(B, 4096, 9)))
    reaction = proto().receive(want, T0)
    assert reaction.events == [
        Event.of(TransferRequested(Direction.OUT, 0, 4), peer=PEER, hash=A),
        Event.of(TransferRequested(Direction.OUT, 4096, 9), peer=PEER, hash=B),
    ]
    assert reaction.actions == []


def test_a_received_want_folds_into_send_commands_with_the_peers_request_ids() -> None:
    reaction = proto().receive(msg.Want((msg.WantItem(A, 7, 4),)), T0)
    state = SyncState()
    commands = [c for i, event in enumerate(reaction.events, 1) for c in state.apply(event.journaled(i, i))]
    assert [(c.hash, c.offset, c.request_id) for c in commands if isinstance(c, SendAsset)] == [(A, 7, 4)]


def test_receive_meta_change_records_the_change_for_the_asset() -> None:
    value = MetaValue(77, PEERS[2], ("x", "y"), "words", True)
    reaction = proto().receive(msg.MetaChange(A, value), T0)
    assert reaction.events == [Event.of(MetadataChanged(77, PEERS[2], ("x", "y"), "words", True), peer=PEER, hash=A)]
    assert MetaValue.from_data(reaction.events[0].data) == value


def test_receive_peer_list_asks_the_session_to_learn_the_peers() -> None:
    peers = (msg.PeerInfo(PEERS[1], ("1.2.3.4:5",)), msg.PeerInfo(PEERS[2], (), "https://r.example"))
    reaction = proto().receive(msg.PeerList(peers), T0)
    assert reaction.actions == [LearnPeers(peers)]
    assert reaction.events == []


def test_receive_asset_unavailable_alone_records_nothing() -> None:
    # judged against the state in `unavailable`, not here
    reaction = proto().receive(msg.AssetUnavailable(A, "gone", 3), T0)
    assert (reaction.events, reaction.actions, reaction.close) == ([], [], None)


# ---------------------------------------------------------------------------------------------- liveness


def test_a_keepalive_goes_out_after_a_quiet_interval_and_not_before() -> None:
    p = proto()
    p.receive(msg.KeepAlive(), T0 + KEEPALIVE_MS)  # the peer is alive; only our side is quiet
    assert p.tick(T0 + KEEPALIVE_MS - 1) is None
    assert not p.has_output()
    assert p.tick(T0 + KEEPALIVE_MS) is None
    assert p.take_output(T0 + KEEPALIVE_MS) == ([msg.KeepAlive()], [])


def test_one_keepalive_per_quiet_interval() -> None:
    p = proto()
    p.tick(T0 + KEEPALIVE_MS)
    p.tick(T0 + KEEPALIVE_MS + 1)  # the first is still waiting: no second one
    assert p.take_output(T0 + KEEPALIVE_MS + 1)[0] == [msg.KeepAlive()]
    p.receive(msg.KeepAlive(), T0 + KEEPALIVE_MS + 1)
    p.tick(T0 + 2 * KEEPALIVE_MS)  # sent one just before: not quiet long enough yet
    assert not p.has_output()
    p.tick(T0 + 2 * KEEPALIVE_MS + 1)
    assert p.take_output(T0 + 2 * KEEPALIVE_MS + 1)[0] == [msg.KeepAlive()]


def test_no_keepalive_when_real_output_is_waiting_or_was_just_sent() -> None:
    p = proto()
    p.want(A, 0, 1)
    p.tick(T0 + KEEPALIVE_MS)
    assert p.take_output(T0 + KEEPALIVE_MS)[0] == [msg.Want((msg.WantItem(A, 0, 1),))]
    p.receive(msg.KeepAlive(), T0 + KEEPALIVE_MS)
    p.tick(T0 + 2 * KEEPALIVE_MS - 1)  # the Want counted as sending
    assert not p.has_output()


def test_an_empty_take_output_does_not_count_as_sending() -> None:
    p = proto()
    p.take_output(T0 + KEEPALIVE_MS - 1)
    p.tick(T0 + KEEPALIVE_MS)
    assert p.take_output(T0 + KEEPALIVE_MS)[0] == [msg.KeepAlive()]


def test_silence_closes_the_session_at_the_limit() -> None:
    p = proto()
    p.receive(msg.KeepAlive(), T0 + 500)
    assert p.tick(T0 + 500 + SILENCE_LIMIT_MS - 1) is None
    reason = p.tick(T0 + 500 + SILENCE_LIMIT_MS)
    assert reason is not None and "silent" in reason
    assert p.close_reason == reason
    assert p.tick(T0 + 500 + 2 * SILENCE_LIMIT_MS) == reason  # the first reason stays


def test_custom_liveness_limits_are_honoured() -> None:
    p = proto(keepalive_ms=100, silence_limit_ms=300)
    p.tick(T0 + 100)
    assert p.take_output(T0 + 100)[0] == [msg.KeepAlive()]
    assert p.tick(T0 + 299) is None
    assert p.tick(T0 + 300) is not None


def test_a_goodbye_reason_is_kept_over_a_later_silence() -> None:
    p = proto()
    close = p.receive(msg.Goodbye("bye"), T0).close
    assert p.tick(T0 + 10 * SILENCE_LIMIT_MS) == close


def test_our_own_sending_does_not_keep_a_silent_peer_alive() -> None:
    p = proto()
    for t in range(T0, T0 + SILENCE_LIMIT_MS, KEEPALIVE_MS):
        assert p.tick(t) is None
        p.take_output(t)
    assert p.tick(T0 + SILENCE_LIMIT_MS) is not None


# ---------------------------------------------------------------------------------------------- sends


def next_send(p: PeerProtocol) -> SendJob | None:
    """A stream of one asset (the simplest way to take sends, one at a time)."""
    jobs = p.next_sends(1)
    return jobs[0] if jobs else None


def test_no_send_without_a_request() -> None:
    assert proto().next_sends() == []


def test_assets_asked_for_from_their_start_share_a_stream_in_request_order() -> None:
    p = proto()
    assets = many_assets(ASSETS_PER_STREAM + 3)
    for i, asset in enumerate(assets):
        p.send(asset, 0, 100 + i)
    first = p.next_sends()
    assert first == [SendJob(asset, 0, 100 + i) for i, asset in enumerate(assets[:ASSETS_PER_STREAM])]
    assert p.next_sends() == [SendJob(a, 0, 100 + ASSETS_PER_STREAM + i) for i, a in enumerate(assets[-3:])]
    assert p.next_sends() == []  # nothing left to send
    assert p.sends_waiting == 0


def test_a_resume_goes_on_a_stream_of_its_own() -> None:
    p = proto()
    p.send(A, 0, 1)
    p.send(B, 4096, 2)
    p.send(C, 0, 3)
    assert p.next_sends() == [SendJob(A, 0, 1), SendJob(C, 0, 3)]  # the resume waits for its own stream
    assert p.next_sends() == [SendJob(B, 4096, 2)]


def test_no_more_streams_than_slots_and_a_done_stream_frees_its_slot() -> None:
    p = proto(parallel_sends=2)
    assets = many_assets(3)
    for i, asset in enumerate(assets):
        p.send(asset, i + 1, 10 + i)  # resumes: one a stream
    first, second = next_send(p), next_send(p)
    assert first is not None and second is not None
    assert p.next_sends() == []  # both slots taken
    p.send_finished(first, 10, 9)
    assert p.next_sends() == []  # finishing an asset does not end its stream
    p.stream_done()
    assert p.next_sends() == [SendJob(assets[2], 3, 12)]


def test_a_second_request_for_a_queued_asset_replaces_the_first() -> None:
    p = proto()
    p.send(A, 0, 1)
    p.send(A, 300, 2)
    assert p.sends_waiting == 1
    assert p.next_sends() == [SendJob(A, 300, 2)]
    assert p.next_sends() == []


def test_a_re_ask_while_sending_waits_until_that_send_ends() -> None:
    p = proto()
    p.send(A, 0, 1)
    first = next_send(p)
    assert first == SendJob(A, 0, 1)
    p.send(A, 4096, 2)  # the peer gave up on that send and asked again
    p.send(B, 0, 3)
    assert p.sends_waiting == 2
    assert p.next_sends() == [SendJob(B, 0, 3)]  # another asset may go; A may not be sent twice at once
    p.send(A, 8192, 4)  # asked yet again: the newest request is the one that waits
    assert p.sends_waiting == 1
    p.send_failed(first, Failure.STALLED, "slow")
    assert p.next_sends() == [SendJob(A, 8192, 4)]


def test_ending_a_send_twice_or_an_old_one_does_not_end_the_current_one() -> None:
    p = proto()
    p.send(A, 0, 1)
    first = next_send(p)
    assert first is not None
    p.send(A, 0, 2)
    p.send_finished(first, 1, 1)
    second = next_send(p)
    assert second == SendJob(A, 0, 2)
    p.send(A, 0, 3)
    p.send_failed(first, Failure.LINK_LOST, "late news of the first send")  # not the current send
    p.send_finished(SendJob(A, 0, 2), 1, 1)  # equal, but not the job that was started
    assert p.next_sends() == []  # A's second send is still the current one
    assert second is not None
    p.send_finished(second, 1, 1)
    assert p.next_sends() == [SendJob(A, 0, 3)]


def test_send_records() -> None:
    p = proto()
    p.send(A, 100, 5)
    job = next_send(p)
    assert job is not None
    assert p.send_started(job, 100, 1000) == [Event.of(TransferStarted(Direction.OUT, 100, 1000), peer=PEER, hash=A)]
    assert p.send_finished(job, 1000, 900) == [Event.of(TransferCompleted(Direction.OUT, 1000, 900), peer=PEER, hash=A)]


def test_a_failed_send_is_judged_by_the_fault_table() -> None:
    p = proto()
    p.send(A, 0, 5)
    job = next_send(p)
    assert job is not None
    assert p.send_failed(job, Failure.LINK_LOST, "reset") == [
        failed_transfer(PEER, A, Direction.OUT, Failure.LINK_LOST, "reset")
    ]
    assert not p.has_output()  # a failure of ours alone tells the peer nothing


def test_send_unavailable_tells_the_peer_under_its_request_id() -> None:
    p = proto(parallel_sends=1)
    p.send(A, 0, 41)
    p.send(B, 7, 42)
    job = next_send(p)
    assert job is not None
    events = p.send_unavailable(job, "not in the store")
    assert events == [failed_transfer(PEER, A, Direction.OUT, Failure.SOURCE_UNAVAILABLE, "not in the store")]
    payload = events[0].payload
    assert isinstance(payload, TransferFailed) and payload.fault is Fault.OURS
    assert p.take_output(T0)[0] == [msg.AssetUnavailable(A, "not in the store", 41)]
    assert p.next_sends() == []  # its stream has not ended yet
    p.stream_done()
    assert p.next_sends() == [SendJob(B, 7, 42)]


def test_a_broken_stream_tells_the_peer_each_asset_it_carried_under_the_link_fault() -> None:
    p = proto()
    p.send(A, 0, 1)
    job = next_send(p)
    assert job is not None
    events = p.send_unavailable(job, "its stream failed", Failure.LINK_LOST)
    assert events == [failed_transfer(PEER, A, Direction.OUT, Failure.LINK_LOST, "its stream failed")]
    assert p.take_output(T0)[0] == [msg.AssetUnavailable(A, "its stream failed", 1)]


def test_a_reason_told_to_the_peer_is_cut_and_cleaned_to_pass_its_wire_checks() -> None:
    p = proto()
    p.send(A, 0, 1)
    job = next_send(p)
    assert job is not None
    p.send_unavailable(job, "bad\x00" + "x" * 5000)
    (told,) = p.take_output(T0)[0]
    assert isinstance(told, msg.AssetUnavailable)
    assert "\x00" not in told.reason and len(told.reason) <= 1000
    decode_control(FrameType.ASSET_UNAVAILABLE, encode_control(told).SerializeToString())


send_ops = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.sampled_from(ASSETS), st.sampled_from([0, 0, 0, 10_000])),
        st.tuples(st.just("start"), st.just(""), st.integers(1, 3)),
        st.tuples(st.sampled_from(["finished", "failed", "unavailable"]), st.just(""), st.integers(0, 7)),
        st.tuples(st.just("stream_done"), st.just(""), st.integers(0, 7)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(ops=send_ops, parallel=st.integers(1, 4))
def test_send_queue_model(ops: list[tuple[str, str, int]], parallel: int) -> None:
    """Against a model: never more streams than slots, never one asset twice at once, every send answers
    the newest request made for its asset, a resume rides alone, a free slot is never left idle while a
    request may go, and once everything ends every asset's newest request has been served."""
    p = PeerProtocol(PEER, now_ms=T0, parallel_sends=parallel)
    latest: dict[str, tuple[int, int]] = {}  # asset -> (offset, request_id) of its newest request
    pending: set[str] = set()  # assets whose newest request has not started
    flying: dict[str, SendJob] = {}
    streams: list[list[str]] = []  # assets each open stream carried
    unavailable_sent: list[msg.AssetUnavailable] = []

    def start(limit: int) -> list[SendJob]:
        jobs = p.next_sends(limit)
        if not jobs:
            assert len(streams) == parallel or not (pending - flying.keys())
            return []
        assert len(jobs) <= limit and len(streams) < parallel
        assert len(jobs) == 1 or all(j.offset == 0 for j in jobs)
        for job in jobs:
            assert job.hash not in flying and job.hash in pending
            assert (job.offset, job.request_id) == latest[job.hash]
            pending.discard(job.hash)
            flying[job.hash] = job
        streams.append([j.hash for j in jobs])
        return jobs

    def end(how: str, index: int) -> None:
        if not flying:
            return
        job = flying.pop(sorted(flying)[index % len(flying)])
        if how == "finished":
            p.send_finished(job, 1, 1)
        elif how == "failed":
            p.send_failed(job, Failure.LINK_LOST, "cut")
        else:
            p.send_unavailable(job, "gone")
            unavailable_sent.append(msg.AssetUnavailable(job.hash, "gone", job.request_id))

    def close_stream(index: int) -> None:
        """A stream ends once every asset it carried has ended."""
        done = [i for i, carried in enumerate(streams) if not set(carried) & flying.keys()]
        if done:
            streams.pop(done[index % len(done)])
            p.stream_done()

    for request_id, (op, asset, number) in enumerate(ops, 1):
        if op == "ask":
            p.send(asset, number, request_id)
            latest[asset] = (number, request_id)
            pending.add(asset)
        elif op == "start":
            start(number)
        elif op == "stream_done":
            close_stream(number)
        else:
            end(op, number)
        assert p.sends_waiting == len(pending)
    while flying or pending or streams:  # drain: every newest request is served
        while start(ASSETS_PER_STREAM):
            pass
        end("finished", 0)
        close_stream(0)
    assert p.next_sends() == []
    out, _ = p.take_output(T0)
    assert out == unavailable_sent


# ---------------------------------------------------------------------------------------------- admission


def test_a_header_that_answers_the_live_request_is_accepted() -> None:
    state = fold([requested(A, 5, offset=300)])
    verdict = proto().admit(header(A, 5, offset=300, size=1000), state)
    assert verdict.admission is Admission.ACCEPT
    assert verdict.events == (Event.of(TransferStarted(Direction.IN, 300, 1000), peer=PEER, hash=A),)


def test_the_request_id_the_machine_gives_a_want_is_the_one_a_header_must_name() -> None:
    state = SyncState()
    commands = state.apply(requested(A, 12, offset=64))
    assert len(commands) == 1
    command = commands[0]
    assert isinstance(command, RequestAsset)
    p = proto()
    p.want(command.hash, command.offset, command.request_id)
    (want,), _ = p.take_output(T0)
    assert want == msg.Want((msg.WantItem(A, 64, 12),))
    assert p.admit(header(A, 12, offset=64), state).admission is Admission.ACCEPT


def test_a_header_for_an_older_request_is_stale() -> None:
    state = fold([requested(A, 5), requested(A, 9)])
    verdict = proto().admit(header(A, 5), state)
    assert verdict.admission is Admission.STALE
    assert verdict.events == ()


@pytest.mark.parametrize(
    "end",
    [
        Event.of(PeerDisconnected("gone"), peer=PEER),
        failed_transfer(PEER, A, Direction.IN, Failure.STALLED, "slow"),
        failed_transfer(PEER, A, Direction.IN, Failure.CONTENT_MISMATCH, "bad"),
        Event.of(TransferCompleted(Direction.IN, 1000, 1000, verified=True, meta={}), peer=PEER, hash=A),
    ],
    ids=["interrupted", "failed", "failed-discarded", "completed"],
)
def test_a_header_for_a_transfer_no_longer_active_is_stale(end: Event) -> None:
    state = fold([requested(A, 5), later(end, 6)])
    assert not state.peer(PEER).incoming[A].status.active
    verdict = proto().admit(header(A, 5), state)
    assert verdict.admission is Admission.STALE
    assert verdict.events == ()


@pytest.mark.parametrize(
    "state_events, bad_header",
    [
        ([], header(A, 5)),  # nothing asked of it at all
        ([requested(B, 5)], header(A, 5)),  # another asset was asked for
        ([requested(A, 5, peer=OTHER_PEER)], header(A, 5)),  # asked of another peer
        ([requested(A, 5)], header(A, 6)),  # a request id never issued
        ([requested(A, 5)], header(A, 10**12)),
        ([requested(A, 5)], header(A, 0)),
        ([requested(A, 5, offset=300)], header(A, 5, offset=0)),  # the wrong offset
        ([requested(A, 5, offset=300)], header(A, 5, offset=301)),
        ([requested(A, 5, offset=0)], header(A, 5, offset=1)),
    ],
    ids=[
        "unknown-asset",
        "other-asset",
        "other-peer",
        "next-id",
        "far-id",
        "id-zero",
        "offset-low",
        "offset-high",
        "offset-not-zero",
    ],
)
def test_headers_that_answer_nothing_we_asked_are_violations(state_events: list[Event], bad_header: Any) -> None:
    verdict = proto().admit(bad_header, fold(state_events))
    assert verdict.admission is Admission.VIOLATION
    assert verdict.events == ()
    assert verdict.reason


def test_a_request_id_never_issued_is_a_violation_even_on_an_ended_transfer() -> None:
    state = fold([requested(A, 5), later(failed_transfer(PEER, A, Direction.IN, Failure.STALLED, "slow"), 6)])
    assert proto().admit(header(A, 6), state).admission is Admission.VIOLATION
    assert proto().admit(header(A, 0), state).admission is Admission.VIOLATION


def test_a_resumed_request_is_accepted_at_the_offset_it_asked_for() -> None:
    started = Event.of(TransferStarted(Direction.IN, 0, 1000), peer=PEER, hash=A)
    checkpoint = Event.of(TransferCheckpointed(Direction.IN, 600), peer=PEER, hash=A)
    cut = Event.of(PeerDisconnected("cut"), peer=PEER)
    state = fold([requested(A, 5), later(started, 6), later(checkpoint, 7), later(cut, 8), requested(A, 9, 600)])
    p = proto()
    assert p.admit(header(A, 9, offset=600), state).admission is Admission.ACCEPT
    assert p.admit(header(A, 5, offset=0), state).admission is Admission.STALE
    assert p.admit(header(A, 9, offset=0), state).admission is Admission.VIOLATION


def test_a_second_stream_for_a_request_already_streaming_is_not_accepted() -> None:
    """The peer streams one asset once per request (a re-ask gets a new request id). A second stream that
    names a request whose stream was already admitted would write into the same staging file beside the
    first one: it must not be accepted."""
    state = fold([requested(A, 5)])
    p = proto()
    first = p.admit(header(A, 5), state)
    assert first.admission is Admission.ACCEPT
    state = fold([later(first.events[0], 6)], state)  # journaled, as the session does
    assert p.admit(header(A, 5), state).admission is not Admission.ACCEPT
    checkpoint = Event.of(TransferCheckpointed(Direction.IN, 400), peer=PEER, hash=A)
    state = fold([later(checkpoint, 7)], state)
    assert p.admit(header(A, 5, offset=400), state).admission is not Admission.ACCEPT


# ---------------------------------------------------------------------------------------------- unavailable


def test_unavailable_for_the_live_request_fails_it_as_the_peers_fault() -> None:
    state = fold([requested(A, 5)])
    events = proto().unavailable(msg.AssetUnavailable(A, "lost it", 5), state)
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.peer, event.hash) == (EventKind.TRANSFER_FAILED, PEER, A)
    payload = event.payload
    assert isinstance(payload, TransferFailed)
    assert payload.direction is Direction.IN
    assert payload.fault is Fault.PEER and payload.defer and not payload.discard
    assert "lost it" in payload.reason


@pytest.mark.parametrize(
    "state_events, message",
    [
        ([], msg.AssetUnavailable(A, "x", 5)),
        ([requested(A, 5)], msg.AssetUnavailable(A, "x", 4)),
        ([requested(A, 5)], msg.AssetUnavailable(A, "x", 6)),
        ([requested(A, 5)], msg.AssetUnavailable(A, "x", 0)),
        ([requested(A, 5)], msg.AssetUnavailable(B, "x", 5)),
        ([requested(A, 5, peer=OTHER_PEER)], msg.AssetUnavailable(A, "x", 5)),
        ([requested(A, 5), later(Event.of(PeerDisconnected("cut"), peer=PEER), 6)], msg.AssetUnavailable(A, "x", 5)),
    ],
    ids=["unknown", "older-id", "newer-id", "id-zero", "other-asset", "other-peer", "ended"],
)
def test_unavailable_for_anything_but_the_live_request_is_stale(state_events: list[Event], message: Any) -> None:
    assert proto().unavailable(message, fold(state_events)) == []


# ---------------------------------------------------------------------------------------------- receives


def test_a_verified_receive_records_the_senders_record_for_the_push() -> None:
    record = {"hash": A, "size": 10, "tags": ["t"], "trashed": False}
    events = proto().incoming_verified(A, 10, 4, record)
    assert events == [Event.of(TransferCompleted(Direction.IN, 10, 4, verified=True, meta=record), peer=PEER, hash=A)]
    payload = events[0].payload
    assert payload.verified and dict(payload.meta) == record


@pytest.mark.parametrize("failure", list(Failure))
def test_a_failed_receive_is_judged_by_the_fault_table(failure: Failure) -> None:
    events = proto().incoming_failed(A, failure, "why")
    assert events == [failed_transfer(PEER, A, Direction.IN, failure, "why")]
    assert events[0].data["direction"] == "in"


def test_a_violation_is_journaled_and_closes_the_session_with_the_first_reason() -> None:
    p = proto()
    events = p.violation("bad frame")
    assert events == [Event.of(PeerProtocolError("bad frame"), peer=PEER)]
    assert p.close_reason is not None and "bad frame" in p.close_reason
    p.violation("another")
    assert "bad frame" in p.close_reason


# ---------------------------------------------------------------------------------------------- output on the wire


def _wire_round_trip(frames: list[object]) -> list[object]:
    decoded: list[object] = []
    for frame in frames:
        pb = encode_control(frame)
        decoded.append(decode_control(message_type(pb), pb.SerializeToString()))
    return decoded


def test_large_outputs_pass_the_peers_wire_checks() -> None:
    p = proto()
    assets = many_assets(MAX_WANTS + 10)
    for i, asset in enumerate(assets):
        p.want(asset, i, i + 1)
    p.advertise(many_assets(MAX_DIGESTS + 10))
    for part in p.answer_digests(0, [digest(a, 1) for a in many_assets(MAX_DIGESTS + 10)], 5, set().__contains__):
        p.queue_digest_part(part, [])
    out, _ = p.take_output(T0)
    assert _wire_round_trip(out) == out


text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@settings(max_examples=100)
@given(
    wants=st.lists(st.tuples(asset_pool, st.integers(0, 1 << 40), st.integers(1, 1 << 60)), max_size=20),
    adverts=st.lists(asset_pool, max_size=20),
    changes=st.lists(st.tuples(asset_pool, st.integers(0, 1 << 50), st.lists(text, max_size=3), text), max_size=4),
    reason=text,
)
def test_everything_the_rules_send_passes_the_peers_wire_checks(
    wants: list[tuple[str, int, int]],
    adverts: list[str],
    changes: list[tuple[str, int, list[str], str]],
    reason: str,
) -> None:
    p = proto()
    p.start(3, [msg.PeerInfo(PEERS[1], ("10.0.0.1:4000", "[::1]:4000"), "https://relay.example")])
    for asset, offset, request_id in wants:
        p.want(asset, offset, request_id)
    p.advertise(adverts)
    for asset, updated, tags, description in changes:
        p.forward_metadata(asset, MetaValue(updated, PEERS[2], tuple(tags), description))
    p.send(A, 0, 1)
    job = next_send(p)
    assert job is not None
    p.send_unavailable(job, reason)
    p.tick(T0 + KEEPALIVE_MS)
    out, _ = p.take_output(T0 + KEEPALIVE_MS)
    assert out and _wire_round_trip(out) == out
