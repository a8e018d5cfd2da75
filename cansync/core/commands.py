"""What the machine asks the shells to do. Plain data; the agent turns each into I/O and journals the result."""

from __future__ import annotations

from dataclasses import dataclass

from cansync.core.metadata import MetaValue


@dataclass(frozen=True, slots=True)
class RequestAsset:
    """Ask `peer` for `hash`, starting at byte `offset` (what our staging already holds)."""

    peer: str
    hash: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class SendAsset:
    """`peer` asked for `hash` from byte `offset`: stream it."""

    peer: str
    hash: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Advertise:
    """Tell `peer` we now hold these assets (it lacks them as far as we know)."""

    peer: str
    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ApplyMetadata:
    """A change from a peer won: write it into our store."""

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
    """A metadata change lost to a later one: journal the loss so it is never silently dropped."""

    hash: str
    loser: MetaValue
    winner: MetaValue


Command = RequestAsset | SendAsset | Advertise | ApplyMetadata | ForwardMetadata | RecordSuperseded
