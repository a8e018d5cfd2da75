"""Which of two connections to one peer survives, decided the same way at both ends without a word.

Each end sees the same two links: who dialed each, the peer's boot id announced on each, and the link
id both ends derived in the handshake. The verdict uses only what both ends agree on, so whatever order
the connections arrived in, both keep the same one and close the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Link:
    dialer: str  # endpoint id of the side that dialed this connection
    peer_boot: bytes  # the boot id the peer announced on it (a new one: the peer restarted)
    link_id: bytes  # this connection's id, the same at both ends


def keep_new_link(our_id: str, peer: str, existing: Link, new: Link) -> bool:
    """Should `new` replace `existing` (a live session with `peer`)?

    A peer that restarted announces a new boot id: the old connection is dead (QUIC would only notice
    at its idle timeout), so the new one wins. Two connections dialed in opposite directions (both
    dialed at once): keep the one dialed by the smaller endpoint id. Two dialed the same way (a retried
    dial that got through twice): keep the larger link id."""
    if existing.peer_boot != new.peer_boot:
        return True
    if existing.dialer != new.dialer:
        return new.dialer == min(our_id, peer)
    return new.link_id > existing.link_id
