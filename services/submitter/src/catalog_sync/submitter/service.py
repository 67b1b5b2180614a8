"""Wiring of the submitter: listing.ready -> SP-API -> listing.submission.completed (+ the
accepted-hash table), on the runtime's consumer loop with its concurrent strategy, so a throttled
seller never holds up the others or the poll loop.

Beside it, in the same process, the reconciliation loop (SUBMITTER_RECONCILE=on): its own consumer
group (`<group>-reconciliation`) reads listing.submission.completed and Amazon's notifications
(listing.notification.received), looks at each accepted listing again (reconciliation.py) and
produces ListingObserved on listing.state.observed, plus a tombstone of the accepted hash when
Amazon turned the listing down after accepting it, so the next run sends it again. Its offsets are
committed only once the observation is out: a restart looks again rather than losing one."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.amazon_time import ScaledClock
from catalog_sync.runtime.bus import require_topics
from catalog_sync.runtime.concurrent_strategy import ConcurrentStrategy
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Incoming, Outgoing, RawOutgoing, StopSignal
from catalog_sync.runtime.contract import LISTING_ERROR
from catalog_sync.runtime.metrics import PipelineMetrics
from catalog_sync.runtime.topics import (
    LISTING_ACCEPTED_HASHES,
    LISTING_NOTIFICATION_RECEIVED,
    LISTING_READY,
    LISTING_STATE_OBSERVED,
    LISTING_SUBMISSION_COMPLETED,
    WORKER_TOPICS,
)
from catalog_sync.submitter.answered import AnsweredEvents
from catalog_sync.submitter.feeds import BulkLane
from catalog_sync.submitter.feeds_http import FeedsClient
from catalog_sync.submitter.metrics import FeedMetrics, SpApiMetrics
from catalog_sync.submitter.notifications import NOTIFICATION_RECORD, NotificationCodec
from catalog_sync.submitter.outcomes import FINISHED_OUTCOMES, completed_event, outcome_key
from catalog_sync.submitter.rate import RateLimiter
from catalog_sync.submitter.reconciliation import Reconciler, observed_event, wants
from catalog_sync.submitter.settings import SubmitterSettings
from catalog_sync.submitter.spapi_client import SpApiClient
from catalog_sync.submitter.submission import SpApiPorts, Submitted, Submitter

if TYPE_CHECKING:
    from catalog_sync.submitter.accepted_hashes import KafkaHashTable

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
                 stop: StopSignal | None = None) -> tuple[ConsumerLoop, Submitter, FeedsClient, KafkaHashTable | None]:
    registry = registry or CollectorRegistry()
    metrics = SpApiMetrics(registry)
    client = FeedsClient(settings.client, endpoints=settings.endpoints, on_refused=metrics.mode_violation)
    hashes: KafkaHashTable | None = None
    if settings.unchanged_check == "kafka":
        from catalog_sync.submitter.accepted_hashes import KafkaHashTable

        hashes = KafkaHashTable(settings.runtime)
    amazon_time = ScaledClock(settings.time_scale)  # scale 1 unless aimed at a time-scaled emulator
    limiter = RateLimiter(overrides=settings.accounts.rate_overrides(), clock=amazon_time.now, sleep=amazon_time.sleep)
    journal = bulk = None
    if settings.bulk is not None:
        from catalog_sync.submitter.feeds_journal import KafkaFeedJournal

        journal = KafkaFeedJournal(settings.runtime)
        feed_metrics = FeedMetrics(registry)
        bulk = BulkLane(transport=client, journal=journal, limiter=limiter, settings=settings.bulk,
                        policy=settings.policy, clock=amazon_time.now, sleep=amazon_time.sleep, observer=feed_metrics)
        feed_metrics.in_flight.set_function(lambda: bulk.feeds_in_flight)
    ports = SpApiPorts(accounts=settings.accounts, transport=client, endpoints=settings.endpoints, observer=metrics,
                       limiter=limiter, clock=amazon_time.now, sleep=amazon_time.sleep)
    submitter = Submitter(ports, hashes=hashes, policy=settings.policy, bulk=bulk)
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
            submitted = await submitter.submit_now(ready, (message.partition, message.offset))
            result = submitted.result
            # One line per call at 1,000 calls/s costs more CPU than the call: successes log at debug
            # (their SubmissionCompleted event and the recorder keep them); anything else at info.
            (log.debug if result.outcome in FINISHED_OUTCOMES else log.info)(
                "submission completed", seller_id=ready.get("seller_id"), marketplace_id=ready.get("marketplace_id"),
                reference=ready.get("reference"), run_id=ready.get("run_id"), event_id=event_id,
                outcome=result.outcome, http_status=result.http_status, request_id=result.request_ids[-1] if result.request_ids else None,
                submission_id=result.submission_id, attempts=result.attempts, latency_ms=round(result.latency_ms, 1),
                error_code=result.error_code)
            outputs = outputs_of(submitted)
            answered.put(event_id, outputs)
            return outputs

        return await submitter.in_turn(ready, answer)

    def on_assign(partitions):
        if hashes is not None:
            hashes.wait_until_current()  # the previous owner's accepted hashes first
        if journal is not None:
            journal.wait_until_current()  # and its feeds in flight, before their items come again
        if bulk is not None:
            strategy.run_in_event_loop(bulk.assigned(p for _topic, p in partitions), timeout_s=30)
        return None

    def on_revoke(partitions):
        # Closing: the strategy has stopped the lane's event loop, and every Feeds call with it.
        if bulk is None or not strategy.event_loop.is_running():
            return
        # The group assigns the partitions anew only once every member's revoke returned (eager
        # protocol): until then their next owner cannot look for a feed this process is creating.
        try:
            settled = strategy.run_in_event_loop(bulk.revoked(p for _topic, p in partitions),
                                                 timeout_s=bulk.settings.handover_wait_s + 5) == 0
        except TimeoutError:
            settled = False
        if not settled:
            log.warning("createFeed still on its way at a revoke: the partitions' next owner may create that feed "
                        "again", partitions=sorted(partitions), waited_s=bulk.settings.handover_wait_s)

    strategy = ConcurrentStrategy(handle, on_close=client.aclose,
                                  max_in_flight_per_partition=settings.max_in_flight_per_partition,
                                  shutdown_drain_s=settings.shutdown_drain_s)
    worker = ConsumerLoop(settings.runtime, topics=[LISTING_READY], strategy=strategy, accepts={"ListingReady"},
                          registry=registry, on_assign=on_assign, on_revoke=on_revoke, stop=stop)
    return worker, submitter, client, hashes


# The reconciliation loop's `service` label in the pipeline metrics (its consumer group is
# `<group>-reconciliation`); its dead letters go to the submitter's topic.
RECONCILIATION_LABEL = "submitter-reconciliation"


class MisplacedNotification(ValueError):
    dead_letter_reason = "unexpected_schema"


def build_reconciliation_worker(settings: SubmitterSettings, *, metrics: SpApiMetrics | None = None,
                                pipeline: PipelineMetrics | None = None,
                                stop: StopSignal | None = None) -> tuple[ConsumerLoop, Reconciler]:
    """The reconciliation loop: accepted submissions and notifications in, ListingObserved out.
    `pipeline`: the submitter loop's metrics, relabelled, so /metrics shows this loop too."""
    metrics = metrics or SpApiMetrics(CollectorRegistry())
    client = SpApiClient(settings.client, endpoints=settings.endpoints, on_refused=metrics.mode_violation)
    # No limiter given: one of its own, as getListingsItem has its own usage plan, apart from the PUTs'.
    reconciler = Reconciler(SpApiPorts(accounts=settings.accounts, transport=client, endpoints=settings.endpoints,
                                       observer=metrics), policy=settings.reconcile)

    async def handle(message: Incoming) -> list[Outgoing | RawOutgoing]:
        if message.schema == NOTIFICATION_RECORD:
            if message.topic != LISTING_NOTIFICATION_RECEIVED:
                raise MisplacedNotification(f"an Amazon notification on {message.topic}")
            note = message.event
            woken = reconciler.notified(note["seller_id"], note["marketplace_id"], note["sku"])
            log.info("amazon notification", notification_type=note["type"], seller_id=note["seller_id"],
                     marketplace_id=note["marketplace_id"], reference=note["sku"], values=note["values"],
                     notification_id=note["notification_id"], woken=woken)
            return []
        completed = message.event
        reconciler.supersede(completed)
        if not wants(completed):
            return []
        observation = await reconciler.observe(completed)
        if observation is None:  # a newer submission of the listing took over
            return []
        key = outcome_key(completed)
        log.info("listing observed", seller_id=completed["seller_id"], marketplace_id=completed["marketplace_id"],
                 reference=completed["reference"], run_id=completed.get("run_id"), state=observation.state,
                 ended_by=observation.ended_by, looks=observation.looks, request_id=observation.request_id,
                 error_code=observation.error_code)
        out: list[Outgoing | RawOutgoing] = [
            Outgoing(LISTING_STATE_OBSERVED, key, "ListingObserved", observed_event(completed, observation))]
        if observation.state == LISTING_ERROR and completed["mode"] == "production":
            # Amazon no longer holds what it accepted: forget the hash, so the next run resends.
            out.append(RawOutgoing(LISTING_ACCEPTED_HASHES, key, None))
        return out

    runtime = replace(settings.runtime, group_id=f"{settings.runtime.group_id}-reconciliation", metrics_port=None)
    # Stopping cancels the looks at once (a GET can be made again); nothing to drain for long.
    strategy = ConcurrentStrategy(handle, on_close=client.aclose,
                                  max_in_flight_per_partition=settings.max_in_flight_per_partition,
                                  revoke_drain_s=1.0, shutdown_drain_s=1.0)
    worker = ConsumerLoop(runtime, topics=[LISTING_SUBMISSION_COMPLETED, LISTING_NOTIFICATION_RECEIVED],
                          strategy=strategy, accepts={"SubmissionCompleted", NOTIFICATION_RECORD},
                          topic_codecs={LISTING_NOTIFICATION_RECEIVED: NotificationCodec()}, metrics=pipeline,
                          stop=stop)
    return worker, reconciler


