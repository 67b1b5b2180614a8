"""The one consumer loop every worker runs: poll → decode → dead-letter → handle → produce → flush → commit.

How the decoded messages are handled is the loop's strategy: `batch_strategy.BatchStrategy` (a
batch at a time, in this thread: validator, recorder) or `concurrent_strategy.ConcurrentStrategy`
(many async handlers at once: submitter). Everything else is here, once: consumer and producer,
decoding, dead letters and their budget, offsets, commits, back-pressure, rebalances, the stop on
SIGTERM/SIGINT, consumer lag and the shared pipeline metrics.

- At-least-once: an offset is committed (`offset + 1`) only when it and every offset before it in
  its partition are done, and their outputs and dead letters are confirmed by the broker (flush
  before commit). Outputs the broker did not confirm are kept and sent again, in order, before
  anything newer; meanwhile every partition is paused, so nothing new piles up behind them.
- Commits happen on the strategy's cadence, on partition revoke (after the strategy wound the
  partitions' messages down; sent without waiting, as kafka-python runs rebalance callbacks on its
  IO thread, which cannot block on itself) and on the stop, before closing.
- A revoked partition is handed back positioned at its first unfinished message and unpaused: the
  client keeps the position and pause of a partition it gets back in the same rebalance (eager
  protocol, as in Java), so messages given up at the revoke would otherwise be skipped.
- Undecodable bytes go to `<service>.dlq` with the raw payload; so do messages a handler fails
  on, with the reason the exception names (`dead_letter_reason`) or `handler_error`.
- A worker whose positions live outside Kafka (the recorder: in its read store, through
  `on_assign`) can have every assigned partition sought there again (`reposition`) when that
  state may have lost writes; nothing is handed out until it is.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry

from .bus import Bus, BusError, Consumer, DeliveryError, KafkaBus, Producer, Record, TopicPartition
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


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event to produce. `topic` is the name without TOPIC_PREFIX."""

    topic: str
    key: str | None
    schema: str
    event: dict


@dataclass(frozen=True, slots=True)
class RawOutgoing:
    """A record produced as given (no Avro): state/changelog topics. `topic` without TOPIC_PREFIX."""

    topic: str
    key: str | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Polled:
    """A decoded message with the record it came from (a dead letter keeps the record's bytes)."""

    record: Record
    message: Incoming


class RetryableError(Exception):
    """Raised by a handler when the failure is transient (database down): the message is retried
    after a pause instead of being dead-lettered."""


class Reposition(RetryableError):
    """Raised by a handler whose positions live in its own store (returned by `on_assign`) when
    that store failed or no longer holds what was written to it: the work in hand is dropped and
    every assigned partition is sought to where `on_assign` says before anything else is handled.
    Retrying the batch in hand instead would skip whatever the store lost before it."""


def dead_letter_reason(exc: BaseException) -> str:
    """The reason a message a handler failed on is dead-lettered with: the exception's own
    `dead_letter_reason` when it names one (the submitter refusing a request bound for the wrong
    Amazon host), else `handler_error`."""
    reason = getattr(exc, "dead_letter_reason", None)
    return reason if isinstance(reason, str) and reason else "handler_error"


class StopSignal:
    """Set by SIGTERM/SIGINT (or by a test) to make the loop finish its work in hand, commit and close."""

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


class PartitionProgress:
    """Offsets of one partition in the order they were polled; which are done; the commit point."""

    __slots__ = ("_order", "_done", "next_commit", "committed")

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._done: set[int] = set()
        self.next_commit: int | None = None  # offset + 1 of the contiguous completed prefix
        self.committed: int | None = None

    @property
    def in_flight(self) -> int:
        return len(self._order) - len(self._done)

    def started(self, offset: int) -> None:
        self._order.append(offset)

    def finished(self, offset: int) -> None:
        self._done.add(offset)
        while self._order and self._order[0] in self._done:
            first = self._order.popleft()
            self._done.discard(first)
            self.next_commit = first + 1

    def first_unfinished(self) -> int | None:
        """The oldest offset polled and not done yet: where reading must resume."""
        return self._order[0] if self._order else None

    def to_commit(self) -> int | None:
        """The offset to commit now, if the prefix moved since the last commit."""
        if self.next_commit is not None and self.next_commit != self.committed:
            return self.next_commit
        return None


