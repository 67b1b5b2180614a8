"""Realistic event dicts of sync runs, shaped exactly as the Avro codec decodes them.

The recorder's tests and its benchmark build their input here, so both exercise the same
event shapes the validator and submitter produce (schemas/src/catalog_sync/schemas/*.avsc).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from catalog_sync.recorder.projection import (
    CHANGED,
    LISTING_OBSERVED,
    RUN_CLOSED,
    RUN_OPENED,
    SUBMISSION_COMPLETED,
    VALIDATION_FAILED,
)

TOPIC_OF = {
    RUN_OPENED: "catalog.run.events",
    RUN_CLOSED: "catalog.run.events",
    CHANGED: "catalog.item.changed",
    VALIDATION_FAILED: "listing.validation.failed",
    SUBMISSION_COMPLETED: "listing.submission.completed",
    LISTING_OBSERVED: "listing.state.observed",
}
SELLER = "A3SELLER0EXAMPLE"
US = "ATVPDKIKX0DER"
ATTRIBUTES_JSON = (
    '{"item_name":[{"value":"Velvet hairband, navy","language_tag":"en_US","marketplace_id":"ATVPDKIKX0DER"}],'
    '"brand":[{"value":"Acme","language_tag":"en_US","marketplace_id":"ATVPDKIKX0DER"}],'
    '"condition_type":[{"value":"new_new","marketplace_id":"ATVPDKIKX0DER"}],'
    '"purchasable_offer":[{"currency":"USD","our_price":[{"schedule":[{"value_with_tax":19.99}]}],'
    '"marketplace_id":"ATVPDKIKX0DER"}]}'
)


def just_now() -> datetime:
    """A start for a run that must count as running now (not yet stalled): the default start is
    a fixed time, so that time-independent checks stay exact."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)


