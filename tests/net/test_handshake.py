"""The passphrase proof: pure MAC rules, and live handshakes over real connections (good and hostile)."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from cansync.net.endpoint import PeerConnection, PeerEndpoint
from cansync.net.errors import AuthenticationFailed
from cansync.net.handshake import (
    NONCE_SIZE,
    PROTOCOL_VERSION,
    FailureLimiter,
    HandshakeKey,
    Role,
    authenticate,
    compute_proof,
)
from cansync.net.streams import FramedStream
from cansync.wire.frames import FrameType
from cansync.wire.pb import peer_pb2

from .conftest import connect_pair

KEY = HandshakeKey.derive("correct horse battery staple")
OTHER_KEY = HandshakeKey.derive("incorrect horse")
ID_I, ID_R = b"\x11" * 32, b"\x22" * 32
NONCE_I, NONCE_R = b"\x33" * 32, b"\x44" * 32


# --- pure -------------------------------------------------------------------------------------------


def test_key_is_derived_once_and_never_shown() -> None:
    assert HandshakeKey.derive("correct horse battery staple") is KEY
    assert len(KEY.key) == 32 and KEY != OTHER_KEY
    assert "correct" not in repr(KEY) and KEY.key.hex() not in repr(KEY)


def test_proof_depends_on_role_ids_nonces_and_key() -> None:
    base = compute_proof(KEY, Role.INITIATOR, ID_I, ID_R, NONCE_I, NONCE_R)
    assert base == compute_proof(KEY, Role.INITIATOR, ID_I, ID_R, NONCE_I, NONCE_R)
    variants = [
        compute_proof(KEY, Role.RESPONDER, ID_I, ID_R, NONCE_I, NONCE_R),  # a reflected proof differs
        compute_proof(KEY, Role.INITIATOR, ID_R, ID_I, NONCE_I, NONCE_R),
        compute_proof(KEY, Role.INITIATOR, ID_I, b"\x23" * 32, NONCE_I, NONCE_R),
        compute_proof(KEY, Role.INITIATOR, ID_I, ID_R, NONCE_I, b"\x45" * 32),  # replay in a new session
        compute_proof(KEY, Role.INITIATOR, ID_I, ID_R, NONCE_R, NONCE_I),
        compute_proof(OTHER_KEY, Role.INITIATOR, ID_I, ID_R, NONCE_I, NONCE_R),
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    with pytest.raises(ValueError, match="nonce"):
        compute_proof(KEY, Role.INITIATOR, ID_I, ID_R, b"short", NONCE_R)


def test_failure_limiter_refuses_after_n_failures_and_forgets_after_the_window() -> None:
    now = [1000.0]
    limiter = FailureLimiter(max_failures=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(2):
        limiter.record_failure("peer-a")
        now[0] += 1
    assert limiter.allowed("peer-a")
    limiter.record_failure("peer-a")
    assert not limiter.allowed("peer-a")
    assert limiter.allowed("peer-b")  # per peer
    assert limiter.retry_after("peer-a") == pytest.approx(58.0)
    now[0] += 57.5
    assert not limiter.allowed("peer-a")
    now[0] += 1.0  # the oldest failure left the window
    assert limiter.allowed("peer-a") and limiter.retry_after("peer-a") == 0.0
    limiter.record_failure("peer-a")
    assert not limiter.allowed("peer-a")
    limiter.record_success("peer-a")
    assert limiter.allowed("peer-a")
    with pytest.raises(ValueError):
        FailureLimiter(0, 1.0)


# --- live -------------------------------------------------------------------------------------------


async def control_pair(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> tuple[PeerConnection, PeerConnection, FramedStream, asyncio.Future[FramedStream]]:
    a, b = endpoints
    ca, cb = await connect_pair(a, b)
    return ca, cb, await ca.open_control(), asyncio.ensure_future(cb.accept_control())


async def read_everything(stream: FramedStream) -> list[tuple[FrameType, object]]:
    """Every frame the peer wrote on this stream, until it finished it."""
    frames = []
    while (frame := await stream.read_message(timeout=10)) is not None:
        frames.append(frame)
    return frames


async def test_same_passphrase_authenticates_both_sides(endpoints: tuple[PeerEndpoint, PeerEndpoint]) -> None:
    a, b = endpoints
    ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
    auth_a = asyncio.ensure_future(
        authenticate(ctl_a, key=KEY, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True)
    )
    await authenticate(await ctl_b, key=KEY, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
    await auth_a
    # the stream carries on after the handshake
    await ctl_a.write_message(peer_pb2.DigestRequest(since=5))
    assert await (await ctl_b).expect(FrameType.DIGEST_REQUEST) == peer_pb2.DigestRequest(since=5)


async def test_wrong_passphrase_fails_on_both_sides(endpoints: tuple[PeerEndpoint, PeerEndpoint]) -> None:
    a, b = endpoints
    ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
    auth_a = asyncio.ensure_future(
        authenticate(ctl_a, key=OTHER_KEY, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True)
    )
    with pytest.raises(AuthenticationFailed, match="did not verify"):
        await authenticate(await ctl_b, key=KEY, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
    with pytest.raises(AuthenticationFailed, match="rejected us"):
        await auth_a


async def test_responder_never_sends_its_proof_to_a_wrong_passphrase(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    """A stranger who dials us gets no MAC of ours to brute-force offline."""
    a, b = endpoints
    ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
    nonce = secrets.token_bytes(NONCE_SIZE)
    await ctl_a.write_message(
        peer_pb2.Hello(protocol_version=PROTOCOL_VERSION, endpoint_id=bytes.fromhex(a.id_hex), nonce=nonce)
    )
    responder = asyncio.ensure_future(
        authenticate(await ctl_b, key=KEY, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
    )
    hello_r = await ctl_a.expect(FrameType.HELLO)
    assert isinstance(hello_r, peer_pb2.Hello)
    wrong = compute_proof(
        OTHER_KEY, Role.INITIATOR, bytes.fromhex(a.id_hex), bytes.fromhex(b.id_hex), nonce, hello_r.nonce
    )
    await ctl_a.write_message(peer_pb2.Proof(mac=wrong))
    with pytest.raises(AuthenticationFailed):
        await responder
    written = await read_everything(ctl_a)  # what the responder wrote after its Hello, to the end
    assert [t for t, _ in written] == [FrameType.AUTH_RESULT]
    assert written[0][1].ok is False  # type: ignore[attr-defined]


async def test_reflected_proof_fails(endpoints: tuple[PeerEndpoint, PeerEndpoint]) -> None:
    """A responder without the passphrase echoes the initiator's own proof back: refused."""
    a, b = endpoints
    ca, cb, ctl_a, ctl_b_future = await control_pair(endpoints)
    initiator = asyncio.ensure_future(
        authenticate(ctl_a, key=KEY, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True)
    )
    ctl_b = await ctl_b_future
    await ctl_b.expect(FrameType.HELLO)
    await ctl_b.write_message(
        peer_pb2.Hello(
            protocol_version=PROTOCOL_VERSION, endpoint_id=bytes.fromhex(b.id_hex), nonce=secrets.token_bytes(32)
        )
    )
    proof_i = await ctl_b.expect(FrameType.PROOF)
    await ctl_b.write_message(proof_i)  # reflect it
    with pytest.raises(AuthenticationFailed, match="did not verify"):
        await initiator
    result = await ctl_b.expect(FrameType.AUTH_RESULT)
    assert result.ok is False  # type: ignore[attr-defined]


