"""The worker loop every batch-style service runs: poll → decode → handle → produce → flush → commit.

At-least-once: offsets (`offset + 1`) are committed only after every output of the batch, dead
letters included, is confirmed by the broker. Handlers are plain functions over decoded events and
must be idempotent (a crash between flush and commit replays the batch).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry

from .bus import BusConsumer, BusError, BusProducer, Record, TopicPartition
from .codec import AvroCodec, DecodeError
from .config import RuntimeSettings
from .dead_letters import DeadLetters
from .gc_policy import apply_worker_gc_policy
from .metrics import MetricsServer, PipelineMetrics
from .topics import dead_letter_topic

log = structlog.get_logger()

LAG_REFRESH_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Incoming:
    """One decoded message. `topic` is the name without TOPIC_PREFIX."""

    topic: str
    partition: int
    offset: int
    key: str | None
    schema: str
    event: dict


class RecordDecoder:
    """A consumed record → Incoming, by the rule both worker loops share: Avro of a known schema
    the worker accepts, else DecodeError whose reason the dead letter carries."""

    def __init__(self, codec: AvroCodec, accepts: Iterable[str] | None, service: str, unprefixed: dict[str, str]):
        self._codec = codec
        self._accepts = set(accepts) if accepts else None
        self._service = service
        self._unprefixed = unprefixed

    def __call__(self, record: Record) -> Incoming:
        schema, event = self._codec.decode(record.value)
        if self._accepts is not None and schema not in self._accepts:
            raise DecodeError("unexpected_schema", f"{schema} is not handled by {self._service}")
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return Incoming(self._unprefixed.get(record.topic, record.topic), record.partition, record.offset, key,
                        schema, event)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to produce. `topic` is the name without TOPIC_PREFIX."""

    topic: str
    key: str | None
    schema: str
    event: dict


class RetryableError(Exception):
    """Raised by a handler when the failure is transient (database down): the batch is retried
    after a pause instead of being dead-lettered."""


BatchHandler = Callable[[list[Incoming]], list[Outgoing]]


class StopSignal:
    """Set by SIGTERM/SIGINT (or by a test) to make the loop finish its batch, commit and close."""

    def __init__(self):
        self._event = threading.Event()

    def set(self, *_args) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.set)
            signal.signal(signal.SIGINT, self.set)


