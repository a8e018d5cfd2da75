"""Server-Sent Events over the change log: replay from the index after `since`, then live, with no
gap and no duplicate between the two (subscribe first, then read the backlog, then skip live changes
the backlog already covered)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection

from aiohttp import web

from cansync.store.assets import AssetStore
from cansync.store.changes import Change, ChangeKind, parse_change_seq

KEEPALIVE_COMMENT = b": keep-alive\n\n"


def format_event(kind: str, data: str, event_id: int | None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {kind}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


def change_payload(change: Change) -> str:
    data: dict[str, object] = {"hash": change.hash, "changed_seq": change.seq}
    if change.kind is ChangeKind.NEW_ASSET:
        data["timestamp"] = change.timestamp
    return json.dumps(data, separators=(",", ":"))


def since_from_request(request: web.Request) -> int | None:
    """`?since=N`, else the Last-Event-ID a reconnecting browser sends, else None (live only)."""
    raw = request.query.get("since") or request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    try:
        return parse_change_seq(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def stream_changes(
    request: web.Request,
    store: AssetStore,
    *,
    since: int | None,
    kinds: Collection[ChangeKind],
    keepalive_secs: float,
    payload: Callable[[Change], str] = change_payload,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        with store.feed.subscribe() as subscription:
            last = since if since is not None else await store.changes_watermark()
            if since is not None:
                while backlog := await store.changes_since(last):
                    for replayed in backlog:
                        if replayed.kind in kinds:
                            await response.write(format_event(replayed.kind, payload(replayed), replayed.seq))
                        last = replayed.seq
            await response.write(KEEPALIVE_COMMENT)  # tells the client the stream is open
            while True:
                try:
                    change = await subscription.next(timeout=keepalive_secs)
                except TimeoutError:
                    await response.write(KEEPALIVE_COMMENT)
                    continue
                if change is None:
                    break  # shutting down, or this client fell too far behind: it will reconnect
                if change.seq <= last:
                    continue  # already sent from the backlog
                last = change.seq
                if change.kind in kinds:
                    await response.write(format_event(change.kind, payload(change), change.seq))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    return response
