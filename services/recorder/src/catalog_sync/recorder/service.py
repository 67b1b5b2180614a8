"""Wiring of the recorder worker: the read store, the projection and the runtime's worker loop.

Exactly-once effect over at-least-once delivery: each polled batch is projected in ONE database
transaction together with the consumed offsets; on (re)assignment the consumer seeks to the
offsets stored there, so Kafka's own committed offsets (still committed after every batch, for lag
monitoring) never decide what is applied. A replayed batch is skipped by offset, a re-published
event by event_id.

After any store failure the consumer seeks every assigned partition to the stored offsets again
before anything else is applied, and a batch is applied only if the store's offsets for its
partitions are those the recorder last read or wrote: a store that lost acknowledged commits (a
crash with asynchronous commit, a restore, a failover) gets their events again instead of a gap.
"""

from __future__ import annotations

import threading
import time

import structlog
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.bus import require_topics
from catalog_sync.runtime.config import RuntimeSettings, mask_secrets
from catalog_sync.runtime.consumer_loop import (
    ConsumerLoop,
    Incoming,
    Outgoing,
    Reposition,
    RetryableError,
    StopSignal,
)
from catalog_sync.runtime.topics import (
    CATALOG_ITEM_CHANGED,
    CATALOG_RUN_EVENTS,
    LISTING_STATE_OBSERVED,
    LISTING_SUBMISSION_COMPLETED,
    LISTING_VALIDATION_FAILED,
    WORKER_TOPICS,
)

from .metrics import RecorderMetrics
from .projection import PROJECTED_EVENTS
from .read_model import ReadModel
from .retention import Pruned, Pruner
from .settings import RecorderSettings
from .store import PositionsMoved, ReadStore, StoreUnavailable

log = structlog.get_logger()
SERVICE = "recorder"
TOPICS = (CATALOG_RUN_EVENTS, CATALOG_ITEM_CHANGED, LISTING_VALIDATION_FAILED, LISTING_SUBMISSION_COMPLETED,
          LISTING_STATE_OBSERVED)


class Recorder:
    """The worker's batch handler and assignment hook over one read store."""

    def __init__(self, store: ReadStore, group: str, metrics: RecorderMetrics, default_seller_id: str | None = None):
        self.store = store
        self.group = group
        self.metrics = metrics
        self.default_seller_id = default_seller_id
        # Per partition: the stored offset last read (on assignment) or written (by a batch).
        self._positions: dict[tuple[str, int], int] = {}

    def handle_batch(self, batch: list[Incoming]) -> list[Outgoing]:
        try:
            result = self.store.apply(self.group, batch, self.default_seller_id, expected=self._positions)
        except (StoreUnavailable, PositionsMoved) as exc:
            # Never dead-letter, and never retry the batch in hand: a crashed store may have lost
            # batches before it, which only a seek to its offsets reads again.
            self.metrics.store_failures.labels(
                "unavailable" if isinstance(exc, StoreUnavailable) else "positions_moved").inc()
            raise Reposition(str(exc)) from exc
        for m in batch:
            tp = (m.topic, m.partition)
            self._positions[tp] = max(self._positions[tp], m.offset + 1)
        for kind, n in result.applied.items():
            self.metrics.projected.labels(kind).inc(n)
        if result.duplicates:
            self.metrics.skipped.labels("duplicate").inc(result.duplicates)
            log.info("duplicate events ignored", count=result.duplicates)
        if result.already_applied:
            self.metrics.skipped.labels("already_applied").inc(result.already_applied)
            log.info("replayed messages skipped", count=result.already_applied)
        if result.latest_event_ms is not None:
            self.metrics.lag.set(max(0.0, time.time() - result.latest_event_ms / 1000))
        self.metrics.batch_events.set(len(batch))
        return []

    def on_assign(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Seek every assigned partition to the position stored with the projection. A partition
        the store has never seen starts at the beginning: a fresh read store rebuilds from Kafka.
        Also where the loop repositions after a store failure; RetryableError while it is down."""
        try:
            stored = self.store.offsets(self.group, partitions)
        except StoreUnavailable as exc:
            raise RetryableError(str(exc)) from exc
        seek = {(t, p): stored.get((t, p), 0) for t, p in partitions}
        behind = {f"{t}/{p}": self._positions[(t, p)] - o for (t, p), o in seek.items()
                  if self._positions.get((t, p), 0) > o}
        if behind:  # commits it acknowledged are gone (asynchronous commit, a restore, a failover)
            log.warning("the read store lost applied events; reading them again", events_behind=behind)
        self._positions.update(seek)
        log.info("seeking to stored offsets", offsets={f"{t}/{p}": o for (t, p), o in sorted(seek.items())})
        return seek


def open_store(settings: RecorderSettings) -> ReadStore:
    store = ReadStore(settings.read_store_url, schema=settings.read_store_schema)
    applied = store.migrate()
    if applied:
        log.info("read store migrated", versions=applied, store=store.kind)
    return store


def build_worker(runtime: RuntimeSettings, settings: RecorderSettings, store: ReadStore, *,
                 registry: CollectorRegistry | None = None, stop: StopSignal | None = None) -> ConsumerLoop:
    registry = registry or CollectorRegistry()
    metrics = RecorderMetrics(registry, ReadModel(store, stall_seconds=settings.stall_seconds))
    recorder = Recorder(store, runtime.group_id, metrics, settings.default_seller_id)
    return ConsumerLoop(runtime, topics=TOPICS, strategy=BatchStrategy(recorder.handle_batch),
                        accepts=PROJECTED_EVENTS, registry=registry, on_assign=recorder.on_assign, stop=stop)


def prune_in_background(store: ReadStore, settings: RecorderSettings, stop: threading.Event) -> threading.Thread:
    """Retention beside the projection: one small batch at a time, so the write lock is held
    briefly; a failing store (it may be restarting) is tried again at the next interval."""
    pruner = Pruner(store, settings.retention)

    def loop() -> None:
        while not stop.wait(settings.prune_every_s):
            try:
                total = Pruned()
                while not stop.is_set() and (done := pruner.step()):
                    total.add(done)
                if total:
                    log.info("read store pruned", runs=total.runs, memberships=total.memberships, events=total.events)
            except Exception as exc:  # the projection reports store trouble; pruning waits for the next round
                log.warning("read store pruning failed; trying again later", error=str(exc))

    thread = threading.Thread(target=loop, name="read-store-retention", daemon=True)
    thread.start()
    return thread


def run(runtime: RuntimeSettings, settings: RecorderSettings) -> None:
    log.info("recorder starting", settings=mask_secrets(settings), runtime=mask_secrets(runtime))
    require_topics(runtime, [runtime.topic(t) for t in WORKER_TOPICS["recorder"]])
    store = open_store(settings)
    stop_pruning = threading.Event()
    if settings.retention is not None:
        prune_in_background(store, settings, stop_pruning)
    try:
        build_worker(runtime, settings, store).run()
    finally:
        stop_pruning.set()
        store.close()