class Worker:
    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        topics: Iterable[str],
        handle_batch: BatchHandler,
        accepts: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        codec: AvroCodec | None = None,
        on_assign: Callable[[list[TopicPartition]], dict[TopicPartition, int] | None] | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        stop: StopSignal | None = None,
        retry_pause_s: float = 1.0,
    ):
        self.settings = settings
        self.service = settings.service
        self.topics = list(topics)
        self.handle_batch = handle_batch
        self.registry = registry or CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry, self.service)
        self.codec = codec or AvroCodec()
        self.stop = stop or StopSignal()
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._retry_pause_s = retry_pause_s
        self._unprefixed = {settings.topic(t): t for t in self.topics}
        self._decode_record = RecordDecoder(self.codec, accepts, self.service, self._unprefixed)
        self._dead_letters = DeadLetters(self.service, settings.topic(dead_letter_topic(self.service)), self.codec,
                                         self.metrics, settings.dead_letters_per_minute)
        self.metrics_server: MetricsServer | None = None
        self._revoked_while_gathering: set[TopicPartition] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Run until stopped. Raises DeadLetterFlood (and other fatal errors) after closing cleanly."""
        self.stop.install()
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(self.registry, self.settings.metrics_port, self.settings.metrics_host)
            log.info("metrics served", port=self.metrics_server.port)
        consumer = BusConsumer(
            self.settings,
            list(self._unprefixed),
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        producer = BusProducer(self.settings)
        self.metrics.up.labels(self.service).set(1)
        log.info("worker started", topics=self.topics, group=self.settings.group_id)
        apply_worker_gc_policy()
        next_lag_refresh = 0.0
        try:
            while not self.stop.is_set():
                records = consumer.poll(timeout_ms=500, max_records=self.settings.max_poll_records)
                if records:
                    records = self._gather(consumer, records)
                if records:
                    self._process(consumer, producer, records)
                if time.monotonic() >= next_lag_refresh:
                    self._refresh_lag(consumer)
                    next_lag_refresh = time.monotonic() + LAG_REFRESH_SECONDS
        finally:
            self.metrics.up.labels(self.service).set(0)
            producer.close()
            consumer.close()
            if self.metrics_server:
                self.metrics_server.close()
            log.info("worker stopped")

    def _assigned(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        log.info("partitions assigned", partitions=sorted(partitions))
        if self._on_assign is None:
            return None
        seek = self._on_assign([(self._unprefixed.get(t, t), p) for t, p in partitions]) or {}
        return {(self.settings.topic(t), p): o for (t, p), o in seek.items()}

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        # Offsets are committed after every batch, so nothing processed is left uncommitted here.
        log.info("partitions revoked", partitions=sorted(partitions))
        if self._revoked_while_gathering is not None:
            self._revoked_while_gathering.update(partitions)
        for topic, partition in partitions:
            self.metrics.forget_partition(topic, partition)
        if self._on_revoke:
            self._on_revoke([(self._unprefixed.get(t, t), p) for t, p in partitions])

    def _refresh_lag(self, consumer: BusConsumer) -> None:
        for (topic, partition), lag in consumer.lag().items():
            self.metrics.lag.labels(self.service, topic, str(partition)).set(lag)

    # -- one batch -------------------------------------------------------------------------
    def _gather(self, consumer: BusConsumer, records: list[Record]) -> list[Record]:
        """Top a small poll up for `batch_linger_ms`. A trickle of events (a pipeline running at
        its own pace) otherwise makes batches of a few events, each paying a whole batch's fixed
        costs: a flush, an offset commit, a database transaction. A full poll goes at once.

        Records held from a partition revoked meanwhile are dropped (its next owner, or this worker
        after a re-assignment, reads them again from the committed offset); records polled after
        the revoke are kept."""
        limit = self.settings.max_poll_records
        deadline = time.monotonic() + self.settings.batch_linger_ms / 1000
        held = records
        try:
            while len(held) < limit and not self.stop.is_set():
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    break
                self._revoked_while_gathering = set()
                more = consumer.poll(timeout_ms=left_ms, max_records=limit - len(held))
                if self._revoked_while_gathering:
                    gone = self._revoked_while_gathering
                    held = [r for r in held if (r.topic, r.partition) not in gone]
                held = held + more
        finally:
            self._revoked_while_gathering = None
        return held

    def _process(self, consumer: BusConsumer, producer: BusProducer, records: list[Record]) -> None:
        started = time.perf_counter()
        for topic in {r.topic for r in records}:
            self.metrics.consumed.labels(self.service, topic).inc(sum(1 for r in records if r.topic == topic))
        incoming, dead = self._decode(records)
        while True:
            try:
                outgoing, handler_dead = self._handle(incoming, records)
                self._produce(producer, outgoing, dead + handler_dead)
                break
            except (RetryableError, BusError) as exc:
                if self.stop.is_set():
                    # Nothing committed: the batch is replayed by whoever owns the partitions next.
                    raise
                log.warning("batch failed, retrying", error=str(exc), pause_s=self._retry_pause_s)
                self.stop.wait(self._retry_pause_s)
        try:
            consumer.commit(_next_offsets(records))
            self.metrics.commits.labels(self.service).inc()
        except BusError as exc:
            # Typically a rebalance took the partitions: the new owner replays the batch (idempotent).
            log.warning("commit failed; the batch will be replayed", error=str(exc))
        for message in incoming:
            log.debug("message handled", topic=message.topic, partition=message.partition,
                      offset=message.offset, event_id=message.event.get("event_id"),
                      run_id=message.event.get("run_id"), reference=message.event.get("reference"))
        self.metrics.duration.labels(self.service).observe(time.perf_counter() - started)
        ok = len(records) - len(dead)
        self.metrics.processed.labels(self.service, records[0].topic, "ok").inc(ok)

    def _decode(self, records: list[Record]) -> tuple[list[Incoming], list[tuple[Record, str, str]]]:
        incoming, dead = [], []
        for record in records:
            try:
                incoming.append(self._decode_record(record))
            except DecodeError as exc:
                dead.append((record, exc.reason, exc.detail))
        return incoming, dead

    def _handle(self, incoming: list[Incoming], records: list[Record]) -> tuple[list[tuple[str, str | None, bytes]], list]:
        """Outputs encoded and ready to send; on a handler bug, isolate the failing messages."""
        if not incoming:
            return [], []
        try:
            return self._encode(self.handle_batch(incoming)), []
        except RetryableError:
            raise
        except Exception:
            log.exception("batch handler failed; retrying message by message")
        encoded, dead = [], []
        originals = {(r.partition, r.offset, r.topic): r for r in records}
        for message in incoming:
            try:
                encoded.extend(self._encode(self.handle_batch([message])))
            except RetryableError:
                raise
            except Exception as exc:
                log.warning("handler failed on one message", topic=message.topic, offset=message.offset,
                            reference=message.event.get("reference"), error=repr(exc)[:300])
                # The dead letter keeps the original bytes so the message can be replayed once fixed.
                record = originals[(message.partition, message.offset, self.settings.topic(message.topic))]
                dead.append((record, "handler_error", repr(exc)))
        return encoded, dead

    def _encode(self, outgoing: list[Outgoing]) -> list[tuple[str, str | None, bytes]]:
        return [(self.settings.topic(o.topic), o.key, self.codec.encode(o.schema, o.event)) for o in outgoing]

    def _produce(self, producer: BusProducer, encoded, dead) -> None:
        for topic, key, value in encoded:
            producer.send(topic, key, value)
        if encoded:
            for topic in {t for t, _, _ in encoded}:
                self.metrics.produced.labels(self.service, topic).inc(sum(1 for t, _, _ in encoded if t == topic))
        for topic, key, value in self._dead_letters.records(dead):
            producer.send(topic, key, value)
        producer.flush()


def _next_offsets(records: list[Record]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        if r.offset + 1 > offsets.get(tp, -1):
            offsets[tp] = r.offset + 1
    return offsets
