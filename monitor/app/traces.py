"""The OTLP trace exporter from the settings: a listener beside the metrics, off unless
an endpoint is set."""

from __future__ import annotations

from collections.abc import Callable

from monitor import __version__
from monitor.app.cluster import Cluster
from monitor.metrics.aggregates import MonitorMetrics
from monitor.settings import Settings
from monitor.store import StateStore
from monitor.store.outbox import RedisOutbox, outbox_for
from monitor.traces.config import parse_headers, traces_url
from monitor.traces.exporter import TraceExporter
from monitor.tracking.watchlist import Watchlist


def trace_exporter(
    s: Settings,
    watchlist: Watchlist,
    store: StateStore,
    metrics: MonitorMetrics,
    cluster: Cluster | None,
    clock: Callable[[], float],
) -> TraceExporter | None:
    """The exporter, subscribed to the watchlist; None when no OTLP endpoint is set."""
    url = traces_url(
        s.otlp_endpoint, s.otel_exporter_otlp_traces_endpoint, s.otel_exporter_otlp_endpoint
    )
    if url is None:
        return None
    headers = s.otel_exporter_otlp_headers
    outbox = outbox_for(store)
    if isinstance(outbox, RedisOutbox) and cluster is not None:
        outbox.mine = cluster.coordinator.assigned  # each trace resumed by one replica
    exporter = TraceExporter(
        watchlist,
        outbox,
        metrics,
        url=url,
        headers=parse_headers(headers.get_secret_value()) if headers else {},
        service_name=s.otel_service_name,
        scope_version=__version__,
        queue_size=s.otlp_queue_size,
        retry_for=s.otlp_retry_for,
        backoff_max=s.otlp_backoff_max,
        timeout=s.otlp_timeout,
        clock=clock,
    )
    # The outbox entry is written before the completion is stored: owed even after kill -9.
    watchlist.on_completing(exporter.remember)
    watchlist.on_event(exporter.on_event)
    return exporter
