"""LAN discovery: agents of one passphrase find each other by IPv4 multicast beacons, with no relay.

Every `interval` seconds each agent sends one beacon to a multicast group on every multicast-capable IPv4
interface (TTL 1: no router forwards it off the LAN) and listens on that group. A beacon says "endpoint
<id> of room <tag> listens on <addresses>"; receivers of the same room report the sender to `on_peer`.

Beacon version 1 (integers big-endian):
    magic b"CSLB" | version u8 = 1 | room tag, 16 bytes | endpoint id, 32 bytes | address count u8 (<= 16)
    | per address: family u8 (4 or 6), IP (4 or 16 bytes), port u16 (not 0)
    | HMAC-SHA256 over every byte before it, 32 bytes
at most 512 bytes in all.

The room tag and the MAC key are BLAKE3 keys derived from the passphrase under two different contexts: the
tag lets agents of other passphrases drop a beacon cheaply, the MAC means no one without the passphrase can
write a beacon that is accepted. Like the rendezvous slot keys, the tag lets someone confirm a guessed
passphrase offline, so passphrases must be strong either way. A beacon proves nothing about who sent it: a
replayed beacon only repeats what the peer announced (or, for an unspecified address, points at the replayer,
whose dial then fails iroh's TLS check of the endpoint id). The passphrase handshake after dialing is the proof.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import ipaddress
import logging
import re
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import blake3
import psutil

from cansync.discovery.pkarr_packet import parse_endpoint_id_hex

log = logging.getLogger(__name__)

DEFAULT_GROUP = "239.255.67.83"  # organisation-local scope (RFC 2365): never meant to cross a LAN's border
DEFAULT_PORT = 41683
DEFAULT_INTERVAL = 5.0

MAGIC = b"CSLB"
VERSION = 1
ROOM_TAG_SIZE = 16
ENDPOINT_ID_SIZE = 32
MAC_SIZE = 32
MAX_ADDRS = 16
MAX_BEACON_SIZE = 512
ROOM_CONTEXT = "cansync 2026-11 lan room v1"
MAC_CONTEXT = "cansync 2026-11 lan beacon mac v1"

_HEADER = struct.Struct("!4sB16s32sB")  # magic, version, room tag, endpoint id, address count
_PORT = struct.Struct("!H")
_FAMILY_SIZES = {4: 4, 6: 16}
_PORT_TEXT = re.compile(r"[0-9]{1,5}")

PeerCallback = Callable[[str, list[str]], Awaitable[None] | None]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the beacon ---------------------------------------------------------------------------------------------


class DropReason(StrEnum):
    OVERSIZED = "oversized"  # more than MAX_BEACON_SIZE bytes
    FOREIGN = "foreign"  # not a cansync beacon at all (wrong magic)
    UNKNOWN_VERSION = "unknown_version"  # a cansync beacon of a version this agent does not read
    MALFORMED = "malformed"  # truncated, bad layout, bad address
    WRONG_ROOM = "wrong_room"  # an agent of another passphrase
    BAD_MAC = "bad_mac"  # right room, but not written with the passphrase: forged or corrupted
    OWN = "own"  # our own beacon, looped back to us


class BeaconError(ValueError):
    """A datagram that is not a beacon this agent accepts; `reason` says why."""

    def __init__(self, reason: DropReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LanKeys:
    """What a beacon needs from the passphrase (the passphrase itself is not kept)."""

    room: bytes
    mac_key: bytes = field(repr=False)

    @classmethod
    def from_passphrase(cls, passphrase: str) -> LanKeys:
        secret = passphrase.encode()
        room = blake3.blake3(secret, derive_key_context=ROOM_CONTEXT).digest()[:ROOM_TAG_SIZE]
        mac_key = blake3.blake3(secret, derive_key_context=MAC_CONTEXT).digest()
        return cls(room, mac_key)


@dataclass(frozen=True)
class Beacon:
    endpoint_id: str  # lowercase hex
    addrs: tuple[str, ...]  # "ip:port" / "[ipv6]:port", exactly as announced (may be unspecified)


def parse_socket_addr(text: str) -> tuple[IPAddress, int]:
    """`a.b.c.d:port` or `[ipv6]:port` (no zone index), port 1..65535; ValueError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not _PORT_TEXT.fullmatch(port_text):
        raise ValueError(f"not an ip:port socket address: {text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range 1..65535 in {text!r}")
    ip: IPAddress
    if host.startswith("[") and host.endswith("]"):
        ip = ipaddress.IPv6Address(host[1:-1])
        if ip.scope_id is not None:
            raise ValueError(f"an address with a zone index means nothing to another host: {text!r}")
    else:
        ip = ipaddress.IPv4Address(host)
    return ip, port


