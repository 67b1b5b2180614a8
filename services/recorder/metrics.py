"""The recorder's own Prometheus metrics, next to the shared pipeline_* ones on the same registry."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from .projection import RUN_STATUSES
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
        self.batch_events = Gauge(
            "recorder_last_batch_events", "Events in the last batch written in one transaction.", registry=registry)
        if model is not None:
            registry.register(_StoreGauges(model))


class _StoreGauges:
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
