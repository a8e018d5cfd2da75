"""The passphrase proof: both peers show they know the passphrase, bound to both endpoint ids.

Flow on the control stream (I = initiator/dialer, R = responder):
    I -> Hello(version, id_I, nonce_I)      R -> Hello(version, id_R, nonce_R)
    I -> Proof(mac_I)
    R checks mac_I; only then R -> Proof(mac_R)   (a stranger learns nothing to brute-force offline)
    I checks mac_R, then I -> AuthResult(ok)
On any failure the failing side sends AuthResult(ok=false, reason), finishes the stream and raises
AuthenticationFailed. The passphrase never travels: the MAC key is scrypt(passphrase), and each MAC
covers a role label, both ids and both nonces, so a proof cannot be replayed, reflected or reused
against another endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from cansync.net.errors import AuthenticationFailed, PeerTimeout, StreamClosed
from cansync.net.streams import FramedStream
from cansync.wire.frames import FrameError, FrameType
from cansync.wire.pb import peer_pb2

PROTOCOL_VERSION = 1
NONCE_SIZE = 32
ID_SIZE = 32
KDF_SALT = b"cansync/handshake/v1"
PROOF_LABEL = b"cansync/handshake/v1/proof"
DEFAULT_TIMEOUT = 10.0


class Role(Enum):
    INITIATOR = b"initiator"
    RESPONDER = b"responder"


@dataclass(frozen=True)
class HandshakeKey:
    """The MAC key derived from the passphrase (scrypt, so a guess costs real work)."""

    key: bytes

    def __repr__(self) -> str:  # never show the key in logs
        return "HandshakeKey(<secret>)"

    @classmethod
    def derive(cls, passphrase: str) -> HandshakeKey:
        """Derived once per process per passphrase (scrypt costs ~50 ms by design)."""
        return _derive_cached(passphrase)


@functools.lru_cache(maxsize=4)
def _derive_cached(passphrase: str) -> HandshakeKey:
    key = hashlib.scrypt(passphrase.encode("utf-8"), salt=KDF_SALT, n=2**14, r=8, p=1, dklen=32)
    return HandshakeKey(key)


def compute_proof(
    key: HandshakeKey,
    role: Role,
    initiator_id: bytes,
    responder_id: bytes,
    initiator_nonce: bytes,
    responder_nonce: bytes,
) -> bytes:
    """HMAC-SHA256(K, label || role || id_I || id_R || nonce_I || nonce_R); all fields fixed-size."""
    for name, value, size in (
        ("initiator id", initiator_id, ID_SIZE),
        ("responder id", responder_id, ID_SIZE),
        ("initiator nonce", initiator_nonce, NONCE_SIZE),
        ("responder nonce", responder_nonce, NONCE_SIZE),
    ):
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    message = PROOF_LABEL + role.value + initiator_id + responder_id + initiator_nonce + responder_nonce
    return hmac.new(key.key, message, hashlib.sha256).digest()


def verify_proof(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)


class _Refused(Exception):
    """Internal: this side refuses the peer; the reason is sent in AuthResult."""


@dataclass(frozen=True)
class HandshakeResult:
    their_boot_id: bytes  # the peer process's boot id (b"" if it sent none)
    link_id: bytes  # the same on both ends of this connection, different for every connection


async def authenticate(
    conn_control: FramedStream,
    *,
    key: HandshakeKey,
    our_id: str,
    their_id: str,
    initiator: bool,
    timeout: float = DEFAULT_TIMEOUT,
    boot_id: bytes = b"",
    random_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> HandshakeResult:
    """Run the proof exchange on the control stream; AuthenticationFailed(reason) if it fails.

    `their_id` must be the QUIC-authenticated remote endpoint id (PeerConnection.remote_id_hex).
    Returns what the two ends now share (the peer's boot id, the link id). StreamClosed if the
    connection ends before the exchange completes.
    """
    stream = conn_control
    peer = their_id[:10]
    loop = asyncio.get_running_loop()  # the loop's clock: what the stream timeouts count in
    deadline = loop.time() + timeout

    def remaining() -> float:
        return max(0.001, deadline - loop.time())

    our_nonce = random_bytes(NONCE_SIZE)
    our_id_bytes, their_id_bytes = bytes.fromhex(our_id), bytes.fromhex(their_id)
    try:
        await stream.write_message(
            peer_pb2.Hello(
                protocol_version=PROTOCOL_VERSION, endpoint_id=our_id_bytes, nonce=our_nonce, boot_id=boot_id
            ),
            timeout=remaining(),
        )
        hello = await stream.expect(FrameType.HELLO, timeout=remaining())
        assert isinstance(hello, peer_pb2.Hello)
        their_nonce = _check_hello(hello, their_id_bytes)
        if initiator:
            ids_nonces = (our_id_bytes, their_id_bytes, our_nonce, their_nonce)
            await stream.write_message(
                peer_pb2.Proof(mac=compute_proof(key, Role.INITIATOR, *ids_nonces)), timeout=remaining()
            )
            answer = await _proof_or_rejection(stream, remaining(), peer)
            if not verify_proof(compute_proof(key, Role.RESPONDER, *ids_nonces), answer.mac):
                raise _Refused("the peer's passphrase proof did not verify (different passphrase?)")
            await stream.write_message(peer_pb2.AuthResult(ok=True), timeout=remaining())
        else:
            ids_nonces = (their_id_bytes, our_id_bytes, their_nonce, our_nonce)
            claim = await _proof_or_rejection(stream, remaining(), peer)
            if not verify_proof(compute_proof(key, Role.INITIATOR, *ids_nonces), claim.mac):
                raise _Refused("the peer's passphrase proof did not verify (different passphrase?)")
            await stream.write_message(
                peer_pb2.Proof(mac=compute_proof(key, Role.RESPONDER, *ids_nonces)), timeout=remaining()
            )
            result = await stream.expect(FrameType.AUTH_RESULT, timeout=remaining())
            assert isinstance(result, peer_pb2.AuthResult)
            if not result.ok:
                raise AuthenticationFailed(f"peer {peer} rejected our proof: {result.reason or 'no reason'}")
    except _Refused as refusal:
        await _send_refusal(stream, str(refusal))
        raise AuthenticationFailed(f"peer {peer}: {refusal}") from None
    except PeerTimeout as exc:
        await _send_refusal(stream, "handshake timed out")
        raise AuthenticationFailed(f"peer {peer}: handshake timed out after {timeout:g} s ({exc})") from exc
    except FrameError as exc:
        await _send_refusal(stream, "malformed handshake frame")
        raise AuthenticationFailed(f"peer {peer}: malformed handshake ({exc})") from exc
    except StreamClosed:
        # The connection ended: no proof failed. The caller treats it as a transport error, not as a
        # stranger (a peer dropping a duplicate connection closes it right after the handshake).
        raise
    nonces = our_nonce + their_nonce if initiator else their_nonce + our_nonce
    return HandshakeResult(their_boot_id=bytes(hello.boot_id), link_id=hashlib.sha256(nonces).digest())


def _check_hello(hello: peer_pb2.Hello, their_id: bytes) -> bytes:
    if hello.protocol_version != PROTOCOL_VERSION:
        raise _Refused(f"protocol version {hello.protocol_version} is not supported (we speak {PROTOCOL_VERSION})")
    if hello.endpoint_id != their_id:
        raise _Refused(
            f"Hello claims endpoint id {hello.endpoint_id.hex()[:16]}…, but the connection is authenticated "
            f"as {their_id.hex()[:16]}…"
        )
    if len(hello.nonce) != NONCE_SIZE:
        raise _Refused(f"Hello nonce is {len(hello.nonce)} bytes, expected {NONCE_SIZE}")
    return bytes(hello.nonce)


async def _proof_or_rejection(stream: FramedStream, timeout: float, peer: str) -> peer_pb2.Proof:
    msg = await stream.expect(FrameType.PROOF, FrameType.AUTH_RESULT, timeout=timeout)
    if isinstance(msg, peer_pb2.AuthResult):
        if msg.ok:
            raise _Refused("the peer declared success before proving itself")
        raise AuthenticationFailed(f"peer {peer} rejected us: {msg.reason or 'no reason given'}")
    assert isinstance(msg, peer_pb2.Proof)
    return msg


async def _send_refusal(stream: FramedStream, reason: str) -> None:
    # Best effort: the peer may already be gone.
    with contextlib.suppress(PeerTimeout, StreamClosed, FrameError):
        await stream.write_message(peer_pb2.AuthResult(ok=False, reason=reason), timeout=2.0)
    with contextlib.suppress(PeerTimeout, StreamClosed):
        await stream.finish()


class FailureLimiter:
    """Refuses a peer after `max_failures` failed handshakes within `window_s` seconds. Pure."""

    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, peer: str) -> deque[float]:
        times = self._failures.get(peer)
        if times is None:
            return deque()
        cutoff = self._clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[peer]
        return times

    def allowed(self, peer: str) -> bool:
        return len(self._recent(peer)) < self.max_failures

    def record_failure(self, peer: str) -> None:
        self._recent(peer)
        self._failures.setdefault(peer, deque()).append(self._clock())

    def record_success(self, peer: str) -> None:
        self._failures.pop(peer, None)

    def retry_after(self, peer: str) -> float:
        """Seconds until `peer` is allowed again (0 when it is allowed now)."""
        times = self._recent(peer)
        if len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[-self.max_failures] + self.window_s - self._clock())
