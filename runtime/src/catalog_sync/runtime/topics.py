"""Topic names and what each topic is, in one place. `<domain>.<entity>.<event>`, past tense; dead
letters `<service>.dlq`.

`TOPICS` is the one definition `catalog-sync topics create` creates the topics from (partitions,
settings; the replication factor and `min.insync.replicas` are the cluster's choice, given on the
command line); deploy/kafka/create-topics.sh creates the same (tests/deploy compares them)."""

from __future__ import annotations

from dataclasses import dataclass, field

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

WORKER_SERVICES = ("validator", "submitter", "recorder")
DEAD_LETTER_RETENTION_MS = 14 * 24 * 3600 * 1000  # two weeks to inspect and replay dead letters
SCALED = None  # a topic's partitions: the deployment's count (how far its consumers scale out)


def dead_letter_topic(service: str) -> str:
    return f"{service}.dlq"


@dataclass(frozen=True)
class Topic:
    """A topic as it must exist: `partitions` (SCALED: the deployment's count) and its settings;
    a table (`compacted`) keeps the newest record per key."""

    name: str
    partitions: int | None
    configs: dict[str, str] = field(default_factory=dict)
    doc: str = ""

    @property
    def compacted(self) -> bool:
        return self.configs.get("cleanup.policy") == "compact"


TOPICS = (
    # Item-keyed (seller|marketplace|reference): per-item order, spread over many partitions.
    Topic(CATALOG_ITEM_CHANGED, SCALED, doc="catalog changes to validate (keyed by item family)"),
    Topic(LISTING_VALIDATION_FAILED, SCALED, doc="items that failed validation"),
    Topic(LISTING_SUBMISSION_COMPLETED, SCALED, doc="Amazon's answers"),
    Topic(LISTING_STATE_OBSERVED, SCALED, doc="what Amazon shows of accepted listings (the submitter's looks)"),
    # As many partitions as listing.submission.completed: a notification keyed like an outcome
    # reaches the submitter process that watches that listing.
    Topic(LISTING_NOTIFICATION_RECEIVED, SCALED, doc="Amazon's listing notifications (JSON, from an SQS forwarder)"),
    # Seller-keyed: one submitter owns each seller's usage plan.
    Topic(LISTING_READY, SCALED, doc="valid listings to send (keyed by seller)"),
    # Run opened/closed, keyed by run id: a few events per run.
    Topic(CATALOG_RUN_EVENTS, 3, doc="runs opened and closed"),
    Topic(LISTING_ACCEPTED_HASHES, SCALED, {"cleanup.policy": "compact"},
          doc="the submitter's table of what Amazon last accepted"),
    Topic(LISTING_FEEDS_INFLIGHT, SCALED, {"cleanup.policy": "compact"},
          doc="the submitter's journal of JSON_LISTINGS_FEEDs in flight (the bulk lane)"),
    *(Topic(dead_letter_topic(service), 3, {"retention.ms": str(DEAD_LETTER_RETENTION_MS)},
            doc=f"what the {service} could not handle") for service in WORKER_SERVICES),
)


# What each worker reads and writes: it refuses to start while one of them is missing.
WORKER_TOPICS = {
    "validator": (CATALOG_ITEM_CHANGED, LISTING_READY, LISTING_VALIDATION_FAILED, dead_letter_topic("validator")),
    "submitter": (LISTING_READY, LISTING_SUBMISSION_COMPLETED, LISTING_ACCEPTED_HASHES, LISTING_STATE_OBSERVED,
                  LISTING_NOTIFICATION_RECEIVED, LISTING_FEEDS_INFLIGHT, dead_letter_topic("submitter")),
    "recorder": (CATALOG_RUN_EVENTS, CATALOG_ITEM_CHANGED, LISTING_VALIDATION_FAILED, LISTING_SUBMISSION_COMPLETED,
                 LISTING_STATE_OBSERVED, dead_letter_topic("recorder")),
}


def topic_plan(*, prefix: str = "", partitions: int = 12, min_insync_replicas: int | None = None
               ) -> dict[str, tuple[int, dict[str, str]]]:
    """Every topic of TOPICS as it is to be created: full name → (partitions, settings). `partitions`
    is the count of the SCALED topics; `min_insync_replicas`, when given, is set on each."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    plan = {}
    for topic in TOPICS:
        configs = dict(topic.configs)
        if min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(min_insync_replicas)
        plan[prefix + topic.name] = (partitions if topic.partitions is SCALED else topic.partitions, configs)
    return plan
