"""Meeting peers across the internet with nothing but the passphrase: pkarr rendezvous plus address records.

The rendezvous slots say who shares our passphrase (endpoint ids, as the Rust agent publishes them).
To dial an id we also need where it listens: each cansync agent publishes an `_iroh` record signed by
its own node key on the same pkarr relays, and we resolve a peer's record when its id turns up. When
iroh's relays are on, an id alone is enough for iroh to find the peer, so a missing record is fine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from cansync.discovery.iroh_records import build_iroh_address_record, parse_iroh_address_record
from cansync.discovery.pkarr_packet import PkarrError
from cansync.discovery.pkarr_relay import PkarrRelayClient
from cansync.discovery.rendezvous import Rendezvous
from cansync.net.address import EndpointAddress

log = logging.getLogger(__name__)

RESOLVE_AGAIN_AFTER = 15.0


class InternetDiscovery:
    def __init__(
        self,
        *,
        passphrase: str,
        our_id: str,
        secret_key: bytes,
        pkarr_relays: Sequence[str],
        our_address: Callable[[], EndpointAddress],
        learn: Callable[[EndpointAddress, str], object],
        id_is_enough: bool,
        publish_interval: float = 60.0,
        scan_interval: float = 15.0,
    ) -> None:
        self._our_id = our_id
        self._secret_key = secret_key
        self._our_address = our_address
        self._learn = learn
        self._id_is_enough = id_is_enough
        self._relays = list(pkarr_relays)
        self._publish_interval = publish_interval
        self._client = PkarrRelayClient(self._relays)
        self._resolved_at: dict[str, float] = {}
        self.rendezvous = Rendezvous(
            passphrase,
            our_id,
            self._relays,
            self._found,
            publish_interval=publish_interval,
            scan_interval=scan_interval,
        )

    async def run(self) -> None:
        publisher = asyncio.create_task(self._publish_address(), name="pkarr-address")
        try:
            await self.rendezvous.run()
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            await self._client.aclose()

    async def _publish_address(self) -> None:
        while True:
            address = self._our_address()
            try:
                packet = build_iroh_address_record(self._secret_key, list(address.direct_addrs), address.relay_url)
                await self._client.publish(packet)
            except (PkarrError, OSError) as exc:
                log.warning("could not publish our address record to the pkarr relays: %s", exc)
            await asyncio.sleep(self._publish_interval)

    async def _found(self, endpoint_id: str, slot: int) -> None:
        now = time.monotonic()
        if now - self._resolved_at.get(endpoint_id, -RESOLVE_AGAIN_AFTER) < RESOLVE_AGAIN_AFTER:
            return
        self._resolved_at[endpoint_id] = now
        address = await self._resolve(endpoint_id)
        if address is None and self._id_is_enough:
            address = EndpointAddress(endpoint_id)
        if address is None:
            log.info("rendezvous slot %d names %s, which has published no address record yet", slot, endpoint_id[:10])
            return
        result = self._learn(address, "pkarr")
        if asyncio.iscoroutine(result):
            await result

    async def _resolve(self, endpoint_id: str) -> EndpointAddress | None:
        try:
            resolution = await self._client.resolve(bytes.fromhex(endpoint_id))
        except (PkarrError, OSError, ValueError) as exc:
            log.info("resolving the address record of %s failed: %s", endpoint_id[:10], exc)
            return None
        if resolution.packet is None:
            return None
        try:
            info = parse_iroh_address_record(resolution.packet)
            return EndpointAddress(info.endpoint_id, info.addrs, info.relay_url)
        except (PkarrError, ValueError) as exc:
            log.info("the address record of %s is unusable: %s", endpoint_id[:10], exc)
            return None
