"""Transport errors, each with a message that names the peer, stream or file involved."""

from __future__ import annotations

from cansync.wire.frames import FrameError

__all__ = [
    "AuthenticationFailed",
    "BindFailed",
    "ConnectFailed",
    "FrameError",
    "PeerTimeout",
    "StreamClosed",
    "TransportError",
]


class TransportError(Exception):
    """Something went wrong talking to a peer."""


class PeerTimeout(TransportError, TimeoutError):
    """The peer sent (or accepted) nothing for longer than the allowed time."""


class BindFailed(TransportError):
    """The endpoint could not bind its socket (address in use, bad bind_addr)."""


class ConnectFailed(TransportError):
    """A dial did not produce a connection (refused, unreachable, wrong protocol, timed out)."""


class StreamClosed(TransportError):
    """The stream or its connection ended where more data was expected."""


class AuthenticationFailed(TransportError):
    """The passphrase proof did not verify, or the handshake broke off; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
