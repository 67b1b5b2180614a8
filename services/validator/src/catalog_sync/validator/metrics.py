"""The validator's own metrics, beside the runtime's pipeline_* ones, on the registry passed in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Per-item validation: tens of µs for a valid item, up to milliseconds for one with dozens of
# errors, more on the first item of a product type (schema compile).
VALIDATION_BUCKETS = (0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)


class ValidatorMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.events = Counter(
            "validator_events_total", "Catalog changes validated, by outcome (ready, invalid).", ["outcome"],
            registry=registry,
        )
        self.errors = Counter(
            "validator_errors_total", "Validation errors found, by stable error code.", ["code"], registry=registry,
        )
        self.duration = Histogram(
            "validator_validation_duration_seconds", "Time to validate one catalog change.",
            buckets=VALIDATION_BUCKETS, registry=registry,
        )
        # Children created once: .labels() on the hot path costs a lock and a dict lookup per call.
        self.ready = self.events.labels("ready")
        self.invalid = self.events.labels("invalid")
