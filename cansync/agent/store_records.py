"""From the store's records to the machine's metadata values (the way back is wire.peer_messages.meta_update)."""

from __future__ import annotations

from cansync.core.metadata import MetaValue
from cansync.wire.pb import can_sync_pb2


def meta_value(record: can_sync_pb2.AssetMeta, our_id: str) -> MetaValue:
    """The metadata of a store record as a last-writer-wins value. An edit made on this store carries no
    origin in the store (it says ""), and is ours."""
    return MetaValue(
        updated_ms=record.meta_updated_ms,
        origin=record.meta_origin or our_id,
        tags=tuple(record.tags),
        description=record.description,
        trashed=record.trashed,
    )
