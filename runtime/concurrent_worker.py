"""A worker loop for handlers that wait on the outside world (HTTP calls under rate limits).

The batch Worker (worker.py) handles a polled batch and commits it before polling again: one slow
message holds up everything behind it. Here the poll thread never waits for a handler:

    poll thread                                   loop thread (asyncio)
    poll → decode → schedule handler(message) ──▶ await handler(message) (many concurrently)
    drain completions ◀──────────────────────────  outputs or error
    produce outputs; every commit interval: flush, then commit each partition's
    contiguous completed prefix (offset + 1)

- At-least-once: an offset is committed only when it and every offset before it in its partition
  are handled and their outputs are confirmed by the broker (flush before commit).
- Back-pressure: a partition with more than `max_in_flight_per_partition` messages in flight is
  paused (the consumer keeps polling, heartbeating and serving other partitions) and resumed
  when its backlog halves.
- Revoke and SIGTERM wind handlers down the same way: their asyncio tasks are cancelled at once
  (a message whose work has not begun is given back: the partition's next owner replays it); a
  handler may finish work it cannot abandon (an SP-API call already on the wire, whose answer
  must not be lost) and return its outputs. The worker waits up to `revoke_drain_s` /
  `shutdown_drain_s` for that, drops what still runs, then flushes and commits the prefix.
- Undecodable messages and handler errors go to `<service>.dlq` (DeadLetterBudget caps them);
  a handler raising RetryableError is re-run after `retry_pause_s`.

Handlers return `Outgoing` events (Avro, through the codec) and may return `RawOutgoing` records
for non-event topics such as compacted state topics (value None = tombstone).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry

from .bus import BusConsumer, BusError, BusProducer, DeliveryError, Record, TopicPartition
from .codec import AvroCodec, DecodeError
from .config import RuntimeSettings
from .dead_letters import DeadLetters
from .gc_policy import apply_worker_gc_policy
from .metrics import MetricsServer, PipelineMetrics
from .topics import dead_letter_topic
from .worker import Incoming, Outgoing, RecordDecoder, RetryableError, StopSignal

log = structlog.get_logger()

LAG_REFRESH_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RawOutgoing:
    """A record produced as given (no Avro): state/changelog topics. `topic` without TOPIC_PREFIX."""

    topic: str
    key: str | None
    value: bytes | None


AsyncHandler = Callable[[Incoming], Awaitable[list[Outgoing | RawOutgoing]]]


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

    def to_commit(self) -> int | None:
        """The offset to commit now, if the prefix moved since the last commit."""
        if self.next_commit is not None and self.next_commit != self.committed:
            return self.next_commit
        return None


@dataclass(slots=True)
class _Task:
    record: Record
    message: Incoming
    future: concurrent.futures.Future | None = None
    running: asyncio.Task | None = None  # set on the loop thread by _launch
    cancelled: bool = False


class ConcurrentWorker:
    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        topics: Iterable[str],
        handle: AsyncHandler,
        accepts: Iterable[str] | None = None,
        registry: CollectorRegistry | None = None,
        codec: AvroCodec | None = None,
        on_assign: Callable[[list[TopicPartition]], dict[TopicPartition, int] | None] | None = None,
        on_revoke: Callable[[list[TopicPartition]], None] | None = None,
        stop: StopSignal | None = None,
        max_in_flight_per_partition: int = 2_000,
        commit_interval_s: float = 1.0,
        revoke_drain_s: float = 5.0,
        shutdown_drain_s: float = 20.0,
        retry_pause_s: float = 1.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ):
        self.settings = settings
        self.service = settings.service
        self.topics = list(topics)
        self.handle = handle
        self.registry = registry or CollectorRegistry()
        self.metrics = PipelineMetrics(self.registry, self.service)
        self.codec = codec or AvroCodec()
        self.stop = stop or StopSignal()
        self.max_in_flight = max(1, max_in_flight_per_partition)
        self.commit_interval_s = commit_interval_s
        self.revoke_drain_s = revoke_drain_s
        self.shutdown_drain_s = shutdown_drain_s
        self.retry_pause_s = retry_pause_s
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._unprefixed = {settings.topic(t): t for t in self.topics}
        self._decode_record = RecordDecoder(self.codec, accepts, self.service, self._unprefixed)
        self._dead_letters = DeadLetters(self.service, settings.topic(dead_letter_topic(self.service)), self.codec,
                                         self.metrics, settings.dead_letters_per_minute)
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._tasks: dict[tuple[str, int, int], _Task] = {}
        self._paused: set[TopicPartition] = set()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._unsent: list[tuple] = []  # outputs of finished messages the producer has not taken or confirmed
        self._loop = loop or _new_loop()
        self._loop_thread: threading.Thread | None = None
        self._consumer: BusConsumer | None = None
        self._producer: BusProducer | None = None
        self.metrics_server: MetricsServer | None = None

    # -- the asyncio side ------------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def start_loop(self) -> None:
        if self._loop_thread is None:
            self._loop_thread = threading.Thread(target=self._loop.run_forever, name=f"{self.service}-loop",
                                                 daemon=True)
            self._loop_thread.start()

    def run_in_loop(self, coroutine: Awaitable, timeout_s: float | None = None):
        """Run a coroutine on the handler loop from another thread (set-up and clean-up of
        async resources such as HTTP clients) and return its result."""
        self.start_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def _stop_loop(self) -> None:
        if self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(10)
            self._loop_thread = None

    # -- lifecycle -------------------------------------------------------------------------
    def run(self, on_close: Callable[[], Awaitable] | None = None) -> None:
        """Poll and handle until stopped; `on_close` runs on the loop after the last message."""
        self.stop.install()
        self.start_loop()
        if self.settings.metrics_port is not None:
            self.metrics_server = MetricsServer(self.registry, self.settings.metrics_port, self.settings.metrics_host)
            log.info("metrics served", port=self.metrics_server.port)
        self._consumer = BusConsumer(self.settings, list(self._unprefixed), on_assign=self._assigned,
                                     on_revoke=self._revoked, on_lost=self._lost)
        self._producer = BusProducer(self.settings)
        self.metrics.up.labels(self.service).set(1)
        log.info("worker started", topics=self.topics, group=self.settings.group_id, concurrent=True)
        apply_worker_gc_policy()
        next_commit = next_lag = 0.0
        try:
            while not self.stop.is_set():
                budget = self.settings.max_poll_records
                records = self._consumer.poll(timeout_ms=50 if self._tasks else 500, max_records=budget)
                if records:
                    self._schedule(records)
                self._drain()
                self._apply_backpressure()
                now = time.monotonic()
                if now >= next_commit:
                    self._flush_and_commit()
                    next_commit = now + self.commit_interval_s
                if now >= next_lag:
                    self._refresh_lag()
                    next_lag = now + LAG_REFRESH_SECONDS
            self._shutdown()
        finally:
            self.metrics.up.labels(self.service).set(0)
            try:
                if on_close is not None:
                    self.run_in_loop(on_close(), timeout_s=30)
            finally:
                self._stop_loop()
                self._consumer.close()  # before the producer: closing may still revoke partitions
                self._producer.close()
                if self.metrics_server:
                    self.metrics_server.close()
                log.info("worker stopped")

    def _shutdown(self) -> None:
        log.info("stopping: interrupting messages in flight", in_flight=len(self._tasks))
        self._wind_down(lambda t: True, self.shutdown_drain_s)
        self._drain()  # messages that finished after the last look: their outcomes still go out
        self._flush_and_commit()

    # -- scheduling ------------------------------------------------------------------------
    def _schedule(self, records: list[Record]) -> None:
        for topic in {r.topic for r in records}:
            self.metrics.consumed.labels(self.service, topic).inc(sum(1 for r in records if r.topic == topic))
        dead, started = [], []
        for record in records:
            tp = (record.topic, record.partition)
            progress = self._progress.get(tp)
            if progress is None:  # polled just before a revoke/assign cycle settled
                progress = self._progress[tp] = PartitionProgress()
            progress.started(record.offset)
            try:
                started.append(_Task(record, self._decode_record(record)))
            except DecodeError as exc:
                dead.append((record, exc.reason, exc.detail))
        self._start(started)
        if dead:
            self._dead_letter(dead)
            for record, _, _ in dead:
                self._progress[(record.topic, record.partition)].finished(record.offset)

    def _start(self, tasks: list[_Task], delay_s: float = 0.0) -> None:
        """Hand `tasks` to the loop in ONE cross-thread call: a wake-up of the loop per message
        (run_coroutine_threadsafe) cost a syscall and a GIL hand-over each, ~10% of the CPU at
        1,000 messages/s. Each task gets a concurrent future the poll thread can wait on or cancel."""
        if not tasks:
            return
        for task in tasks:
            record = task.record
            self._tasks[(record.topic, record.partition, record.offset)] = task
            task.future = concurrent.futures.Future()
            task.future.add_done_callback(lambda fut, t=task: self._done.put((t, fut)))
        # The futures travel with their tasks: `_complete` (poll thread) may drop task.future first.
        self._loop.call_soon_threadsafe(self._launch, [(task, task.future) for task in tasks], delay_s)

    def _launch(self, started: list[tuple[_Task, concurrent.futures.Future]], delay_s: float) -> None:
        """On the loop thread: one asyncio task per message, its end copied to the task's future;
        cancelling that future (poll thread) cancels the asyncio task."""
        loop = self._loop
        for task, outcome in started:
            if outcome.cancelled():
                continue
            running = task.running = loop.create_task(self._handle_after(task.message, delay_s))
            running.add_done_callback(lambda r, f=outcome: _settle(f, r))
            outcome.add_done_callback(
                lambda f, r=running: f.cancelled() and not r.done() and loop.call_soon_threadsafe(r.cancel))

    async def _handle_after(self, message: Incoming, delay_s: float) -> list:
        if delay_s:
            await asyncio.sleep(delay_s)
        return await self.handle(message)

    # -- completions -----------------------------------------------------------------------
    def _drain(self, block_s: float = 0.0) -> None:
        """Produce the outputs of finished handlers (block up to `block_s` for the first one)."""
        deadline = time.monotonic() + block_s
        while True:
            try:
                task, future = self._done.get(timeout=max(0.0, deadline - time.monotonic())) if block_s \
                    else self._done.get_nowait()
            except queue.Empty:
                return
            block_s = 0.0
            self._complete(task, future)

    def _complete(self, task: _Task, future: concurrent.futures.Future) -> None:
        # The future's done callback holds the task, which held the future: a reference cycle per
        # message (~40 objects with the message and its outputs) that only the cyclic GC freed.
        # Broken here, reference counting frees them as soon as the message is done.
        task.future = None
        record = task.record
        key = (record.topic, record.partition, record.offset)
        if self._tasks.get(key) is task:
            del self._tasks[key]
        elif not task.cancelled:
            return  # superseded by a retry
        tp = (record.topic, record.partition)
        if future.cancelled():
            return  # not done: its partition's new owner replays it
        if task.cancelled:
            # Its partition was revoked or lost after the handler had finished (an SP-API call made):
            # publish the outcome anyway, or it is lost; the new owner's replay only duplicates it.
            if future.exception() is None:
                try:
                    self._produce(future.result())
                except Exception as produce_exc:
                    log.error("cannot encode output", error=repr(produce_exc))
            return
        exc = future.exception()
        if isinstance(exc, RetryableError) and not self.stop.is_set():
            log.warning("handler asked for a retry", topic=task.message.topic, partition=record.partition,
                        offset=record.offset, error=str(exc), pause_s=self.retry_pause_s)
            self._start([_Task(record, task.message)], self.retry_pause_s)
            return
        if exc is not None:
            log.error("handler failed", topic=task.message.topic, partition=record.partition, offset=record.offset,
                      error=repr(exc))
            # An exception may name its own reason (e.g. sync_modes.ModeViolation: mode_violation).
            self._dead_letter([(record, getattr(exc, "dead_letter_reason", "handler_error"), repr(exc))])
        else:
            try:
                self._produce(future.result())
            except Exception as produce_exc:  # an event the codec cannot encode is a handler bug
                self._dead_letter([(record, "handler_error", f"cannot encode output: {produce_exc!r}")])
            else:
                self.metrics.processed.labels(self.service, task.message.topic, "ok").inc()
        log.debug("message handled", topic=task.message.topic, partition=record.partition, offset=record.offset,
                  event_id=task.message.event.get("event_id"), run_id=task.message.event.get("run_id"),
                  reference=task.message.event.get("reference"))
        progress = self._progress.get(tp)
        if progress is not None:
            progress.finished(record.offset)

    def _produce(self, outputs: list[Outgoing | RawOutgoing]) -> None:
        encoded = []
        for out in outputs:
            if isinstance(out, RawOutgoing):
                encoded.append((self.settings.topic(out.topic), out.key, out.value))
            else:
                encoded.append((self.settings.topic(out.topic), out.key, self.codec.encode(out.schema, out.event)))
        self._send(encoded)
        for topic, _key, _value in encoded:
            self.metrics.produced.labels(self.service, topic).inc()

    def _send(self, records: list[tuple]) -> None:
        """Hand records to the producer; while the broker is away they queue in `_unsent` (in
        order) and go out before anything newer, so nothing handled is committed without them."""
        self._unsent.extend(records)
        while self._unsent:
            try:
                self._producer.send(*self._unsent[0])
            except DeliveryError:
                return
            self._unsent.pop(0)

    def _dead_letter(self, dead: list[tuple[Record, str, str]]) -> None:
        self._send(self._dead_letters.records(dead))

    # -- commits, back-pressure, rebalances ------------------------------------------------------
    def _flush_and_commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        chosen = self._progress if partitions is None else {tp: self._progress[tp] for tp in partitions
                                                             if tp in self._progress}
        offsets = {tp: p.to_commit() for tp, p in chosen.items()}
        offsets = {tp: o for tp, o in offsets.items() if o is not None}
        self._send([])  # records queued while the broker was away go first
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
        try:
            self._consumer.commit(offsets)
        except BusError as exc:
            log.warning("commit failed; messages since the last commit may be replayed", error=str(exc))
            return
        self.metrics.commits.labels(self.service).inc()
        for tp, offset in offsets.items():
            chosen[tp].committed = offset

    def _apply_backpressure(self) -> None:
        pause, resume = [], []
        for tp, progress in self._progress.items():
            if tp not in self._paused and progress.in_flight >= self.max_in_flight:
                pause.append(tp)
            elif tp in self._paused and progress.in_flight <= self.max_in_flight // 2:
                resume.append(tp)
        if pause:
            self._consumer.pause(pause)
            self._paused.update(pause)
            log.info("partitions paused: backlog in flight", partitions=sorted(pause), bound=self.max_in_flight)
        if resume:
            self._consumer.resume(resume)
            self._paused.difference_update(resume)
            log.info("partitions resumed", partitions=sorted(resume))

    def _wind_down(self, selects: Callable[[_Task], bool], seconds: float) -> None:
        """Interrupt the selected handlers, give them up to `seconds` to end (one finishing a call
        already made ends with its outputs), then drop the ones still running."""
        chosen = [t for t in self._tasks.values() if selects(t)]
        if chosen:
            self._loop.call_soon_threadsafe(_interrupt, chosen)
        self._wait_for(selects, seconds)
        self._cancel(selects)

    def _wait_for(self, selects: Callable[[_Task], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while any(selects(t) for t in self._tasks.values()) and time.monotonic() < deadline:
            self._drain(block_s=min(0.1, max(0.0, deadline - time.monotonic())))

    def _cancel(self, selects: Callable[[_Task], bool]) -> None:
        for key, task in list(self._tasks.items()):
            if selects(task):
                task.cancelled = True
                if task.future is not None:
                    task.future.cancel()
                del self._tasks[key]

    def _assigned(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        log.info("partitions assigned", partitions=sorted(partitions))
        for tp in partitions:
            self._progress[tp] = PartitionProgress()
            self._paused.discard(tp)
        if self._on_assign is None:
            return None
        seek = self._on_assign([(self._unprefixed.get(t, t), p) for t, p in partitions]) or {}
        return {(self.settings.topic(t), p): o for (t, p), o in seek.items()}

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        revoked = set(partitions)
        log.info("partitions revoked", partitions=sorted(partitions))

        def selects(task: _Task) -> bool:
            return (task.record.topic, task.record.partition) in revoked

        self._wind_down(selects, self.revoke_drain_s)
        self._flush_and_commit(revoked)
        self._forget(partitions)

    def _lost(self, partitions: list[TopicPartition]) -> None:
        """The group dropped us (e.g. the broker was unreachable past the session timeout): no
        commit is possible, so stop their messages now; the partitions' next owner replays them.
        Outputs already produced (or queued in `_unsent`) still go out: duplicates are harmless."""
        lost = set(partitions)
        log.warning("partitions lost", partitions=sorted(partitions))
        self._cancel(lambda task: (task.record.topic, task.record.partition) in lost)
        self._forget(partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._progress.pop(tp, None)
            self._paused.discard(tp)
            self.metrics.forget_partition(*tp)
        if self._on_revoke:
            self._on_revoke([(self._unprefixed.get(t, t), p) for t, p in partitions])

    def _refresh_lag(self) -> None:
        for (topic, partition), lag in self._consumer.lag().items():
            self.metrics.lag.labels(self.service, topic, str(partition)).set(lag)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)


def _interrupt(tasks: list[_Task]) -> None:
    """On the loop thread (after the `_launch` that started them): cancel the handlers' tasks.
    Unlike cancelling their futures, this lets a handler end with a result."""
    for task in tasks:
        running = task.running
        if running is not None:
            running.cancel()


def _settle(outcome: concurrent.futures.Future, running: asyncio.Task) -> None:
    """Copy a finished asyncio task's end onto the future the poll thread reads."""
    try:
        if running.cancelled():
            outcome.cancel()
        elif running.exception() is not None:
            outcome.set_exception(running.exception())
        else:
            outcome.set_result(running.result())
    except concurrent.futures.InvalidStateError:
        pass  # cancelled by the poll thread meanwhile


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio works too
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