@dataclass
class SampleRun:
    """Builds the events of one run; every event gets a fresh id and a strictly later time."""

    run_id: str = field(default_factory=lambda: f"run-{uuid.uuid4().hex[:12]}")
    mode: str = "test"
    start: datetime = field(default_factory=lambda: datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
    step: timedelta = timedelta(milliseconds=1)
    _ticks: int = 0

    @property
    def endpoint(self) -> str:
        return "test" if self.mode == "test" else "production"

    def now(self) -> datetime:
        self._ticks += 1
        return self.start + self._ticks * self.step

    def header(self, at: datetime | None = None) -> dict:
        return {"event_id": str(uuid.uuid4()), "event_time": at or self.now(), "run_id": self.run_id}

    def opened(self, next_run_at: datetime | None = None, source: str | None = "catalog.jsonl") -> tuple[str, dict]:
        h = self.header()
        return RUN_OPENED, {**h, "mode": self.mode, "endpoint": self.endpoint, "started_at": h["event_time"],
                            "next_run_at": next_run_at, "source": source}

    def closed(self, item_count: int) -> tuple[str, dict]:
        h = self.header()
        return RUN_CLOSED, {**h, "item_count": item_count, "closed_at": h["event_time"]}

    def changed(self, reference: str, item_type: str = "product", marketplace_id: str = US,
                seller_id: str | None = SELLER, at: datetime | None = None) -> tuple[str, dict]:
        return CHANGED, {
            **self.header(at), "mode": self.mode, "reference": reference, "item_type": item_type,
            "operation": "upsert", "seller_id": seller_id, "marketplace_id": marketplace_id,
            "product_type": "HAIRBAND", "requirements": "LISTING",
            "parent_reference": "HB-PARENT" if item_type == "variant" else None,
            "attributes_json": ATTRIBUTES_JSON, "changed_at": self.start,
        }

    def validation_failed(self, reference: str, errors: list[dict] | None = None, item_type: str = "product",
                          marketplace_id: str = US, seller_id: str | None = SELLER,
                          at: datetime | None = None) -> tuple[str, dict]:
        errors = errors if errors is not None else [
            {"code": "schema.required", "message": "'brand' is required but not supplied.", "path": "/attributes/brand"},
            {"code": "schema.maxUtf8ByteLength", "message": "item_name is 212 bytes, at most 200 allowed.",
             "path": "/attributes/item_name/0/value"},
        ]
        return VALIDATION_FAILED, {
            **self.header(at), "mode": self.mode, "source_event_id": str(uuid.uuid4()), "reference": reference,
            "item_type": item_type, "seller_id": seller_id, "marketplace_id": marketplace_id, "errors": errors,
        }

    def submitted(self, reference: str, *, accepted: bool = True, item_type: str = "product",
                  marketplace_id: str = US, seller_id: str = SELLER, issues: list[dict] | None = None,
                  request_id: str | None = None, at: datetime | None = None, http_status: int | None = 200,
                  error_code: str | None = None, error_message: str | None = None) -> tuple[str, dict]:
        request_id = request_id or f"{uuid.uuid4()}"
        if accepted:
            outcome, status, amazon_status = ("valid" if self.mode == "preview" else "accepted"), "finished", \
                ("VALID" if self.mode == "preview" else "ACCEPTED")
        elif http_status == 200:
            outcome, status, amazon_status = "invalid", "error", "INVALID"
        else:
            outcome, status, amazon_status = "rejected", "error", None
        if issues is None:
            issues = [] if accepted or http_status != 200 else [{
                "code": "90220", "message": "'condition_type' is required but not supplied.", "severity": "ERROR",
                "attribute_names": ["condition_type"], "categories": ["MISSING_ATTRIBUTE"]}]
        return SUBMISSION_COMPLETED, {
            **self.header(at), "mode": self.mode, "endpoint": self.endpoint, "source_event_id": str(uuid.uuid4()),
            "reference": reference, "item_type": item_type, "operation": "upsert", "seller_id": seller_id,
            "marketplace_id": marketplace_id, "outcome": outcome, "status": status, "http_status": http_status,
            "amazon_status": amazon_status, "request_id": request_id, "attempt_request_ids": [request_id],
            "submission_id": uuid.uuid4().hex if http_status == 200 else None, "issues": issues,
            "error_code": error_code, "error_message": error_message, "attempts": 1, "latency_ms": 183.0,
            "content_hash": "9f2c" * 16,
        }


    def observed(self, submitted: tuple[str, dict], state: str = "live", *, request_id: str | None = None,
                 issues: list[dict] | None = None, note: str | None = None, at: datetime | None = None) -> tuple[str, dict]:
        """The submitter's look at an accepted listing (ListingObserved) after `submitted`."""
        sub = submitted[1]
        if issues is None:
            issues = [{"code": "8541", "message": "conflicts with the Amazon catalog", "severity": "ERROR",
                       "attribute_names": [], "categories": []}] if state == "error" else []
        errors = [i for i in issues if i["severity"] == "ERROR"]
        return LISTING_OBSERVED, {
            **self.header(at), "mode": sub["mode"], "endpoint": sub["endpoint"], "source_event_id": sub["event_id"],
            "submitted_at": sub["event_time"], "reference": sub["reference"], "item_type": sub["item_type"],
            "seller_id": sub["seller_id"], "marketplace_id": sub["marketplace_id"], "listing_state": state,
            "status": "error" if state == "error" else "finished",
            "amazon_statuses": ["BUYABLE", "DISCOVERABLE"] if state == "live" else [],
            "request_id": request_id or f"get-{uuid.uuid4()}", "submission_request_id": sub["request_id"],
            "submission_id": sub["submission_id"], "issues": issues,
            "error_code": errors[0]["code"] if errors else None,
            "error_message": errors[0]["message"] if errors else None, "looks": 2,
            "ended_by": "time_limit" if state == "awaiting" else "poll", "note": note,
        }

    def by_feed(self, reference: str, feed_id: str, message_id: int, *, accepted: bool = True,
                **fields) -> tuple[str, dict]:
        """The outcome of an item the bulk lane sent in a JSON_LISTINGS_FEED: no item call, the
        createFeed and getFeed request ids, the feed and the message."""
        kind, event = self.submitted(reference, accepted=accepted, **fields)
        create, poll = f"cf-{feed_id}", f"gf-{feed_id}"
        event.update(http_status=None, submission_id=None, request_id=create,
                     attempt_request_ids=[f"cfd-{feed_id}", create, f"gfd-{feed_id}"], feed_id=feed_id,
                     feed_message_id=message_id, create_feed_request_id=create, get_feed_request_id=poll,
                     feed_processing_status="DONE")
        return kind, event

    def unchanged(self, reference: str, **fields) -> tuple[str, dict]:
        """The submitter's answer for content Amazon already holds: finished, nothing sent, no request."""
        kind, event = self.submitted(reference, **fields)
        event.update(outcome="unchanged", amazon_status=None, http_status=None, request_id=None,
                     attempt_request_ids=[], submission_id=None)
        return kind, event


@dataclass(frozen=True, slots=True)
class Message:
    """What the store needs of a consumed message (the worker's Incoming has the same fields)."""

    topic: str
    partition: int
    offset: int
    schema: str
    event: dict


class Partitions:
    """Hands out offsets per topic like a one-partition-per-topic log, for tests and benchmarks."""

    def __init__(self):
        self._next: dict[str, int] = {}

    def message(self, schema_event: tuple[str, dict], partition: int = 0) -> Message:
        schema, event = schema_event
        topic = TOPIC_OF[schema]
        offset = self._next.get(f"{topic}/{partition}", 0)
        self._next[f"{topic}/{partition}"] = offset + 1
        return Message(topic, partition, offset, schema, event)

    def messages(self, events: list[tuple[str, dict]]) -> list[Message]:
        return [self.message(e) for e in events]
