"""Between the store's records and the machine's metadata values: one conversion each way."""

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


def meta_update(asset: str, value: MetaValue) -> can_sync_pb2.MetaUpdate:
    return can_sync_pb2.MetaUpdate(
        hash=asset,
        tags=list(value.tags),
        description=value.description,
        trashed=value.trashed,
        updated_ms=value.updated_ms,
        origin=value.origin,
    )
