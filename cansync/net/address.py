"""A peer's address in our own terms: endpoint id (hex), direct "ip:port" addresses, relay URL."""

from __future__ import annotations

from dataclasses import dataclass

import iroh

from cansync.wire.addresses import parse_socket_addr


def check_endpoint_id(hex_id: str) -> str:
    if len(hex_id) != 64:
        raise ValueError(f"endpoint id must be 64 hex characters, got {len(hex_id)}: {hex_id!r}")
    try:
        bytes.fromhex(hex_id)
    except ValueError:
        raise ValueError(f"endpoint id is not hex: {hex_id!r}") from None
    return hex_id.lower()


@dataclass(frozen=True)
class EndpointAddress:
    endpoint_id: str  # 64 lower-case hex characters (the Ed25519 public key)
    direct_addrs: tuple[str, ...] = ()
    relay_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint_id", check_endpoint_id(self.endpoint_id))
        object.__setattr__(self, "direct_addrs", tuple(self.direct_addrs))
        for addr in self.direct_addrs:
            parse_socket_addr(addr)

    @property
    def short_id(self) -> str:
        return self.endpoint_id[:10]

    def to_iroh(self) -> iroh.EndpointAddr:
        return iroh.EndpointAddr(iroh.EndpointId.from_string(self.endpoint_id), self.relay_url, list(self.direct_addrs))

    @classmethod
    def from_iroh(cls, addr: iroh.EndpointAddr) -> EndpointAddress:
        return cls(str(addr.id()), tuple(sorted(addr.direct_addresses())), addr.relay_url())