class Strategy(Protocol):
    """How a ConsumerLoop handles what it polls. Every method is called on the loop's thread; a
    strategy hands each message it is done with to `loop.finish`."""

    commit_interval_s: float  # flush and commit at most this often (0: after every poll)

    @property
    def max_in_flight_per_partition(self) -> int | None:
        """Unfinished messages that pause a partition (None: never); the loop only reads it."""

    def start(self, loop: ConsumerLoop) -> None:
        """Before the first poll."""

    def poll_request(self) -> tuple[int, int]:
        """(timeout_ms, max_records) of the next poll."""

    def submit(self, records: list[Record]) -> None:
        """Polled records to handle, in poll order; `loop.decode` makes messages of them when
        their turn comes."""

    def poll(self) -> None:
        """After every poll: finish what is due."""

    def revoke(self, partitions: set[TopicPartition]) -> None:
        """Wind down the partitions' messages: finish what can be, drop the rest (their next
        owner replays them). The loop then commits what is done."""

    def lose(self, partitions: set[TopicPartition]) -> None:
        """Drop the partitions' messages at once: nothing can be committed for them any more."""

    def shutdown(self) -> None:
        """The stop: finish or give back the work in hand. The loop then commits."""

    def close(self) -> None:
        """After the last commit, or a fatal error: release what `start` took."""


