"""One CatalogItemChanged → the events the validator emits for it. Pure: no Kafka here.

Valid items (categories and deletes included) become ListingReady, keyed by seller so one submitter
owns each seller's rate limit; the submitter answers categories 'not_sent'. Invalid items become
ValidationFailed with every error, keyed like the item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from catalog_sync.runtime.events import item_key, new_header
from catalog_sync.runtime.topics import LISTING_READY, LISTING_VALIDATION_FAILED

from .validation import ItemValidator


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to produce (the wiring turns it into the runtime's Outgoing)."""

    topic: str
    key: str
    schema: str
    event: dict


def content_hash(operation: str, product_type: str | None, requirements: str, attributes: dict) -> str:
    """SHA-256 of what putListingsItem / deleteListingsItem will send. Canonical JSON (sorted keys,
    no whitespace), so the same listing hashes the same whatever order the PIM wrote it in."""
    if operation == "delete":
        sent: dict = {"operation": "delete"}
    else:
        sent = {"operation": operation, "product_type": product_type, "requirements": requirements,
                "attributes": attributes}
    return hashlib.sha256(orjson.dumps(sent, option=orjson.OPT_SORT_KEYS)).hexdigest()


def handle_change(event: dict, *, validator: ItemValidator, default_seller_id: str | None,
                  header: Callable[[str | None], dict] = new_header) -> list[Emission]:
    """The events for one change: always exactly one, ListingReady or ValidationFailed."""
    seller_id = event.get("seller_id") or default_seller_id
    verdict = validator.validate(event, seller_id=seller_id)
    common = {
        **header(event.get("run_id")),
        "mode": event.get("mode") or "production",
        "source_event_id": event["event_id"],
        "reference": event["reference"],
        "item_type": event.get("item_type") or "product",
        "seller_id": seller_id,
        "marketplace_id": event["marketplace_id"],
    }
    if not verdict.valid:
        failed = {**common, "errors": [issue.as_dict() for issue in verdict.issues]}
        key = item_key(seller_id, event["marketplace_id"], event["reference"])
        return [Emission(LISTING_VALIDATION_FAILED, key, "ValidationFailed", failed)]
    operation = event.get("operation") or "upsert"
    requirements = event.get("requirements") or "LISTING"
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
