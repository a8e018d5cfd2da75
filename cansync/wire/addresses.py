"""Socket addresses as peers write them: "1.2.3.4:5" or "[::1]:5". Pure: checked, never resolved."""

from __future__ import annotations

import ipaddress

MAX_ADDRESS_CHARS = 64  # "[" + the longest IPv6 text + "]:65535" fits well within this


def parse_socket_addr(text: str) -> tuple[str, int]:
    """Split "1.2.3.4:5" or "[::1]:5" into host and port; ValueError with the text when it is not one.

    Only plain numeric addresses: ASCII digits in the port, no IPv6 zone id (which Python would take
    with any text after "%"), nothing longer than MAX_ADDRESS_CHARS."""
    if len(text) > MAX_ADDRESS_CHARS or not text.isascii():
        raise ValueError(f"{text[:80]!r} is not an ip:port address")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdecimal() or not 0 < int(port) <= 65535:
        raise ValueError(f"{text!r} is not an ip:port address")
    if "%" in host:
        raise ValueError(f"{text!r}: addresses with a zone id are not accepted")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ipaddress.ip_address(host).version != 6:
            raise ValueError(f"{text!r}: only IPv6 addresses go in brackets")
    elif ipaddress.ip_address(host).version != 4:
        raise ValueError(f"{text!r}: IPv6 addresses must be written [addr]:port")
    return host, int(port)
