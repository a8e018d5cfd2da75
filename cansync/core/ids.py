"""The shape of the ids the core trusts: an asset id is the store's digest, 64 lower-case hex digits.

Peers send ids, and the journal keeps what they sent; the wire boundary refuses a malformed one and the
fold ignores one that reached the journal before that check existed, so such a journal heals on replay.
"""

from __future__ import annotations

ASSET_ID_LENGTH = 64
ENDPOINT_ID_LENGTH = 64
NOT_HEX = str.maketrans("", "", "0123456789abcdef")
"""A translate table that deletes the lower-case hex digits: whatever is left is not one of them (the
fastest such check in CPython, which matters where a replay checks millions of ids)."""


def is_asset_id(text: object) -> bool:
    """True for a lower-case hex SHA-256 digest (the store's asset id)."""
    return type(text) is str and len(text) == ASSET_ID_LENGTH and not text.translate(NOT_HEX)


def is_endpoint_id(text: object) -> bool:
    """True for a peer's endpoint id as the journal writes it (64 lower-case hex digits)."""
    return type(text) is str and len(text) == ENDPOINT_ID_LENGTH and not text.translate(NOT_HEX)
