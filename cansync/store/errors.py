"""What can go wrong in the store, each with the HTTP status the API answers."""

from __future__ import annotations


class StoreError(Exception):
    status = 500


class BadRequest(StoreError):
    status = 400


class PayloadTooLarge(StoreError):
    """A request over one of the API's bounds (refused whole, nothing kept)."""

    status = 413


class AssetNotFound(StoreError):
    status = 404

    def __init__(self, asset_hash: str) -> None:
        super().__init__(f"asset {asset_hash} not found")
        self.hash = asset_hash


class HashMismatch(BadRequest):
    def __init__(self, claimed: str, actual: str) -> None:
        super().__init__(f"content hashes to {actual}, not to the claimed {claimed}; nothing was stored")


class SizeMismatch(BadRequest):
    def __init__(self, claimed: int, actual: int) -> None:
        super().__init__(f"content is {actual} bytes, not the claimed {claimed}; nothing was stored")