def run(settings: SubmitterSettings, *, registry: CollectorRegistry | None = None,
        stop: StopSignal | None = None) -> None:
    require_topics(settings.runtime, [settings.runtime.topic(t) for t in WORKER_TOPICS["submitter"]])
    stop = stop or StopSignal()
    registry = registry or CollectorRegistry()
    worker, submitter, _client, hashes = build_worker(settings, registry=registry, stop=stop)
    journal = submitter.bulk.journal if isinstance(submitter.bulk, BulkLane) else None
    if journal is not None:
        from catalog_sync.submitter.feeds_journal import KafkaFeedJournal

        assert isinstance(journal, KafkaFeedJournal)  # the one build_worker made
    reconciling = None
    if settings.reconcile is not None:
        # One set of SP-API metrics per process: the GETs are counted with the PUTs.
        assert isinstance(submitter.ports.observer, SpApiMetrics)
        reconciliation, _ = build_reconciliation_worker(
            settings, metrics=submitter.ports.observer, pipeline=worker.metrics.labelled(RECONCILIATION_LABEL), stop=stop)
        reconciling = threading.Thread(target=_reconcile, args=(reconciliation, stop), name="reconciliation",
                                       daemon=True)
    if hashes is not None:
        hashes.start()
        hashes.wait_until_current(timeout_s=60)
        log.info("accepted-hash table loaded", listings=len(hashes.hashes))
    if journal is not None:
        journal.start()
        journal.wait_until_current(timeout_s=60)
        log.info("feed journal loaded", feeds_in_flight=len(journal.records()))
    if reconciling is not None:
        reconciling.start()
    try:
        worker.run()  # the strategy closes the SP-API client on its event loop at the end
    finally:
        stop.set()
        if reconciling is not None:
            reconciling.join(30)
        if hashes is not None:
            hashes.close()
        if journal is not None:
            journal.close()


def _reconcile(worker: ConsumerLoop, stop: StopSignal) -> None:
    try:
        worker.run()
    except Exception:
        log.exception("reconciliation loop stopped; stopping the submitter")
        stop.set()
