"""Wiring of the submitter: listing.ready -> SP-API -> listing.submission.completed (+ the
accepted-hash table), on the runtime's consumer loop with its concurrent strategy, so a throttled
seller never holds up the others or the poll loop."""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.bus import require_topics
from catalog_sync.runtime.concurrent_strategy import ConcurrentStrategy
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Incoming, Outgoing, RawOutgoing, StopSignal
from catalog_sync.runtime.topics import (
    LISTING_ACCEPTED_HASHES,
    LISTING_READY,
    LISTING_SUBMISSION_COMPLETED,
    WORKER_TOPICS,
)
from catalog_sync.submitter.answered import AnsweredEvents
from catalog_sync.submitter.metrics import SpApiMetrics
from catalog_sync.submitter.outcomes import FINISHED_OUTCOMES, completed_event, outcome_key
from catalog_sync.submitter.settings import SubmitterSettings
from catalog_sync.submitter.spapi_client import SpApiClient
from catalog_sync.submitter.submission import Submitted, Submitter

log = structlog.get_logger()


def outputs_of(submitted: Submitted) -> list[Outgoing | RawOutgoing]:
    ready = submitted.ready
    out: list[Outgoing | RawOutgoing] = [Outgoing(
        LISTING_SUBMISSION_COMPLETED, outcome_key(ready), "SubmissionCompleted",
        completed_event(ready, submitted.result, submitted.endpoint))]
    if submitted.hash_change is not None:
        key, content_hash = submitted.hash_change
        out.append(RawOutgoing(LISTING_ACCEPTED_HASHES, key, content_hash.encode() if content_hash else None))
    return out


def build_worker(settings: SubmitterSettings, *, registry: CollectorRegistry | None = None,
                 stop: StopSignal | None = None) -> tuple[ConsumerLoop, Submitter, SpApiClient, object]:
    registry = registry or CollectorRegistry()
    metrics = SpApiMetrics(registry)
    client = SpApiClient(settings.client, endpoints=settings.endpoints, on_refused=metrics.mode_violation)
    hashes = None
    if settings.unchanged_check == "kafka":
        from catalog_sync.submitter.accepted_hashes import KafkaHashTable

        hashes = KafkaHashTable(settings.runtime)
    submitter = Submitter(accounts=settings.accounts, transport=client, endpoints=settings.endpoints,
                          hashes=hashes, policy=settings.policy, observer=metrics)
    answered = AnsweredEvents()

    async def handle(message: Incoming) -> list[Outgoing | RawOutgoing]:
        ready = message.event
        if not ready.get("seller_id") and settings.accounts.default_seller:
            ready = {**ready, "seller_id": settings.accounts.default_seller}
        event_id = ready.get("event_id")

        async def answer() -> list[Outgoing | RawOutgoing]:
            # In the item's turn: a replay polled together with its original finds its answer here.
            again = answered.get(event_id)
            if again is not None:
                log.info("replayed message answered again without a call", topic=message.topic,
                         partition=message.partition, offset=message.offset, event_id=event_id,
                         reference=ready.get("reference"))
                return again
            submitted = await submitter.submit_now(ready)
            result = submitted.result
            # One line per call at 1,000 calls/s costs more CPU than the call: successes log at debug
            # (their SubmissionCompleted event and the recorder keep them); anything else at info.
            (log.debug if result.outcome in FINISHED_OUTCOMES else log.info)(
                "submission completed", seller_id=ready.get("seller_id"), marketplace_id=ready.get("marketplace_id"),
                reference=ready.get("reference"), run_id=ready.get("run_id"), event_id=event_id,
                outcome=result.outcome, http_status=result.http_status, request_id=(result.request_ids or [None])[-1],
                submission_id=result.submission_id, attempts=result.attempts, latency_ms=round(result.latency_ms, 1),
                error_code=result.error_code)
            outputs = outputs_of(submitted)
            answered.put(event_id, outputs)
            return outputs

        return await submitter.in_turn(ready, answer)

    def on_assign(partitions):
        if hashes is not None:
            hashes.wait_until_current()  # the previous owner's accepted hashes first
        return None

    strategy = ConcurrentStrategy(handle, on_close=client.aclose,
                                  max_in_flight_per_partition=settings.max_in_flight_per_partition,
                                  shutdown_drain_s=settings.shutdown_drain_s)
    worker = ConsumerLoop(settings.runtime, topics=[LISTING_READY], strategy=strategy, accepts={"ListingReady"},
                          registry=registry, on_assign=on_assign, stop=stop)
    return worker, submitter, client, hashes


def run(settings: SubmitterSettings, *, registry: CollectorRegistry | None = None,
        stop: StopSignal | None = None) -> None:
    require_topics(settings.runtime, [settings.runtime.topic(t) for t in WORKER_TOPICS["submitter"]])
    worker, _submitter, _client, hashes = build_worker(settings, registry=registry, stop=stop)
    if hashes is not None:
        hashes.start()
        hashes.wait_until_current(timeout_s=60)
        log.info("accepted-hash table loaded", listings=len(hashes.hashes))
    try:
        worker.run()  # the strategy closes the SP-API client on its event loop at the end
    finally:
        if hashes is not None:
            hashes.close()
