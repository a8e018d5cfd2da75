"""Build the AgentView status (cansync.web.view) from the folded journal state.

The agent passes what only a running process knows (sessions, rates, recent errors, whether the store
answers); `cansync status` with no agent running passes nothing and shows the journal's view alone.
`SyncState.describe()` is read defensively: keys it may gain or lose do not break the page.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from cansync.core.machine import SyncState
from cansync.web.view import empty_status


def status_from_state(
    state: SyncState,
    *,
    endpoint_id: str = "",
    started_ms: int = 0,
    store_url: str = "",
    store_reachable: bool = False,
    in_session: Collection[str] = (),
    paused: Collection[str] = (),
    errors: Iterable[Mapping[str, Any]] = (),
    rates: Mapping[str, float] | None = None,
    failures: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    described = state.describe()
    status = empty_status()
    status.update(endpoint_id=endpoint_id, started_ms=started_ms)
    status["store"] = {"url": store_url, "reachable": bool(store_reachable)}
    status["journal"] = {"events": _int(described.get("last_seq"))}
    peers, transfers = [], []
    peer_faults = 0
    for peer_id, info in sorted(dict(described.get("peers") or {}).items()):
        link = str(info.get("link", "discovered"))
        rejected = link == "rejected"  # a stranger that failed the proof is owed nothing and owes nothing
        peer_state = state.peers.get(peer_id)
        assets_out = _int(info.get("sent"))
        if peer_state is not None:
            peer_faults += sum(t.failures for t in (*peer_state.incoming.values(), *peer_state.outgoing.values()))
        peer_faults += _int(info.get("protocol_errors"))
        peers.append(
            {
                "id": peer_id,
                "link": link,
                "found_via": sorted(str(v) for v in info.get("found_via") or ()),
                "in_session": peer_id in in_session,
                "paused": peer_id in paused,
                "last_sync_ms": _int(info.get("last_sync_ms")),
                "bytes_in": _int(info.get("bytes_in")),
                "bytes_out": _int(info.get("bytes_out")),
                "assets_in": _int(info.get("received_from")),
                "assets_out": assets_out,
                "owed": 0 if rejected else _int(info.get("owed")),
                "wanted": 0 if rejected else _int(info.get("wanted")),
            }
        )
        for move in info.get("in_flight") or ():
            size = move.get("size")
            transfers.append(
                {
                    "peer": peer_id,
                    "hash": str(move.get("hash", "")),
                    "direction": str(move.get("direction", "")),
                    "status": str(move.get("status", "")),
                    "offset": _int(move.get("offset")),
                    "size": None if size is None else _int(size),
                }
            )
    status["peers"] = peers
    status["transfers"] = transfers
    status["totals"] = {
        "local_assets": _int(described.get("local_assets")),
        "owed": sum(p["owed"] for p in peers),
        "wanted": sum(p["wanted"] for p in peers),
        "in_flight": len(transfers),
        "storing": _int(described.get("storing")),
    }
    status["failures"] = {"peer": peer_faults, "ours": 0, "link": 0, **(failures or {})}
    status["sessions"] = len(in_session)
    status["errors"] = [{"time_ms": _int(e.get("time_ms")), "message": str(e.get("message", ""))} for e in errors]
    if rates is not None:
        status["rates"] = {k: float(rates.get(k, 0.0)) for k in ("bytes_in_per_s", "bytes_out_per_s")}
    return status


def _int(value: Any) -> int:
    """A count from describe(), 0 when it is missing or not a number (a list counts as its length)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return len(value)
    return 0
