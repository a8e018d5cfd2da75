"""What a restart makes of an incoming transfer that a crash cut off after our store had taken it.

A large asset is pushed into our store while it arrives; its verified completion and the
received-from-peer mark are journaled once the push has landed. A `kill -9` between the two leaves the
asset in our store, its staged copy whole, and the journal saying only that the transfer was under
way: nothing is lost or sent again, but the audit would never learn who sent it. At the next start the
agent looks at each such transfer (`cut_off_transfers`); the shell reads the staged copy and asks the
store, and `receipt_after_restart` decides from those facts whether the peer's bytes arrived whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from cansync.core.events import AssetReceived, Direction, Event, TransferCompleted
from cansync.core.machine import SyncState
from cansync.core.peer_state import TransferStatus

CUT_OFF_STATUSES = frozenset({TransferStatus.STARTED, TransferStatus.CHECKPOINTED, TransferStatus.INTERRUPTED})
"""Bytes were moving when the transfer ended with no outcome journaled (no completion, no failure)."""


@dataclass(frozen=True, slots=True)
class CutOffTransfer:
    peer: str
    asset: str
    size: int


def cut_off_transfers(state: SyncState) -> list[CutOffTransfer]:
    """Incoming transfers that may have ended in our store unrecorded, one per asset: those not yet ours
    whose bytes were moving with a known size. Staging keeps one copy per asset, whichever peers filled
    it; the peer that sent last (its transfer started or checkpointed at the newest seq) is the one whose
    bytes finished it."""
    latest: dict[str, tuple[int, CutOffTransfer]] = {}
    for peer, peer_state in state.peers.items():
        for asset, transfer in peer_state.incoming.items():
            if transfer.status not in CUT_OFF_STATUSES or transfer.size is None or transfer.discarded:
                continue
            if asset in state.local:
                continue
            known = latest.get(asset)
            if known is None or transfer.offset_seq > known[0]:
                latest[asset] = (transfer.offset_seq, CutOffTransfer(peer, asset, transfer.size))
    return [cut for _seq, cut in sorted(latest.values(), key=lambda item: item[1].asset)]


def receipt_after_restart(
    cut: CutOffTransfer, state: SyncState, *, staged_size: int, staged_digest: str | None, store_holds: bool
) -> list[Event]:
    """The events that record a cut-off transfer as received, or none.

    It counts as received only if all three hold: our store has the asset, the staged copy is as long as
    the peer said, and it hashes to the asset's id (the peer's bytes, verified). Otherwise nothing is
    journaled: the transfer resumes from its checkpoint as before, or our store's feed reports an asset
    that reached it some other way. Decided against the state as it stands when the events are journaled,
    so a transfer settled meanwhile is left alone.
    """
    peer_state = state.peers.get(cut.peer)
    transfer = peer_state.incoming.get(cut.asset) if peer_state is not None else None
    if transfer is None or transfer.status not in CUT_OFF_STATUSES or cut.asset in state.local:
        return []
    if not store_holds or staged_size != cut.size or staged_digest != cut.asset:
        return []
    # `sent` is unknown (the stream's count died with the process): the fold counts the size instead
    done = TransferCompleted(Direction.IN, cut.size, None, verified=True, stored=True)
    return [Event.of(done, peer=cut.peer, hash=cut.asset), Event.of(AssetReceived(), peer=cut.peer, hash=cut.asset)]
