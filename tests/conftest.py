"""Session-wide fixtures shared by every test directory."""

from tests.helpers.npm_relay import npm_relay

__all__ = ["npm_relay"]