class ConsumerLoop:
    """`run()` polls `topics` (names without TOPIC_PREFIX) and hands what it decodes to `strategy`.
    `accepts` limits the record names handled (others are dead-lettered as unexpected_schema);
    `on_assign` may return offsets to seek to, `on_revoke` hears of partitions taken away."""

    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        topics: Iterable[str],
        strategy: Strategy,
        accepts: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        metrics: PipelineMetrics | None = None,
        codec: AvroCodec | None = None,
        topic_codecs: Mapping[str, AvroCodec] | None = None,
        on_assign: Callable[[list[TopicPartition]], dict[TopicPartition, int] | None] | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        stop: StopSignal | None = None,
        bus: Bus | None = None,
        retry_pause_s: float = 1.0,
    ):
        self.settings = settings
        self.service = settings.service
        self.topics = list(topics)
        self.strategy = strategy
        # `metrics`: another loop's, relabelled (PipelineMetrics.labelled), to share its registry.
        self.registry = metrics.registry if metrics else registry or CollectorRegistry()
        self.metrics = metrics or PipelineMetrics(self.registry, self.service)
        self.codec = codec or AvroCodec()
        # A topic whose values are not (only) Avro, e.g. Amazon's notification JSON, by topic name.
        self._topic_codecs = {settings.topic(t): c for t, c in (topic_codecs or {}).items()}
        self.stop = stop or StopSignal()
        self.metrics_server: MetricsServer | None = None
        self._bus = bus or KafkaBus(settings)
        self._accepts = set(accepts) if accepts else None
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._unprefixed = {settings.topic(t): t for t in self.topics}
        self._dead_letters = DeadLetters(self.service, settings.topic(dead_letter_topic(self.service)), self.codec,
                                         self.metrics, settings.dead_letters_per_minute)
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._paused: set[TopicPartition] = set()
        # Partitions whose position `on_assign` has not given yet (it raised RetryableError, or a
        # handler asked to reposition): paused, and nothing polled from them is handled.
        self._unpositioned: set[TopicPartition] = set()
        self._retry_pause_s = retry_pause_s
        self._next_position_try = 0.0
        self._unsent: list[tuple] = []  # outputs the producer has not taken or confirmed, in order
        self._consumer: Consumer | None = None  # opened by run()
        self._producer: Producer | None = None
        # Per-message counters: their labelled children looked up once, not for every message.
        self._duration = self.metrics.duration.labels(self.metrics.service)
        self._counters: dict[tuple[str, str], object] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Run until stopped, then commit what is done and close. Raises DeadLetterFlood (and
        other fatal errors) after closing."""
        self.stop.install()
        try:
            self.strategy.start(self)
            if self.settings.metrics_port is not None:
                self.metrics_server = MetricsServer(self.registry, self.settings.metrics_port,
                                                    self.settings.metrics_host)
                log.info("metrics served", port=self.metrics_server.port)
            self._consumer = self._bus.consumer(list(self._unprefixed), on_assign=self._assigned,
                                                on_revoke=self._revoked, on_lost=self._lost)
            self._producer = self._bus.producer()
            self.metrics.up.labels(self.metrics.service).set(1)
            # `loop` tells a process's loops apart (the submitter runs its reconciliation beside it).
            log.info("worker started", loop=self.metrics.service, topics=self.topics, group=self.settings.group_id,
                     strategy=type(self.strategy).__name__)
            apply_worker_gc_policy()
            self._loop()
            self.strategy.shutdown()
            self._flush_and_commit()
        finally:
            self.metrics.up.labels(self.metrics.service).set(0)
            self._close()

    def _loop(self) -> None:
        strategy, consumer = self.strategy, self._consumer
        assert consumer is not None  # run() opened it
        next_commit = next_lag = 0.0
        while not self.stop.is_set():
            if self._unpositioned and time.monotonic() >= self._next_position_try:
                self._position()
            timeout_ms, max_records = strategy.poll_request()
            records = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
            if records:
                self._take(records)
            if self.stop.is_set():
                return  # run() has the strategy finish the work in hand, then commits
            strategy.poll()
            now = time.monotonic()
            if now >= next_commit:
                self._flush_and_commit()
                next_commit = now + strategy.commit_interval_s
            self._apply_backpressure()
            if now >= next_lag:
                self._refresh_lag()
                next_lag = now + LAG_REFRESH_SECONDS

    def _close(self) -> None:
        try:
            self.strategy.close()
        finally:
            if self._consumer is not None:
                self._consumer.close()  # before the producer: closing may still revoke partitions
            if self._producer is not None:
                self._producer.close()
            if self.metrics_server is not None:
                self.metrics_server.close()
            log.info("worker stopped")

    # -- in: poll → decode ------------------------------------------------------------------
    def _take(self, records: list[Record]) -> None:
        if self._unpositioned:  # fetched before the pause took effect: read again once positioned
            records = [r for r in records if (r.topic, r.partition) not in self._unpositioned]
        progress_of = self._progress
        for record in records:
            tp = (record.topic, record.partition)
            progress = progress_of.get(tp)
            if progress is None:  # polled just before a revoke/assign cycle settled
                progress = progress_of[tp] = PartitionProgress()
            progress.started(record.offset)
        self.strategy.submit(records)

    def decode(self, records: list[Record]) -> list[Polled]:
        """Messages of records taken into handling, counted as consumed; the undecodable ones go
        to the dead-letter topic with their raw payload. Strategies call it when the records'
        turn comes: the batch strategy once its linger is over, so the polls topping a batch up
        do not wait behind decoding, and records it drops on a revoke are not counted."""
        started = time.perf_counter()
        polled, dead = [], []
        per_topic: dict[str, int] = {}
        decode = self._decode
        for record in records:
            per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
            try:
                polled.append(Polled(record, decode(record)))
            except DecodeError as exc:
                dead.append((record, exc.reason, exc.detail))
        for topic, count in per_topic.items():
            self._counter("consumed", topic).inc(count)
        if dead:
            self.finish([], [], dead, started)  # timed like any message handled: the histogram counts every one
        return polled

    def _decode(self, record: Record) -> Incoming:
        schema, event = self._topic_codecs.get(record.topic, self.codec).decode(record.value)
        if self._accepts is not None and schema not in self._accepts:
            raise DecodeError("unexpected_schema", f"{schema} is not handled by {self.service}")
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return Incoming(self._unprefixed.get(record.topic, record.topic), record.partition, record.offset, key,
                        schema, event)

    # -- out: what strategies call -----------------------------------------------------------
    def encode(self, outputs: Sequence[Outgoing | RawOutgoing]) -> list[tuple]:
        """The (topic, key, value) records of a handler's outputs. Raises on an event the codec
        refuses: a handler bug, dead-lettered like one."""
        topic, encode = self.settings.topic, self.codec.encode
        return [(topic(o.topic), o.key, o.value) if isinstance(o, RawOutgoing)
                else (topic(o.topic), o.key, encode(o.schema, o.event)) for o in outputs]

    def handler_failed(self, polled: Polled, exc: BaseException) -> tuple[Record, str, str]:
        """What `finish` takes for a message whose handler raised."""
        message = polled.message
        log.warning("handler failed", topic=message.topic, partition=message.partition, offset=message.offset,
                    reference=message.event.get("reference"), error=repr(exc)[:300])
        return polled.record, dead_letter_reason(exc), repr(exc)

    def finish(self, handled: list[Polled], outputs: list[tuple], failed: list[tuple[Record, str, str]],
               started: float | None = None) -> None:
        """Messages done with: `handled` ones, whose encoded `outputs` go out, and `failed` ones
        (record, reason, detail), which go to the dead-letter topic. Each is counted once, under
        its own topic, and timed from `started` (perf_counter) if given. Their offsets are
        committed once all this is confirmed."""
        if outputs:
            self.produce(outputs)
        if failed:
            self._send(self._dead_letters.records(failed))  # counts them; DeadLetterFlood past the budget
        if handled:
            self._count_handled(handled)
        if started is not None:
            elapsed = time.perf_counter() - started
            observe = self._duration.observe
            for _ in range(len(handled) + len(failed)):
                observe(elapsed)
        progress_of = self._progress
        for record, _, _ in failed:
            progress = progress_of.get((record.topic, record.partition))
            if progress is not None:
                progress.finished(record.offset)
        for polled in handled:
            record = polled.record
            progress = progress_of.get((record.topic, record.partition))
            if progress is not None:
                progress.finished(record.offset)

    def produce(self, outputs: list[tuple]) -> None:
        """Send encoded outputs without settling any offset: those of a message whose partition
        was taken away after its handler finished (an SP-API answer must not be lost)."""
        per_topic: dict[str, int] = {}
        for topic, _key, _value in outputs:
            per_topic[topic] = per_topic.get(topic, 0) + 1
        self._send(outputs)
        for topic, count in per_topic.items():
            self._counter("produced", topic).inc(count)

    def _count_handled(self, handled: list[Polled]) -> None:
        per_topic: dict[str, int] = {}
        for polled in handled:
            topic = polled.record.topic
            per_topic[topic] = per_topic.get(topic, 0) + 1
            message = polled.message
            log.debug("message handled", topic=message.topic, partition=message.partition, offset=message.offset,
                      event_id=message.event.get("event_id"), run_id=message.event.get("run_id"),
                      reference=message.event.get("reference"))
        for topic, count in per_topic.items():
            self._counter("ok", topic).inc(count)

    def _counter(self, kind: str, topic: str):
        """pipeline_messages_{consumed,produced}_total, or processed_total with outcome `kind`."""
        child = self._counters.get((kind, topic))
        if child is None:
            if kind in ("consumed", "produced"):
                child = getattr(self.metrics, kind).labels(self.metrics.service, topic)
            else:
                child = self.metrics.processed.labels(self.metrics.service, topic, kind)
            self._counters[(kind, topic)] = child
        return child

    def _send(self, records: list[tuple]) -> None:
        """Hand records to the producer; while the broker is away they wait in `_unsent` (in
        order) and go out before anything newer, so nothing handled is committed without them."""
        if self._unsent:
            records, self._unsent = self._unsent + records, []
        assert self._producer is not None  # messages are only handled while run() has it open
        send = self._producer.send
        for index, record in enumerate(records):
            try:
                send(*record)
            except DeliveryError:
                self._unsent = records[index:]
                return

    # -- commits, back-pressure, rebalances ----------------------------------------------------
    def _flush_and_commit(self, partitions: Iterable[TopicPartition] | None = None, *, wait: bool = True) -> None:
        """Flush the outputs, then commit the done prefixes of `partitions` (all by default);
        `wait=False` sends the commit without waiting for its answer (inside rebalance callbacks)."""
        chosen = self._progress if partitions is None else {tp: self._progress[tp] for tp in partitions
                                                             if tp in self._progress}
        offsets = {tp: o for tp, p in chosen.items() if (o := p.to_commit()) is not None}
        self._send([])  # records queued while the broker was away go first
        assert self._producer is not None and self._consumer is not None  # run() opened them
        try:
            self._producer.flush()  # outputs first: a committed offset never outruns its outcome
        except DeliveryError as exc:
            # Their messages are done: keep the records and send them again, never commit past them.
            self._unsent[:0] = exc.undelivered
            log.error("producing outputs failed; not committing until they are delivered", error=str(exc),
                      undelivered=len(self._unsent))
            return
        except BusError as exc:
            log.error("producing outputs failed; not committing", error=str(exc))
            return
        if self._unsent:
            log.warning("broker unreachable; not committing", undelivered=len(self._unsent))
            return
        if not offsets:
            return
        if not wait:
            self._consumer.commit_async(offsets)
            return
        try:
            self._consumer.commit(offsets)
        except BusError as exc:
            # Typically a rebalance took the partitions: their new owner replays from its last commit.
            log.warning("commit failed; messages since the last commit may be replayed", error=str(exc))
            return
        self.metrics.commits.labels(self.metrics.service).inc()
        for tp, offset in offsets.items():
            chosen[tp].committed = offset

    def _apply_backpressure(self) -> None:
        """Pause a partition with too much in flight until its backlog halves, and every partition
        while outputs wait to be delivered. Paused partitions keep the consumer in its group."""
        limit = self.strategy.max_in_flight_per_partition
        undelivered = bool(self._unsent)
        if limit is None and not undelivered and not self._paused and not self._unpositioned:
            return
        pause, resume = [], []
        for tp, progress in self._progress.items():
            paused = tp in self._paused
            busy = undelivered or tp in self._unpositioned or (limit is not None and (
                progress.in_flight >= limit or (paused and progress.in_flight > limit // 2)))
            if busy and not paused:
                pause.append(tp)
            elif paused and not busy:
                resume.append(tp)
        assert self._consumer is not None  # run() opened it
        if pause:
            self._consumer.pause(pause)
            self._paused.update(pause)
            reason = ("outputs not delivered" if undelivered else "not positioned" if self._unpositioned & set(pause)
                      else "backlog in flight")
            log.info("partitions paused", partitions=sorted(pause), reason=reason, bound=limit)
        if resume:
            self._consumer.resume(resume)
            self._paused.difference_update(resume)
            log.info("partitions resumed", partitions=sorted(resume))

    def _assigned(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        log.info("partitions assigned", partitions=sorted(partitions))
        for tp in partitions:
            self._progress[tp] = PartitionProgress()
            self._paused.discard(tp)
            self._unpositioned.discard(tp)
        if self._on_assign is None:
            return None
        try:
            return self._positions_of(partitions)
        except RetryableError as exc:
            # Reading from Kafka's committed offsets instead could skip what the store lost.
            log.warning("positions unavailable; partitions held until they are", partitions=sorted(partitions),
                        error=str(exc))
            self._hold_unpositioned(partitions)
            return None

    def _positions_of(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self._on_assign is not None  # callers check it
        seek = self._on_assign([(self._unprefixed.get(t, t), p) for t, p in partitions]) or {}
        return {(self.settings.topic(t), p): o for (t, p), o in seek.items()}

    def reposition(self, reason: str) -> None:
        """Drop the work in hand and, before handing out anything more, seek every assigned
        partition to the offset `on_assign` gives for it (tried again every `retry_pause_s` while
        it raises RetryableError; the partitions stay paused meanwhile, which keeps the group
        membership). For a handler whose positions live in a store that failed or lost writes."""
        if self._on_assign is None:
            raise RuntimeError("reposition needs on_assign: the positions to seek to")
        assert self._consumer is not None  # run() opened it
        partitions = sorted(self._consumer.assignment())
        log.warning("repositioning every assigned partition", reason=reason, partitions=sorted(partitions))
        self.strategy.lose(set(partitions))
        self._hold_unpositioned(partitions)
        self._next_position_try = 0.0

    def _hold_unpositioned(self, partitions: list[TopicPartition]) -> None:
        self._unpositioned.update(partitions)
        self._next_position_try = time.monotonic() + self._retry_pause_s
        if self._consumer is not None:
            self._consumer.pause(partitions)
            self._paused.update(partitions)

    def _position(self) -> None:
        partitions = sorted(self._unpositioned)
        try:
            seek = self._positions_of(partitions)
        except RetryableError as exc:
            log.warning("positions still unavailable; partitions stay paused", error=str(exc),
                        retry_in_s=self._retry_pause_s)
            self._next_position_try = time.monotonic() + self._retry_pause_s
            return
        missing = [tp for tp in partitions if tp not in seek]
        if missing:
            raise RuntimeError(f"on_assign gave no position for {missing}: cannot reposition")
        assert self._consumer is not None  # run() opened it
        for tp in partitions:
            self._consumer.seek(tp, seek[tp])
            self._progress[tp] = PartitionProgress()  # what was started there is dropped
        self._unpositioned.difference_update(partitions)
        log.info("partitions repositioned", offsets={f"{t}/{p}": o for (t, p), o in sorted(seek.items())})

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", partitions=sorted(partitions))
        revoked = set(partitions)
        self.strategy.revoke(revoked)
        self._flush_and_commit(revoked, wait=False)
        self._hand_back(revoked)
        self._forget(partitions)

    def _lost(self, partitions: list[TopicPartition]) -> None:
        """The group dropped us (e.g. the broker was unreachable past the session timeout): no
        commit is possible, so their messages stop now; the partitions' next owner replays them.
        Outputs already produced (or waiting in `_unsent`) still go out: duplicates are harmless."""
        log.warning("partitions lost", partitions=sorted(partitions))
        lost = set(partitions)
        self.strategy.lose(lost)
        self._hand_back(lost)
        self._forget(partitions)

    def _hand_back(self, partitions: set[TopicPartition]) -> None:
        """Position each partition at its first unfinished message and unpause it. If this member
        gets it back in the same rebalance, the client keeps both (a new owner starts from the
        committed offset instead), and the loop, which forgets the partition now, would otherwise
        read on past the messages it gave up, or never resume it."""
        assert self._consumer is not None  # called back by the consumer run() opened
        rewound = {}
        for tp in partitions:
            progress = self._progress.get(tp)
            restart = progress.first_unfinished() if progress is not None else None
            if restart is not None:
                self._consumer.seek(tp, restart)
                rewound[tp] = restart
        paused = partitions & self._paused
        if paused:
            self._consumer.resume(paused)
        if rewound:
            log.info("partitions rewound to their first unfinished message", offsets=sorted(rewound.items()))

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._progress.pop(tp, None)
            self._paused.discard(tp)
            self._unpositioned.discard(tp)
            self.metrics.forget_partition(*tp)
        if self._on_revoke:
            self._on_revoke([(self._unprefixed.get(t, t), p) for t, p in partitions])

    def _refresh_lag(self) -> None:
        assert self._consumer is not None  # run() opened it
        for (topic, partition), lag in self._consumer.lag().items():
            self.metrics.lag.labels(self.metrics.service, topic, str(partition)).set(lag)
