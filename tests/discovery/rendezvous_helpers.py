"""Shared pieces for the rendezvous tests: running instances, collecting what they discover, waiting."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cansync.discovery.rendezvous import Rendezvous

FAST = {"publish_interval": 1.0, "scan_interval": 0.3}


def new_passphrase() -> str:
    return f"test-{uuid.uuid4()}"  # the relay lives for the whole session: keep tests apart


def new_id() -> str:
    return os.urandom(32).hex()


@dataclass
class Peer:
    rendezvous: Rendezvous
    found: dict[str, set[int]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.rendezvous.endpoint_id


def make_peer(passphrase: str, relays: Sequence[str], endpoint_id: str | None = None, **options: object) -> Peer:
    found: dict[str, set[int]] = {}

    def on_peer(peer_id: str, slot: int) -> None:
        found.setdefault(peer_id, set()).add(slot)

    settings = {**FAST, **options}
    rendezvous = Rendezvous(passphrase, endpoint_id or new_id(), relays, on_peer, **settings)  # type: ignore[arg-type]
    return Peer(rendezvous, found)


def start(peers: Sequence[Peer]) -> None:
    for peer in peers:
        peer.task = asyncio.create_task(peer.rendezvous.run())


async def stop(peers: Sequence[Peer]) -> None:
    tasks = [p.task for p in peers if p.task is not None]
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        assert isinstance(result, asyncio.CancelledError), f"a rendezvous task ended with {result!r}"


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
