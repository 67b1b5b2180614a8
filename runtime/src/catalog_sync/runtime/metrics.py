"""Prometheus metrics shared by every worker, on a registry the caller owns (tests pass a fresh one).

The same names in every service let one dashboard serve all; the `service` label tells them apart.
Never label by SKU, seller, request id or event id: logs carry those.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, make_server

# Per-message handling time: from a batch of fast validations to a throttled Amazon call.
PROCESSING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry, service: str):
        self.registry = registry
        self.service = service
        self.consumed = Counter(
            "pipeline_messages_consumed_total", "Messages polled from Kafka.", ["service", "topic"], registry=registry
        )
        self.processed = Counter(
            "pipeline_messages_processed_total",
            "Messages fully handled, by outcome (ok, dead_letter).",
            ["service", "topic", "outcome"],
            registry=registry,
        )
        self.produced = Counter(
            "pipeline_messages_produced_total", "Events produced to Kafka.", ["service", "topic"], registry=registry
        )
        self.duration = Histogram(
            "pipeline_processing_duration_seconds",
            "Time to handle one message, from the start of its handling (its batch's, in a batch worker) "
            "to its outputs handed to the producer.",
            ["service"],
            buckets=PROCESSING_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "pipeline_dead_letters_total",
            "Messages sent to the dead-letter topic, by reason.",
            ["service", "topic", "reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "pipeline_consumer_lag_messages",
            "Messages between the committed position and the end of each assigned partition.",
            ["service", "topic", "partition"],
            registry=registry,
        )
        self.commits = Counter(
            "pipeline_commits_total", "Offset commits to Kafka.", ["service"], registry=registry
        )
        self.up = Gauge("pipeline_worker_up", "1 while the worker loop runs.", ["service"], registry=registry)

    def labelled(self, service: str) -> PipelineMetrics:
        """The same collectors under another `service` label: a second loop in one process (one
        registry can hold each metric once) reports apart from the first."""
        view = copy.copy(self)
        view.service = service
        return view

    def forget_partition(self, topic: str, partition: int) -> None:
        """A revoked partition is another member's to report."""
        with contextlib.suppress(KeyError):
            self.lag.remove(self.service, topic, str(partition))


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # scrapes every few seconds would flood the log
        pass


class MetricsServer:
    """Serves GET /metrics for one registry on a background thread; `port` 0 picks a free port."""

    def __init__(self, registry: CollectorRegistry, port: int, host: str = "0.0.0.0"):
        self._httpd: WSGIServer = make_server(host, port, make_wsgi_app(registry), ThreadingWSGIServer, handler_class=_QuietHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
