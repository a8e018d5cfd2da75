"""AssetRecord: everything the store knows of one asset except its content, and its two wire forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from cansync.wire.pb import can_sync_pb2


@dataclass(frozen=True)
class AssetRecord:
    hash: str
    timestamp: int
    size: int
    file_name: str
    mime_type: str = "application/octet-stream"
    tags: tuple[str, ...] = ()
    description: str = ""
    human_file_name: str = ""
    human_readable_path: str = ""
    application: str = ""
    user: str = ""
    trashed: bool = False
    meta_updated_ms: int = 0
    meta_origin: str = ""
    extension: str = ""
    changed_seq: int = 0

    def with_changes(self, **changes: Any) -> AssetRecord:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The public API's record (file_name is the store's business, not the client's)."""
        data = asdict(self)
        data.pop("file_name")
        data["tags"] = list(self.tags)
        return data

    def to_proto(self) -> can_sync_pb2.AssetMeta:
        return can_sync_pb2.AssetMeta(
            hash=self.hash,
            timestamp=self.timestamp,
            size=self.size,
            mime_type=self.mime_type,
            tags=list(self.tags),
            description=self.description,
            human_file_name=self.human_file_name,
            human_readable_path=self.human_readable_path,
            application=self.application,
            user=self.user,
            trashed=self.trashed,
            meta_updated_ms=self.meta_updated_ms,
            meta_origin=self.meta_origin,
            extension=self.extension,
            changed_seq=self.changed_seq,
        )

    def to_digest(self) -> can_sync_pb2.AssetDigest:
        return can_sync_pb2.AssetDigest(
            hash=self.hash,
            timestamp=self.timestamp,
            trashed=self.trashed,
            meta_updated_ms=self.meta_updated_ms,
            size=self.size,
            changed_seq=self.changed_seq,
        )


@dataclass(frozen=True)
class NewAssetFields:
    """What a client says about an asset it hands in (ingest form fields or a pushed AssetMeta)."""

    mime_type: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    human_file_name: str = ""
    human_readable_path: str = ""
    application: str = ""
    user: str = ""
    extension: str = ""
    # Only a push from a peer sets these: the origin's ingest time and metadata clock, kept verbatim.
    timestamp: int | None = None
    trashed: bool = False
    meta_updated_ms: int = 0
    meta_origin: str = ""


@dataclass(frozen=True)
class MetaChange:
    """A full-state metadata change with its last-writer-wins clock (updated_ms, origin)."""

    tags: tuple[str, ...]
    description: str
    trashed: bool
    updated_ms: int
    origin: str

    def clock(self) -> tuple[int, str]:
        return (self.updated_ms, self.origin)
