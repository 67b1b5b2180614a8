"""spapi_* metrics on the worker's registry. Labels are bounded: operation and HTTP status (or
failure kind); never seller, SKU or request id (logs carry those)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