def format_socket_addr(ip: IPAddress, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def encode_beacon(keys: LanKeys, endpoint_id_hex: str, addrs: list[str]) -> bytes:
    """The beacon announcing `endpoint_id_hex` at `addrs`; ValueError for a bad id or address, or too many."""
    endpoint_id = parse_endpoint_id_hex(endpoint_id_hex)
    if endpoint_id is None:
        raise ValueError(f"endpoint id must be 64 hex characters, got {endpoint_id_hex!r}")
    if len(addrs) > MAX_ADDRS:
        raise ValueError(f"a beacon holds at most {MAX_ADDRS} addresses, got {len(addrs)}")
    body = bytearray(_HEADER.pack(MAGIC, VERSION, keys.room, bytes.fromhex(endpoint_id), len(addrs)))
    for text in addrs:
        ip, port = parse_socket_addr(text)
        body += bytes([ip.version]) + ip.packed + _PORT.pack(port)
    return bytes(body) + hmac.digest(keys.mac_key, bytes(body), "sha256")


def decode_beacon(keys: LanKeys, data: bytes) -> Beacon:
    """Check and read one datagram; raises BeaconError (never anything else) when it is not acceptable."""
    if len(data) > MAX_BEACON_SIZE:
        raise BeaconError(DropReason.OVERSIZED, f"{len(data)} bytes, more than the {MAX_BEACON_SIZE} allowed")
    if not data.startswith(MAGIC):
        raise BeaconError(DropReason.FOREIGN, "does not start with the cansync beacon magic")
    if len(data) > len(MAGIC) and data[len(MAGIC)] != VERSION:
        raise BeaconError(DropReason.UNKNOWN_VERSION, f"beacon version {data[len(MAGIC)]}, this agent reads {VERSION}")
    if len(data) < _HEADER.size + MAC_SIZE:
        raise BeaconError(DropReason.MALFORMED, f"truncated: {len(data)} bytes")
    _magic, _version, room, endpoint_id, count = _HEADER.unpack_from(data)
    if room != keys.room:
        raise BeaconError(DropReason.WRONG_ROOM, "room tag of another passphrase")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(mac, hmac.digest(keys.mac_key, body, "sha256")):
        raise BeaconError(DropReason.BAD_MAC, "MAC does not match: forged or corrupted")
    return Beacon(endpoint_id.hex(), _read_addrs(body, _HEADER.size, count))


def _read_addrs(body: bytes, offset: int, count: int) -> tuple[str, ...]:
    if count > MAX_ADDRS:
        raise BeaconError(DropReason.MALFORMED, f"{count} addresses, more than the {MAX_ADDRS} allowed")
    addrs = []
    for _ in range(count):
        if offset >= len(body):
            raise BeaconError(DropReason.MALFORMED, "address list ends early")
        family = body[offset]
        size = _FAMILY_SIZES.get(family)
        if size is None:
            raise BeaconError(DropReason.MALFORMED, f"unknown address family {family}")
        end = offset + 1 + size + _PORT.size
        if end > len(body):
            raise BeaconError(DropReason.MALFORMED, "address list ends early")
        raw_ip = body[offset + 1 : offset + 1 + size]
        ip: IPAddress = ipaddress.IPv4Address(raw_ip) if family == 4 else ipaddress.IPv6Address(raw_ip)
        (port,) = _PORT.unpack_from(body, offset + 1 + size)
        if port == 0:
            raise BeaconError(DropReason.MALFORMED, "port 0")
        addrs.append(format_socket_addr(ip, port))
        offset = end
    if offset != len(body):
        raise BeaconError(DropReason.MALFORMED, f"{len(body) - offset} bytes after the address list")
    return tuple(addrs)


def dialable_addrs(announced: tuple[str, ...], source_ip: str) -> list[str]:
    """Announced addresses with 0.0.0.0 replaced by the beacon's source IP.

    An unspecified IPv6 address is left out: an IPv4 beacon does not say the sender's IPv6 address.
    """
    result: list[str] = []
    for text in announced:
        ip, port = parse_socket_addr(text)
        if ip.is_unspecified:
            if ip.version == 6:
                continue
            text = f"{source_ip}:{port}"
        if text not in result:
            result.append(text)
    return result


# --- which interfaces -----------------------------------------------------------------------------------------

_IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux; absent from older socket modules


def multicast_interfaces() -> list[str]:
    """The first IPv4 address of every interface that is up and multicast-capable, in the system's order.

    psutil lists interfaces the same way on Linux, macOS and Windows. Windows reports no interface flags:
    there every interface that is up is tried (a join that fails is logged and retried, never fatal).
    """
    stats = psutil.net_if_stats()
    found: list[str] = []
    for name, addresses in psutil.net_if_addrs().items():
        stat = stats.get(name)
        if stat is None or not stat.isup:
            continue
        flags = set(stat.flags.split(",")) if getattr(stat, "flags", "") else None
        if flags is not None and "multicast" not in flags:
            continue
        ipv4 = [address.address for address in addresses if address.family == socket.AF_INET]
        if ipv4:
            found.append(ipv4[0])
    return found


# --- the discovery loop --------------------------------------------------------------------------------------


class LanDiscovery:
    """Sends our beacon every `interval` seconds and reports every peer of our passphrase heard on the LAN."""

    def __init__(
        self,
        passphrase: str,
        endpoint_id_hex: str,
        addrs: Callable[[], list[str]],
        on_peer: PeerCallback,
        *,
        group: str = DEFAULT_GROUP,
        port: int = DEFAULT_PORT,
        interval: float = DEFAULT_INTERVAL,
        interfaces: list[str] | None = None,
    ) -> None:
        our_id = parse_endpoint_id_hex(endpoint_id_hex)
        if our_id is None:
            raise ValueError(f"endpoint id must be 64 hex characters, got {endpoint_id_hex!r}")
        if not ipaddress.IPv4Address(group).is_multicast:
            raise ValueError(f"LAN discovery group must be an IPv4 multicast address (224.0.0.0/4), got {group!r}")
        if not 1 <= port <= 65535:
            raise ValueError(f"LAN discovery port must be 1..65535, got {port}")
        if interval <= 0:
            raise ValueError(f"LAN discovery interval must be positive, got {interval}")
        for interface in interfaces or []:
            ipaddress.IPv4Address(interface)  # raises ValueError naming the bad value
        self.endpoint_id = our_id
        self.group = group
        self.port = port
        self.dropped: dict[str, int] = {}
        self.accepted = 0
        self._keys = LanKeys.from_passphrase(passphrase)
        self._addrs = addrs
        self._on_peer = on_peer
        self._interval = interval
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._joined: set[str] = set()
        self._logged_once: set[tuple[object, ...]] = set()

    # -- the loop ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Beacon and listen until cancelled. Socket trouble is logged and the sockets reopened, never raised."""
        while True:
            try:
                await self._serve()
            except OSError as exc:
                log.warning(
                    "lan discovery: multicast socket for %s:%d failed (%s); reopening in %.0f s",
                    self.group,
                    self.port,
                    exc,
                    self._interval,
                )
            await asyncio.sleep(self._interval)

    async def _serve(self) -> None:
        with self._open_receiver() as receiver, self._open_sender() as sender:
            self._joined.clear()
            listening = asyncio.create_task(self._receive_loop(receiver))
            try:
                while not listening.done():
                    self._sync_memberships(receiver)
                    self._send_beacon(sender)
                    await asyncio.wait({listening}, timeout=self._interval)
                listening.result()  # the receive loop only ends by raising: pass its OSError on
            finally:
                if not listening.done():
                    listening.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await listening

    def _open_receiver(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if hasattr(socket, "SO_REUSEPORT"):  # several agents on one host all listen on the group
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if sys.platform.startswith("linux"):  # only the groups we joined, not every group of the host
                sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)
            try:
                sock.bind((self.group, self.port))  # bound to the group: unicast to this port is not ours
            except OSError:
                sock.bind(("", self.port))  # systems that cannot bind a multicast address
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_sender(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)  # never routed off the LAN
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # agents on this host hear it too
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _current_interfaces(self) -> list[str]:
        if self._interfaces is not None:
            return self._interfaces
        found = multicast_interfaces()
        if not found:
            self._log_once(
                ("no-interface",),
                logging.WARNING,
                "lan discovery: no interface is up with an IPv4 address and multicast; idle until one is",
            )
        return found

    # -- sending ----------------------------------------------------------------------------------------

    def _sync_memberships(self, receiver: socket.socket) -> None:
        """Join the group on interfaces that appeared, leave it on those that went (interfaces come and go)."""
        wanted = set(self._current_interfaces())
        for interface in sorted(wanted - self._joined):
            try:
                receiver.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, self._membership(interface))
            except OSError as exc:
                self._log_once(
                    ("join", interface, exc.errno),
                    logging.WARNING,
                    "lan discovery: cannot join %s on interface %s (%s); trying again next round",
                    self.group,
                    interface,
                    exc,
                )
                continue
            self._joined.add(interface)
            log.debug("lan discovery: listening for %s:%d on interface %s", self.group, self.port, interface)
        for interface in sorted(self._joined - wanted):
            self._joined.discard(interface)
            with contextlib.suppress(OSError):  # the interface may already be gone, and the membership with it
                receiver.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, self._membership(interface))

    def _membership(self, interface: str) -> bytes:
        return socket.inet_aton(self.group) + socket.inet_aton(interface)

    def _send_beacon(self, sender: socket.socket) -> None:
        beacon = self._our_beacon()
        if beacon is None:
            return
        for interface in self._current_interfaces():
            try:
                sender.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
                sender.sendto(beacon, (self.group, self.port))
            except OSError as exc:
                self._log_once(
                    ("send", interface, exc.errno),
                    logging.WARNING,
                    "lan discovery: cannot send to %s:%d on interface %s (%s); trying again next round",
                    self.group,
                    self.port,
                    interface,
                    exc,
                )

    def _our_beacon(self) -> bytes | None:
        try:
            announced = list(self._addrs())
        except Exception:  # the caller's code: log and try again next round
            log.exception("lan discovery: the addrs callback failed; no beacon this round")
            return None
        usable = []
        for text in announced:
            try:
                parse_socket_addr(text)
            except ValueError as exc:
                self._log_once(("addr", text), logging.INFO, "lan discovery: not announcing %s", exc)
                continue
            usable.append(text)
        if len(usable) > MAX_ADDRS:
            self._log_once(("too-many",), logging.INFO, "lan discovery: announcing the first %d addresses", MAX_ADDRS)
            usable = usable[:MAX_ADDRS]
        return encode_beacon(self._keys, self.endpoint_id, usable)

    # -- receiving --------------------------------------------------------------------------------------

    async def _receive_loop(self, receiver: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # one byte more than allowed, so an oversized datagram shows as such instead of being cut silently
            data, (source_ip, _source_port) = await loop.sock_recvfrom(receiver, MAX_BEACON_SIZE + 1)
            await self._handle_datagram(data, source_ip)

    async def _handle_datagram(self, data: bytes, source_ip: str) -> None:
        """Check one received datagram and report its sender if it is a peer of ours."""
        try:
            beacon = decode_beacon(self._keys, data)
        except BeaconError as exc:
            self._drop(exc.reason, source_ip, str(exc))
            return
        if beacon.endpoint_id == self.endpoint_id:
            self._drop(DropReason.OWN, source_ip, "our own beacon")
            return
        self.accepted += 1
        await self._report_peer(beacon.endpoint_id, dialable_addrs(beacon.addrs, source_ip))

    def _drop(self, reason: DropReason, source_ip: str, detail: str) -> None:
        self.dropped[reason.value] = self.dropped.get(reason.value, 0) + 1
        if reason is DropReason.OWN or ("drop", reason) in self._logged_once:
            log.debug("lan discovery: dropped a datagram from %s (%s: %s)", source_ip, reason.value, detail)
            return
        self._log_once(
            ("drop", reason),
            logging.INFO,
            "lan discovery: dropped a datagram from %s (%s: %s); more of this kind are logged at debug level",
            source_ip,
            reason.value,
            detail,
        )

    async def _report_peer(self, endpoint_id: str, addrs: list[str]) -> None:
        try:
            result = self._on_peer(endpoint_id, addrs)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the callback is the caller's code: its failure must not stop discovery
            log.exception("lan discovery: on_peer callback failed for peer %s", endpoint_id)

    def _log_once(self, key: tuple[object, ...], level: int, message: str, *args: object) -> None:
        if key not in self._logged_once:
            self._logged_once.add(key)
            log.log(level, message, *args)
