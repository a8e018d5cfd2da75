"""The fuzzed store and what it is known to hold: every request goes through here, and every answer
is checked against the state before it (a refusal changed nothing; an acceptance is accounted for)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cansync.wire.pb import can_sync_pb2

from .hostile_values import sha256_hex
from .store_oracle import DiskState, assert_error_envelope, check_disk_matches_digests, clock_unmoved, digest_set

SYNC_KEY = "k"


class StoreLedger:
    def __init__(self, url: str, root: Path, client: httpx.Client) -> None:
        self.url = url
        self.api = f"{url}/api/v1/can/0"
        self.root = root
        self.client = client
        self.requests_sent = 0
        self.accepted_writes = 0
        self.refresh()

    def refresh(self) -> None:
        """Take the store's current state as the expected one (after an accounted acceptance)."""
        self.digests, self.watermark = digest_set(self.client, self.url, SYNC_KEY)
        self.disk = DiskState.of(self.root)

    @property
    def held(self) -> set[str]:
        return set(self.digests)

    def send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """One request; a dropped connection or a bad HTTP answer fails the test naming the input."""
        self.requests_sent += 1
        try:
            return self.client.request(method, f"{self.url}{path}", **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            pytest.fail(f"{method} {path}: connection dropped or broken answer ({type(exc).__name__}: {exc})")

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: object) -> Iterator[httpx.Response]:
        self.requests_sent += 1
        try:
            with self.client.stream(method, f"{self.url}{path}", **kwargs) as response:  # type: ignore[arg-type]
                yield response
        except httpx.TransportError as exc:
            pytest.fail(f"{method} {path}: connection dropped or broken answer ({type(exc).__name__}: {exc})")

    def assert_unchanged(self, what: str) -> None:
        assert DiskState.of(self.root) == self.disk, f"{what}: files under the store root changed"
        assert clock_unmoved(self.client, self.url, SYNC_KEY, self.watermark), f"{what}: the store index changed"

    def assert_refused(self, response: httpx.Response, what: str) -> None:
        assert_error_envelope(response, what)
        self.assert_unchanged(what)

    def account_write(self, what: str, asset_hash: str) -> None:
        """A legitimate acceptance touching asset_hash: only that asset's file may have changed, and
        it must hash to its name and sit in the root or .trash."""
        self.account_writes(what, {asset_hash})

    def account_writes(self, what: str, asset_hashes: set[str]) -> None:
        """The same for an acceptance touching several assets (a batch push)."""
        before = self.disk
        self.refresh()
        self.accepted_writes += 1
        changed = before.files ^ self.disk.files
        named = {f: [h for h in asset_hashes if h in Path(f).name] for f in changed}
        assert all(named.values()), f"{what}: other files changed: {changed}"
        assert self.disk.siblings == before.siblings, f"{what}: something appeared beside the store root"
        for rel in self.disk.files & changed:
            assert str(Path(rel).parent) in (".", ".trash"), f"{what}: file written outside the root: {rel}"
            content_hash = sha256_hex((self.root / rel).read_bytes())
            assert content_hash in named[rel], f"{what}: {rel} has other content"

    def check_whole_store(self) -> None:
        self.refresh()
        check_disk_matches_digests(self.root, self.digests)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-Sync-Key": SYNC_KEY, "Content-Type": "application/x-protobuf", **extra}

    def record_of(self, asset_hash: str) -> can_sync_pb2.AssetDigest:
        return self.digests[asset_hash]
