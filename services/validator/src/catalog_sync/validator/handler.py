"""One CatalogItemChanged → the events the validator emits for it. Pure: no Kafka here.

Valid items (categories and deletes included) become ListingReady, keyed by seller so one submitter
owns each seller's rate limit; the submitter answers categories 'not_sent'. Invalid items become
ValidationFailed with every error, keyed like the item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog_sync.runtime.contract import content_hash
from catalog_sync.runtime.events import item_key, new_header
from catalog_sync.runtime.topics import LISTING_READY, LISTING_VALIDATION_FAILED

from .families import FailedParents
from .validation import ItemValidator, Verdict

__all__ = ["Emission", "content_hash", "handle_change"]


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to produce (the wiring turns it into the runtime's Outgoing)."""

    topic: str
    key: str
    schema: str
    event: dict


def handle_change(event: dict, *, validator: ItemValidator, default_seller_id: str | None,
                  header: Callable[[str | None], dict] = new_header,
                  failed_parents: FailedParents | None = None) -> list[Emission]:
    """The events for one change: always exactly one, ListingReady or ValidationFailed.
    `failed_parents`: this validator's memory of products that failed in their run, which fails
    their variants too (deletes are not held back: children go before their parent there)."""
    seller_id = event.get("seller_id") or default_seller_id
    verdict = validator.validate(event, seller_id=seller_id)
    if failed_parents is not None and event["operation"] == "upsert":
        if event["item_type"] == "product":
            failed_parents.record(event, seller_id, verdict.issues)
        elif event["item_type"] == "variant" and (parent_failed := failed_parents.issue_for(event, seller_id)):
            verdict = Verdict([*verdict.issues, parent_failed], verdict.attributes)
    common = {
        **header(event.get("run_id")),
        "mode": event["mode"],
        "source_event_id": event["event_id"],
        "reference": event["reference"],
        "item_type": event["item_type"],
        "seller_id": seller_id,
        "marketplace_id": event["marketplace_id"],
    }
    if not verdict.valid:
        failed = {**common, "errors": [issue.as_dict() for issue in verdict.issues]}
        key = item_key(seller_id, event["marketplace_id"], event["reference"])
        return [Emission(LISTING_VALIDATION_FAILED, key, "ValidationFailed", failed)]
    assert seller_id  # a change without a seller fails validation (seller_issue)
    operation = event["operation"]
    requirements = event["requirements"]
    ready = {
        **common,
        "operation": operation,
        "product_type": event.get("product_type"),
        "requirements": requirements,
        "parent_reference": event.get("parent_reference"),
        "attributes_json": event.get("attributes_json") or "{}",
        "changed_at": event.get("changed_at"),
        "content_hash": content_hash(operation, event.get("product_type"), requirements, verdict.attributes),
    }
    return [Emission(LISTING_READY, seller_id, "ListingReady", ready)]
