"""Topic names, in one place. `<domain>.<entity>.<event>`, past tense; dead letters `<service>.dlq`."""

CATALOG_ITEM_CHANGED = "catalog.item.changed"
CATALOG_RUN_EVENTS = "catalog.run.events"
LISTING_VALIDATION_FAILED = "listing.validation.failed"
LISTING_READY = "listing.ready"
LISTING_SUBMISSION_COMPLETED = "listing.submission.completed"
# What Amazon shows of a listing after ACCEPTED (getListingsItem), key seller|marketplace|reference.
LISTING_STATE_OBSERVED = "listing.state.observed"
# Amazon's LISTINGS_ITEM_ISSUES_CHANGE / LISTINGS_ITEM_STATUS_CHANGE notifications as Amazon's JSON,
# put here by the user's SQS forwarder: they end the submitter's polling of a listing early.
LISTING_NOTIFICATION_RECEIVED = "listing.notification.received"
# Compacted: last accepted content hash per seller|marketplace|sku (submitter state).
LISTING_ACCEPTED_HASHES = "listing.accepted.hashes"
# Compacted: JSON_LISTINGS_FEEDs in flight per seller|marketplace|mode|batch (submitter state, the bulk lane).
LISTING_FEEDS_INFLIGHT = "listing.feeds.inflight"

ALL_EVENT_TOPICS = (
    CATALOG_ITEM_CHANGED,
    CATALOG_RUN_EVENTS,
    LISTING_VALIDATION_FAILED,
    LISTING_READY,
    LISTING_SUBMISSION_COMPLETED,
    LISTING_STATE_OBSERVED,
    LISTING_NOTIFICATION_RECEIVED,
)


def dead_letter_topic(service: str) -> str:
    return f"{service}.dlq"
