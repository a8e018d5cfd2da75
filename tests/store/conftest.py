"""Fixtures: a real store process on 127.0.0.1 per test, and a sync-API HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.store_process import TEST_SYNC_KEY, StoreProcess, start_store_process

SYNC_KEY = TEST_SYNC_KEY


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreProcess]:
    process = start_store_process(tmp_path / "store", sync_key=SYNC_KEY)
    yield process
    assert process.stop() == 0, f"store did not stop cleanly:\n{process.log_text()[-2000:]}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        yield client


@pytest.fixture
def sync_headers() -> dict[str, str]:
    return {"X-Sync-Key": SYNC_KEY, "Content-Type": "application/x-protobuf"}
