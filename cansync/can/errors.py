"""Errors of the CAN sync API client; each names the store, the route and what the store said."""

from __future__ import annotations


class CanServiceError(Exception):
    """The store answered with an error (or an answer the client cannot read)."""

    def __init__(self, base_url: str, route: str, message: str, status: int | None = None) -> None:
        self.base_url = base_url
        self.route = route
        self.status = status
        self.message = message
        answered = f"answered HTTP {status}: " if status is not None else ""
        super().__init__(f"CAN store {base_url}, {route}: {answered}{message}")


class CanServiceUnavailable(CanServiceError):
    """The store could not be reached, even after retrying for a while."""


class CanServiceAuthError(CanServiceError):
    """The store refused our sync key (HTTP 401/403). Permanent: only a person can fix the key, so
    callers stop or back off instead of retrying."""

    def __init__(self, base_url: str, route: str, message: str, status: int | None = None) -> None:
        super().__init__(
            base_url,
            route,
            f"{message}: set sync_api_key (CANSYNC_SYNC_API_KEY or --sync-api-key) to the store's sync_api_key "
            "from its config.yaml",
            status,
        )