async def test_replayed_proof_from_an_earlier_session_fails(endpoints: tuple[PeerEndpoint, PeerEndpoint]) -> None:
    """A proof recorded in one session (even with the same initiator nonce) fails in the next."""
    a, b = endpoints
    id_a, id_b = bytes.fromhex(a.id_hex), bytes.fromhex(b.id_hex)
    nonce_a = secrets.token_bytes(32)
    recorded = None
    for session in range(2):
        ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
        await ctl_a.write_message(peer_pb2.Hello(protocol_version=PROTOCOL_VERSION, endpoint_id=id_a, nonce=nonce_a))
        responder = asyncio.ensure_future(
            authenticate(await ctl_b, key=KEY, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
        )
        hello_b = await ctl_a.expect(FrameType.HELLO)
        if session == 0:  # the honest session that an eavesdropper records
            recorded = compute_proof(KEY, Role.INITIATOR, id_a, id_b, nonce_a, hello_b.nonce)  # type: ignore[attr-defined]
            await ctl_a.write_message(peer_pb2.Proof(mac=recorded))
            await ctl_a.expect(FrameType.PROOF)
            await ctl_a.write_message(peer_pb2.AuthResult(ok=True))
            await responder
        else:
            await ctl_a.write_message(peer_pb2.Proof(mac=recorded))
            with pytest.raises(AuthenticationFailed, match="did not verify"):
                await responder
        ca.close("next session")


async def test_hello_with_an_endpoint_id_other_than_the_quic_identity_fails(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    a, b = endpoints
    ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
    await ctl_a.write_message(
        peer_pb2.Hello(
            protocol_version=PROTOCOL_VERSION, endpoint_id=secrets.token_bytes(32), nonce=secrets.token_bytes(32)
        )
    )
    with pytest.raises(AuthenticationFailed, match="authenticated as"):
        await authenticate(await ctl_b, key=KEY, our_id=b.id_hex, their_id=cb.remote_id_hex, initiator=False)
    frames = await read_everything(ctl_a)
    assert [t for t, _ in frames] == [FrameType.HELLO, FrameType.AUTH_RESULT]
    assert frames[1][1].ok is False  # type: ignore[attr-defined]


async def test_a_silent_peer_times_out_as_an_authentication_failure(
    endpoints: tuple[PeerEndpoint, PeerEndpoint],
) -> None:
    a, b = endpoints
    ca, cb, ctl_a, ctl_b = await control_pair(endpoints)
    ctl_b.cancel()  # the responder never answers
    with pytest.raises(AuthenticationFailed, match="timed out"):
        await authenticate(ctl_a, key=KEY, our_id=a.id_hex, their_id=ca.remote_id_hex, initiator=True, timeout=0.5)
