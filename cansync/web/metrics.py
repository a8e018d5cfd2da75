"""Prometheus text for /metrics, built from AgentView.status() at scrape time (no state of its own).

Every metric is prefixed `cansync_`; per-peer series carry the peer's full endpoint id as `peer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from cansync.web.view import AgentView

__all__ = ["CONTENT_TYPE_LATEST", "StatusCollector", "metrics_registry", "render_metrics"]

_PER_PEER = (
    ("cansync_peer_received_bytes", "Bytes of asset content received from the peer", "bytes_in"),
    ("cansync_peer_sent_bytes", "Bytes of asset content sent to the peer", "bytes_out"),
    ("cansync_peer_received_assets", "Assets received from the peer, verified", "assets_in"),
    ("cansync_peer_sent_assets", "Assets sent to the peer", "assets_out"),
)


class StatusCollector(Collector):
    """Turns one status() snapshot into metric families on every collect()."""

    def __init__(self, view: AgentView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        status: dict[str, Any] = self._view.status()
        peers = status.get("peers") or []
        for name, documentation, key in _PER_PEER:
            family = CounterMetricFamily(name, documentation, labels=["peer"])
            for peer in peers:
                family.add_metric([str(peer.get("id", ""))], float(peer.get(key, 0) or 0))
            yield family
        owed = GaugeMetricFamily("cansync_peer_owed_assets", "Assets we hold that the peer lacks", labels=["peer"])
        wanted = GaugeMetricFamily("cansync_peer_wanted_assets", "Assets the peer holds that we lack", labels=["peer"])
        up = GaugeMetricFamily("cansync_peer_in_session", "1 while a session with the peer runs", labels=["peer"])
        for peer in peers:
            label = [str(peer.get("id", ""))]
            owed.add_metric(label, float(peer.get("owed", 0) or 0))
            wanted.add_metric(label, float(peer.get("wanted", 0) or 0))
            up.add_metric(label, 1.0 if peer.get("in_session") else 0.0)
        yield from (owed, wanted, up)

        in_flight = GaugeMetricFamily(
            "cansync_transfers_in_flight", "Transfers requested or moving now", labels=["direction"]
        )
        transfers = status.get("transfers") or []
        for direction in ("in", "out"):
            in_flight.add_metric([direction], float(sum(1 for t in transfers if t.get("direction") == direction)))
        yield in_flight

        failures = CounterMetricFamily(
            "cansync_failures", "Failed transfers and peer errors, by whose fault", labels=["fault"]
        )
        for fault, count in sorted((status.get("failures") or {}).items()):
            failures.add_metric([str(fault)], float(count or 0))
        yield failures

        totals = status.get("totals") or {}
        yield GaugeMetricFamily("cansync_sessions", "Peer sessions running now", value=float(status.get("sessions", 0)))
        yield CounterMetricFamily(
            "cansync_journal_events",
            "Events in the journal",
            value=float((status.get("journal") or {}).get("events", 0)),
        )
        yield GaugeMetricFamily(
            "cansync_store_reachable",
            "1 when the local CAN store answers",
            value=1.0 if (status.get("store") or {}).get("reachable") else 0.0,
        )
        yield GaugeMetricFamily(
            "cansync_local_assets", "Assets our store holds", value=float(totals.get("local_assets", 0))
        )
        yield GaugeMetricFamily(
            "cansync_storing_assets",
            "Verified assets being pushed into our store",
            value=float(totals.get("storing", 0)),
        )


def metrics_registry(view: AgentView) -> CollectorRegistry:
    """A registry of its own (never the process-wide default) holding only the status collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(view))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
