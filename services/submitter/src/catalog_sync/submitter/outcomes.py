"""SubmissionCompleted events (schemas/src/catalog_sync/schemas/submission_completed.v3.avsc) from submission results.

Outcome -> item status (interfaces.md §2): accepted, valid, deleted, not_sent, unchanged,
preview_not_sent (a delete in a preview run, never sent: catalog_sync.runtime.sync_modes) -> finished; invalid (Amazon status INVALID), rejected (final HTTP error), failed (retries
exhausted or a local reason) -> error, which the recorder shows as error type amazon_response."""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog_sync.runtime.contract import FINISHED_OUTCOMES, status_of_outcome
from catalog_sync.runtime.events import item_key, new_header

__all__ = ["FINISHED_OUTCOMES", "FeedRef", "SubmissionResult", "completed_event", "outcome_key", "parse_issues"]


@dataclass(frozen=True)
class FeedRef:
    """Where an item sent by feed is found at Amazon: what support asks for."""

    feed_id: str | None
    message_id: int
    create_feed_request_id: str | None
    get_feed_request_id: str | None
    processing_status: str | None


@dataclass
class SubmissionResult:
    outcome: str
    http_status: int | None = None
    amazon_status: str | None = None
    request_ids: list[str] = field(default_factory=list)
    submission_id: str | None = None
    issues: list[dict] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    latency_ms: float = 0.0
    feed: FeedRef | None = None  # set when the item went in a JSON_LISTINGS_FEED (the bulk lane)

    @property
    def status(self) -> str:
        return status_of_outcome(self.outcome)


def parse_issues(raw) -> list[dict]:
    """Amazon issues -> AmazonIssue records. Real responses sometimes omit code or categories."""
    issues = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        code = entry.get("code")
        issues.append({
            "code": str(code) if code is not None else None,
            "message": str(entry.get("message") or ""),
            "severity": str(entry.get("severity") or "ERROR"),
            "attribute_names": _strings(entry.get("attributeNames")),
            "categories": _strings(entry.get("categories")),
        })
    return issues


def _strings(raw) -> list[str]:
    # A list of names, leniently: one bare name is a list of one; a number or object is nothing.
    if isinstance(raw, str):
        return [raw]
    return [str(v) for v in raw if v is not None] if isinstance(raw, list) else []


def completed_event(ready: dict, result: SubmissionResult, endpoint: str) -> dict:
    return {
        **new_header(ready.get("run_id")),
        "mode": ready["mode"],
        "endpoint": endpoint,
        "source_event_id": ready["event_id"],
        "reference": ready["reference"],
        "item_type": ready["item_type"],
        "operation": ready["operation"],
        "seller_id": ready["seller_id"],
        "marketplace_id": ready["marketplace_id"],
        "outcome": result.outcome,
        "status": result.status,
        "http_status": result.http_status,
        "amazon_status": result.amazon_status,
        "request_id": result.request_ids[-1] if result.request_ids else None,
        "attempt_request_ids": list(result.request_ids),
        "submission_id": result.submission_id,
        "issues": result.issues,
        "error_code": result.error_code,
        "error_message": result.error_message,
        "attempts": result.attempts,
        "latency_ms": round(result.latency_ms, 3),
        "content_hash": ready.get("content_hash"),
        "feed_id": result.feed.feed_id if result.feed else None,
        "feed_message_id": result.feed.message_id if result.feed else None,
        "create_feed_request_id": result.feed.create_feed_request_id if result.feed else None,
        "get_feed_request_id": result.feed.get_feed_request_id if result.feed else None,
        "feed_processing_status": result.feed.processing_status if result.feed else None,
    }


def outcome_key(ready: dict) -> str:
    return item_key(ready["seller_id"], ready["marketplace_id"], ready["reference"])
