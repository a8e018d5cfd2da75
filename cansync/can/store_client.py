"""What the agent needs of a CAN store: the sync API, as calls. `CanClient` speaks it over HTTP; the
simulation's in-memory store speaks it directly. tests/can/test_store_contract.py holds both to it."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from cansync.can.events import StoreEvent
from cansync.can.pull import PulledAsset
from cansync.wire.pb import can_sync_pb2


class StoreClient(Protocol):
    base_url: str  # names the store in messages

    async def hashes(self, since: int = 0) -> can_sync_pb2.HashesResponse: ...

    def hashes_pages(self, since: int = 0, page_size: int = ...) -> AsyncIterator[can_sync_pb2.HashesResponse]: ...

    def pull(
        self, hashes: Sequence[str], offset: int = 0
    ) -> AbstractAsyncContextManager[AsyncIterator[PulledAsset]]: ...

    async def metadata(self, hashes: Sequence[str]) -> list[can_sync_pb2.AssetMeta]: ...

    async def push(
        self, meta: can_sync_pb2.AssetMeta, content: AsyncIterable[bytes] | Path
    ) -> can_sync_pb2.PushResult: ...

    async def push_batch(
        self, items: Sequence[tuple[can_sync_pb2.AssetMeta, bytes | Path]]
    ) -> list[can_sync_pb2.PushBatchItemResult]: ...

    async def update_meta(self, update: can_sync_pb2.MetaUpdate) -> can_sync_pb2.MetaResult: ...

    def events(self, since: int = 0) -> AsyncIterator[StoreEvent]: ...

    async def aclose(self) -> None: ...
