"""What the machine asks the shells to do. Plain data; the ledger hands every one to the agent, which turns
it into I/O and journals what comes of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cansync.core.metadata import MetaValue


@dataclass(frozen=True, slots=True)
class RequestAsset:
    """A request to `peer` for `hash` is journaled (seq `request_id`): send the Want. `offset` is what
    our staging already holds."""

    peer: str
    hash: str
    offset: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SendAsset:
    """`peer` asked for `hash` from byte `offset` under its `request_id`: stream it."""

    peer: str
    hash: str
    offset: int = 0
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Advertise:
    """Tell `peer` we now hold these assets (it lacks them as far as we know)."""

    peer: str
    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoreAsset:
    """`hash` arrived from `peer` complete and verified, and waits in staging: push it into our store
    with the sender's record `meta`, then journal the received-from-peer mark."""

    peer: str
    hash: str
    meta: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ApplyMetadata:
    """A winning change for an asset our store holds: write it into our store."""

    hash: str
    value: MetaValue


@dataclass(frozen=True, slots=True)
class ForwardMetadata:
    """A winning change that `peer` has not seen from us: send it on."""

    peer: str
    hash: str
    value: MetaValue


@dataclass(frozen=True, slots=True)
class RecordSuperseded:
    """A metadata change arrived after a later one and lost: journal the loss, so it is never silently dropped."""

    hash: str
    loser: MetaValue
    winner: MetaValue


Command = RequestAsset | SendAsset | Advertise | StoreAsset | ApplyMetadata | ForwardMetadata | RecordSuperseded
