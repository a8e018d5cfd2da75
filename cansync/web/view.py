"""What the dashboard, the JSON API and /metrics may ask of a running agent: the AgentView protocol.

The web layer reads and never decides: everything it shows comes from `status()` and `journal_rows()`,
and the one thing it may ask for, pausing a peer, goes through `set_paused()`, which the agent journals
and obeys like `cansync peer pause`.

status() returns one JSON-able dict, built fresh on every call:

    {
      "endpoint_id": str,                  # this agent's endpoint id (hex)
      "started_ms": int,                   # when the agent started (ms since epoch)
      "store": {"url": str, "reachable": bool},
      "journal": {"events": int},          # seq of the newest event
      "peers": [{
          "id": str,                       # endpoint id (hex)
          "link": str,                     # discovered | connected | authenticated | rejected | disconnected
          "found_via": [str],              # ticket | pkarr | lan | exchange | incoming
          "in_session": bool,              # a session runs with it now
          "paused": bool,
          "last_sync_ms": int,             # last digest or asset exchanged; 0 = never
          "bytes_in": int, "bytes_out": int,
          "assets_in": int, "assets_out": int,
          "owed": int,                     # assets we hold that it lacks (0 for a rejected peer)
          "wanted": int,                   # assets it holds that we lack (0 for a rejected peer)
      }],
      "transfers": [{                      # every transfer in flight
          "peer": str, "hash": str,
          "direction": "in" | "out",
          "status": str,                   # requested | started | checkpointed
          "offset": int,                   # bytes durable so far
          "size": int | None,
      }],
      "totals": {"local_assets": int, "owed": int, "wanted": int, "in_flight": int, "storing": int},
      "failures": {"peer": int, "ours": int, "link": int},   # failed transfers and errors, by whose fault
      "sessions": int,                     # sessions running now
      "errors": [{"time_ms": int, "message": str}],          # recent errors, newest last, one line each
      "rates": {"bytes_in_per_s": float, "bytes_out_per_s": float},
    }

journal_rows() returns the audit rows, newest first (see cansync.web.journal_rows.JOURNAL_ROW_KEYS).
"""

from __future__ import annotations

from typing import Any, Protocol


class AgentView(Protocol):
    def status(self) -> dict[str, Any]:
        """The agent as it is now, in the schema above."""
        ...

    async def journal_rows(
        self, *, hash_prefix: str | None, peer: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Journal events matching the filters, newest first; ValueError for a malformed filter."""
        ...

    async def set_paused(self, peer: str, paused: bool) -> None:
        """Pause or resume syncing with `peer`; KeyError when the agent knows no such peer."""
        ...


def empty_status() -> dict[str, Any]:
    """A status with every key present and nothing in it (a template for views and tests)."""
    return {
        "endpoint_id": "",
        "started_ms": 0,
        "store": {"url": "", "reachable": False},
        "journal": {"events": 0},
        "peers": [],
        "transfers": [],
        "totals": {"local_assets": 0, "owed": 0, "wanted": 0, "in_flight": 0, "storing": 0},
        "failures": {"peer": 0, "ours": 0, "link": 0},
        "sessions": 0,
        "errors": [],
        "rates": {"bytes_in_per_s": 0.0, "bytes_out_per_s": 0.0},
    }
