"""Ticket files: this node's address for pairing by hand and for tests.

Written as the Rust agent writes it: `{"id": "<hex>", "addrs": [{"Ip": "127.0.0.1:54321"}, ...]}`,
plus `"relay_url"` when there is one. Read either that JSON or an iroh EndpointTicket string
("endpoint...").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import iroh

from cansync.net.address import EndpointAddress

log = logging.getLogger(__name__)

TICKET_PREFIX = "endpoint"


class TicketError(ValueError):
    """A ticket (file) we cannot read; the message names the file."""


def address_to_json(address: EndpointAddress) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": address.endpoint_id, "addrs": [{"Ip": a} for a in address.direct_addrs]}
    if address.relay_url:
        doc["relay_url"] = address.relay_url
    return doc


def address_from_json(doc: Any, source: str = "ticket") -> EndpointAddress:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise TicketError(f'{source}: expected a JSON object with an "id" string')
    entries = doc.get("addrs", [])
    if not isinstance(entries, list):
        raise TicketError(f'{source}: "addrs" must be a list like [{{"Ip": "127.0.0.1:54321"}}]')
    direct: list[str] = []
    relay = doc.get("relay_url")
    if relay is not None and not isinstance(relay, str):
        raise TicketError(f'{source}: "relay_url" must be a string')
    for entry in entries:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise TicketError(f"{source}: each addrs entry must be one {{kind: value}} pair, got {entry!r}")
        ((kind, value),) = entry.items()
        if not isinstance(value, str):
            raise TicketError(f"{source}: addrs entry {entry!r} must hold a string")
        if kind == "Ip":
            direct.append(value)
        elif kind == "Relay":  # iroh's own serde form of a relay address
            relay = relay or value
        else:
            log.warning("%s: ignoring an address of unknown kind %r", source, kind)
    try:
        return EndpointAddress(doc["id"], tuple(direct), relay or None)
    except ValueError as exc:
        raise TicketError(f"{source}: {exc}") from exc


def address_to_ticket_string(address: EndpointAddress) -> str:
    """iroh's "endpoint..." ticket string for this address."""
    return str(iroh.EndpointTicket.from_addr(address.to_iroh()))


def parse_ticket(text: str, source: str = "ticket") -> EndpointAddress:
    """An address from the JSON form or an iroh ticket string; TicketError naming `source` if neither."""
    text = text.strip()
    if not text:
        raise TicketError(f'{source} is empty: expected JSON {{"id": ..., "addrs": [...]}} or an iroh ticket')
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TicketError(f"{source} is not valid JSON: {exc}") from exc
        return address_from_json(doc, source)
    if text.startswith(TICKET_PREFIX):
        try:
            addr = iroh.EndpointTicket.from_string(text).endpoint_addr()
        except iroh.IrohError as exc:
            raise TicketError(f"{source}: not a valid iroh ticket: {exc.message()}") from exc
        return EndpointAddress.from_iroh(addr)
    raise TicketError(
        f'{source} holds neither a JSON address ({{"id": ..., "addrs": [...]}}) nor an iroh ticket '
        f'("endpoint..."): starts with {text[:20]!r}'
    )


def read_ticket_file(path: str | os.PathLike[str]) -> EndpointAddress:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TicketError(f"ticket file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TicketError(f"cannot read ticket file {path}: {exc}") from exc
    return parse_ticket(text, f"ticket file {path}")


def write_ticket_file(path: str | os.PathLike[str], address: EndpointAddress) -> None:
    """Write the JSON form atomically (readers never see half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(address_to_json(address)) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
