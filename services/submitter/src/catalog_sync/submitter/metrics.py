"""spapi_* and bulk lane (submitter_feed*) metrics on the worker's registry. Labels are bounded:
operation, HTTP status (or failure kind), lane, feed status, outcome; never seller, SKU, feed or
request id (logs carry those)."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = structlog.get_logger()

# SP-API calls take from tens of milliseconds (emulator) to 30 s (Amazon's slowest answers).
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30)


class SpApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("spapi_requests_total", "SP-API HTTP attempts by operation and status "
                                "(HTTP code, timeout, connection_error, undecodable_response, login_failed).",
                                ["operation", "status"], registry=registry)
        self.throttled_total = Counter("spapi_throttled_total", "429 QuotaExceeded answers.", registry=registry)
        self.retries = Counter("spapi_retries_total", "Attempts repeated after a retryable failure.",
                               registry=registry)
        self.quota_wait = Counter("spapi_quota_wait_seconds_total",
                                  "Time requests waited for their seller's usage plan.", registry=registry)
        self.duration = Histogram("spapi_request_duration_seconds", "Duration of one SP-API HTTP attempt.",
                                  ["operation"], buckets=REQUEST_BUCKETS, registry=registry)
        self.in_flight_gauge = Gauge("spapi_in_flight_requests", "SP-API requests on the wire.", registry=registry)
        self.mode_violations = Counter(
            "spapi_mode_violations_total", "Listings requests refused before the wire: their host or mode "
            "parameter is not what the run's sync mode allows (each is dead-lettered).", registry=registry)

    def request(self, operation: str, status: str, seconds: float) -> None:
        self.requests.labels(operation, status).inc()
        self.duration.labels(operation).observe(seconds)

    def throttled(self) -> None:
        self.throttled_total.inc()

    def retried(self) -> None:
        self.retries.inc()

    def quota_waited(self, seconds: float) -> None:
        if seconds > 0:
            self.quota_wait.inc(seconds)

    def in_flight(self, delta: int) -> None:
        self.in_flight_gauge.inc(delta)

    def mode_violation(self, _refused: Exception) -> None:
        self.mode_violations.inc()


class FeedMetrics:
    """The bulk lane's observer (feeds.FeedObserver): submitter_feed* metrics and a log line per
    feed created and per feed ended (with its seller and feed id, which metrics never carry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.routed_items = Counter("submitter_items_routed_total", "Ready items by the lane they were sent "
                                    "in: item (putListingsItem/deleteListingsItem) or feed (JSON_LISTINGS_FEED).",
                                    ["lane"], registry=registry)
        self.created = Counter("submitter_feeds_created_total", "JSON_LISTINGS_FEEDs created.", registry=registry)
        self.ended = Counter("submitter_feeds_ended_total", "Feeds whose items have their results, by Amazon's "
                             "final processingStatus (DONE, FATAL, CANCELLED) or the error that ended them first.",
                             ["status"], registry=registry)
        self.feed_items = Counter("submitter_feed_items_total", "Items of ended feeds, by their outcome.",
                                  ["outcome"], registry=registry)
        self.in_flight = Gauge("submitter_feeds_in_flight", "Feeds between upload (or resumption) and results "
                               "in this process.", registry=registry)

    def routed(self, lane: str) -> None:
        self.routed_items.labels(lane).inc()

    def feed_created(self, record: dict) -> None:
        self.created.inc()
        log.info("feed created", seller_id=record.get("seller_id"), marketplace_id=record.get("marketplace_id"),
                 mode=record.get("mode"), feed_id=record.get("feed_id"), items=record.get("count"),
                 request_id=record.get("create_feed_request_id"))

    def feed_ended(self, record: dict, status: str, results: dict) -> None:
        self.ended.labels(status).inc()
        outcomes: dict[str, int] = {}
        for result in results.values():
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        for outcome, count in outcomes.items():
            self.feed_items.labels(outcome).inc(count)
        (log.info if status == "DONE" else log.warning)(
            "feed ended", seller_id=record.get("seller_id"), marketplace_id=record.get("marketplace_id"),
            feed_id=record.get("feed_id"), status=status, items=len(results), outcomes=outcomes)
