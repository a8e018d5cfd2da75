"""The peer protocol's messages as the core sees them: typed, and already checked at the wire boundary.

`cansync.wire.peer_messages` turns frames into these (refusing anything malformed) and these into frames;
the session's rules (`core.protocol`) speak only in these, never in protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cansync.core.metadata import MetaValue
from cansync.core.reconcile import ReconcileMessage


@dataclass(frozen=True, slots=True)
class Digest:
    """One asset as a store's digest list describes it."""

    hash: str
    timestamp: int = 0
    trashed: bool = False
    meta_updated_ms: int = 0
    size: int = 0
    changed_seq: int = 0


@dataclass(frozen=True, slots=True)
class DigestRequest:
    since: int  # the asker's watermark for our store
    reconcile: bool = False  # the asker knows nothing of us: settle the two sets by reconciliation


@dataclass(frozen=True, slots=True)
class Reconcile:
    watermark: int  # the sender's store clock its set was taken at
    exchange: ReconcileMessage


@dataclass(frozen=True, slots=True)
class DigestBatch:
    digests: tuple[Digest, ...]
    watermark: int  # set on the last batch of an answer only
    full: bool
    last: bool


@dataclass(frozen=True, slots=True)
class WantItem:
    hash: str
    offset: int
    request_id: int


@dataclass(frozen=True, slots=True)
class Want:
    items: tuple[WantItem, ...]


@dataclass(frozen=True, slots=True)
class Advertise:
    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MetaChange:
    hash: str
    value: MetaValue


@dataclass(frozen=True, slots=True)
class PeerInfo:
    endpoint_id: str
    addrs: tuple[str, ...] = ()
    relay_url: str = ""


@dataclass(frozen=True, slots=True)
class PeerList:
    peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class AssetUnavailable:
    hash: str
    reason: str
    request_id: int = 0
    transient: bool = False  # the sender's own trouble (its store, its stream), not a wrong advert


@dataclass(frozen=True, slots=True)
class Goodbye:
    reason: str


@dataclass(frozen=True, slots=True)
class KeepAlive:
    pass


@dataclass(frozen=True, slots=True)
class AssetHeader:
    """First frame of a transfer stream. `record` is the sender's store record of the asset (the fields
    of a store AssetMeta, hash and size among them), passed on to our store with the content."""

    hash: str
    size: int
    offset: int
    request_id: int
    record: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AssetEnd:
    hash: str
    total: int


ControlMessage = (
    DigestRequest
    | Reconcile
    | DigestBatch
    | Want
    | Advertise
    | MetaChange
    | PeerList
    | AssetUnavailable
    | Goodbye
    | KeepAlive
)
