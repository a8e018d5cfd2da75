"""`_iroh` address records: a pkarr packet signed by an endpoint's own key listing where to dial it.

Used to dial a peer by its endpoint key when relays are off: `relay=<url>` (at most one), then one
`addr=<ip:port>` per direct address. Other keys (iroh also writes `user-data=`) are skipped on reading.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cansync.discovery.pkarr_packet import Keypair, PkarrError, SignedPacket, TxtRecord

IROH_RECORD_NAME = "_iroh"
IROH_RECORD_TTL = 30


class IrohRecordError(PkarrError):
    """An `_iroh` TXT value that is not `key=value`."""


@dataclass(frozen=True)
class IrohAddressInfo:
    endpoint_id: str  # lowercase hex of the endpoint's public key
    relay_url: str | None
    addrs: tuple[str, ...]


def build_iroh_address_record(
    endpoint_secret_seed: bytes,
    addrs: list[str],
    relay_url: str | None,
    *,
    timestamp: int | None = None,
    ttl: int = IROH_RECORD_TTL,
) -> SignedPacket:
    """An `_iroh` packet signed by the endpoint's own key: `relay=<url>` then one `addr=<ip:port>` per address."""
    keypair = Keypair.from_seed(endpoint_secret_seed)
    values = ([f"relay={relay_url}"] if relay_url else []) + [f"addr={addr}" for addr in addrs]
    records = [TxtRecord(IROH_RECORD_NAME, value, ttl) for value in values]
    stamp = timestamp if timestamp is not None else time.time_ns() // 1000
    return SignedPacket.build(keypair, records, stamp)


def parse_iroh_address_record(packet: SignedPacket) -> IrohAddressInfo:
    """Read the `_iroh` TXT records of a verified packet; keys other than relay/addr are skipped."""
    relay: str | None = None
    addrs: list[str] = []
    for record in packet.txt(IROH_RECORD_NAME):
        key, sep, value = record.value.partition("=")
        if not sep:
            raise IrohRecordError(f"_iroh record of pk:{packet.z32} is not key=value: {record.value[:80]!r}")
        if key == "relay" and relay is None:
            relay = value
        elif key == "addr":
            addrs.append(value)
    return IrohAddressInfo(packet.public_key.hex(), relay, tuple(addrs))
