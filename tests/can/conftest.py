"""Fixtures: a real store process per test and a CanClient pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cansync.can import CanClient
from tests.helpers.store_process import TEST_SYNC_KEY, StoreProcess, start_store_process

SYNC_KEY = TEST_SYNC_KEY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreProcess]:
    process = start_store_process(tmp_path / "store", sync_key=SYNC_KEY)
    yield process
    process.stop()


@pytest.fixture
async def client(store: StoreProcess) -> AsyncIterator[CanClient]:
    async with CanClient(store.url, SYNC_KEY, timeout=30.0, retry_for=10.0) as can:
        yield can
