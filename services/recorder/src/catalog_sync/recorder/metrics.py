"""The recorder's own Prometheus metrics, next to the shared pipeline_* ones on the same registry."""

from __future__ import annotations

import time

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from catalog_sync.runtime.contract import RUN_STATUSES

from .read_model import ReadModel

log = structlog.get_logger()


class RecorderMetrics:
    def __init__(self, registry: CollectorRegistry, model: ReadModel | None = None):
        self.projected = Counter(
            "recorder_events_projected_total", "Events folded into the read store, by event type.",
            ["event_type"], registry=registry)
        self.skipped = Counter(
            "recorder_events_skipped_total",
            "Events that changed nothing: duplicate (event_id seen before) or already_applied (replayed offset).",
            ["reason"], registry=registry)
        self.lag = Gauge(
            "recorder_projection_lag_seconds",
            "Wall-clock time minus the event time of the newest event in the last projected batch.",
            registry=registry)
        self.store_failures = Counter(
            "recorder_store_failures_total",
            "Batches the read store did not take: unavailable (down, busy) or positions_moved (its offsets are "
            "not where this recorder left them). Each is followed by a seek to the stored offsets.",
            ["kind"], registry=registry)
        # Every reason and kind from the start: a dashboard panel over them shows 0, not "no data".
        for reason in ("duplicate", "already_applied"):
            self.skipped.labels(reason)
        for kind in ("unavailable", "positions_moved"):
            self.store_failures.labels(kind)
        self.batch_events = Gauge(
            "recorder_last_batch_events", "Events in the last batch written in one transaction.", registry=registry)
        if model is not None:
            registry.register(StoreGauges(model))


class ApiMetrics:
    """The read API's own series, served at its /metrics with the store gauges: requests by route
    template (never the concrete path, which carries references) and status code."""

    def __init__(self, registry: CollectorRegistry, model: ReadModel | None = None):
        self.requests = Counter(
            "api_requests_total", "Read API requests by route template and HTTP status.",
            ["route", "status"], registry=registry)
        self.duration = Histogram(
            "api_request_duration_seconds", "Read API request time, by route template.", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=registry)
        if model is not None:
            registry.register(StoreGauges(model))

    def middleware(self, app):
        """Pure ASGI middleware (no per-request Request/Response wrapping): times HTTP requests and
        labels them with the route the router matched (it records it in the shared scope)."""
        requests, duration = self.requests, self.duration

        async def measured(scope, receive, send):
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = [500]

            async def sending(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                # Static assets and unknown paths share "other": the label stays bounded.
                route = getattr(scope.get("route"), "path", None) or "other"
                requests.labels(route, str(status[0])).inc()
                duration.labels(route).observe(time.perf_counter() - started)

        return measured


class StoreGauges:
    """Read at scrape time from the store, so every recorder and the API report the same truth."""

    def __init__(self, model: ReadModel):
        self._model = model

    def describe(self):
        return []  # no eager collect at registration: the store may not be migrated yet

    def collect(self):
        runs = GaugeMetricFamily("recorder_runs", "Sync runs by status (interrupted: stalled beyond "
                                 "RECORDER_STALL_SECONDS).", labels=["status"])
        pending = GaugeMetricFamily("recorder_items_pending", "Items whose latest sync has no final outcome yet.")
        try:
            by_status, pending_items = self._model.run_gauges()
        except Exception as exc:  # a scrape must not fail because the database blinked
            log.warning("store gauges unavailable", error=str(exc))
            return
        for status in RUN_STATUSES:
            runs.add_metric([status], by_status.get(status, 0))
        pending.add_metric([], pending_items)
        yield runs
        yield pending
