"""The agent's HTTP client of a CAN Service's sync API."""

from cansync.can.client import CanClient
from cansync.can.errors import CanServiceAuthError, CanServiceError, CanServiceUnavailable
from cansync.can.events import META_CHANGED, NEW_ASSET, StoreEvent
from cansync.can.pull import PulledAsset

__all__ = [
    "CanClient",
    "CanServiceAuthError",
    "CanServiceError",
    "CanServiceUnavailable",
    "META_CHANGED",
    "NEW_ASSET",
    "PulledAsset",
    "StoreEvent",
]
