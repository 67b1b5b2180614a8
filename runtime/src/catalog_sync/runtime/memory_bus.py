"""An in-memory bus with the consumer and producer interface of runtime.bus, for tests of the
worker loop without a broker: one consumer group member, topics as lists, rebalances and
delivery or commit failures scripted by the test.

Rebalances behave as kafka-python 3's (eager protocol) do, because the loop's correctness depends
on it: callbacks run inside `poll()`; a blocking `commit()` inside a callback is refused (kafka-python
runs them on its IO thread, which cannot wait on itself) while `commit_async()` is accepted; a
partition revoked and assigned again in the same rebalance keeps its position and its paused flag
(kafka-python keeps the partition's state, as the Java client does), and only a partition new to
the member, or one lost, starts again from the committed offset.

Nothing here waits: a poll that finds nothing calls `on_idle` (where a test decides what happens
next, e.g. sets the loop's stop signal) and returns at once.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterable

from .bus import BusError, DeliveryError, Record, TopicPartition


class MemoryBus:
    """The broker and the group's committed offsets. `events` records, in order, what a test may
    want to check the order of: ("delivered", topic, partition, offset), ("flush_failed", count),
    ("committed", {tp: offset}), ("commit_failed", {tp: offset}) of an asynchronous commit,
    ("closed", "consumer" | "producer")."""

    def __init__(self, partitions: int = 1):
        self.partitions = partitions
        self.on_poll: Callable[[], None] | None = None  # called as each poll begins: new arrivals
        self.topics: dict[str, list[list[Record]]] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.events: list[tuple] = []
        self.fail_flushes = 0  # the next N flushes fail, every record of them undelivered
        self.fail_commits = 0
        self.on_idle: Callable[[], None] | None = None
        self.consumers: list[MemoryConsumer] = []
        self.producers: list[MemoryProducer] = []
        self._rebalances: deque[tuple[str, list[TopicPartition]]] = deque()

    # -- the broker ----------------------------------------------------------------------
    def _partitions_of(self, topic: str) -> list[list[Record]]:
        if topic not in self.topics:
            self.topics[topic] = [[] for _ in range(self.partitions)]
        return self.topics[topic]

    def publish(self, topic: str, key: str | bytes | None, value: bytes | None,
                partition: int | None = None) -> Record:
        if isinstance(key, str):
            key = key.encode("utf-8")
        partitions = self._partitions_of(topic)
        if partition is None:
            partition = zlib.crc32(key) % len(partitions) if key is not None else 0
        log = partitions[partition]
        record = Record(topic, partition, len(log), key, value, 0)
        log.append(record)
        return record

    def records(self, topic: str) -> list[Record]:
        return [r for log in self._partitions_of(topic) for r in log]

    # -- what a test scripts -------------------------------------------------------------
    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """At the next poll, as kafka-python does inside poll(). Followed by `assign` of some of
        the same partitions, it is one rebalance in which the member keeps those (and their
        positions); alone, the partitions go to another member."""
        self._rebalances.append(("revoke", list(partitions)))

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._rebalances.append(("assign", list(partitions)))

    def lose(self, partitions: Iterable[TopicPartition]) -> None:
        """The member was dropped from the group: the partitions are gone, positions and all."""
        self._rebalances.append(("lose", list(partitions)))

    # -- the bus interface ---------------------------------------------------------------
    def consumer(self, topics: Iterable[str], *, on_assign=None, on_revoke=None, on_lost=None) -> MemoryConsumer:
        consumer = MemoryConsumer(self, list(topics), on_assign, on_revoke, on_lost)
        self.consumers.append(consumer)
        return consumer

    def producer(self) -> MemoryProducer:
        producer = MemoryProducer(self)
        self.producers.append(producer)
        return producer


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: list[str], on_assign, on_revoke, on_lost):
        self._bus = bus
        self._topics = topics
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost or on_revoke
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.polls: list[int | None] = []  # max_records asked by each poll
        self.seeks: list[tuple[TopicPartition, int]] = []  # seek() calls, in order
        self.closed = False
        self._joined = False
        self._in_callback = False

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Record]:
        self.polls.append(max_records)
        if self._bus.on_poll is not None:
            self._bus.on_poll()
        if not self._joined:
            self._joined = True
            self._assign([(t, p) for t in self._topics for p in range(len(self._bus._partitions_of(t)))])
        revoked_state: dict[TopicPartition, tuple[int, bool]] = {}  # what an assign in this round keeps
        while self._bus._rebalances:
            kind, partitions = self._bus._rebalances.popleft()
            if kind == "assign":
                self._assign(partitions, revoked_state)
                continue
            callback = self._on_revoke if kind == "revoke" else self._on_lost
            if callback:  # the partitions are still assigned while it runs (seek works)
                self._callback(callback, partitions)
            for tp in partitions:
                if tp in self.positions:
                    state = (self.positions.pop(tp), tp in self.paused)
                    if kind == "revoke":
                        revoked_state[tp] = state
                self.paused.discard(tp)
        left = max_records if max_records is not None else 500
        records: list[Record] = []
        for tp in sorted(self.positions):
            if tp in self.paused or left <= 0:
                continue
            taken = self._bus._partitions_of(tp[0])[tp[1]][self.positions[tp]:self.positions[tp] + left]
            self.positions[tp] += len(taken)
            left -= len(taken)
            records.extend(taken)
        if not records and self._bus.on_idle is not None:
            self._bus.on_idle()
        return records

    def _assign(self, partitions: list[TopicPartition],
                kept: dict[TopicPartition, tuple[int, bool]] | None = None) -> None:
        kept = kept or {}
        for tp in partitions:
            if tp in kept:  # revoked and assigned back in one rebalance: its state stays
                self.positions[tp], paused = kept[tp]
                if paused:
                    self.paused.add(tp)
            else:
                self.positions[tp] = self._bus.committed.get(tp, 0)  # auto_offset_reset=earliest
                self.paused.discard(tp)
        if self._on_assign:
            for tp, offset in (self._callback(self._on_assign, partitions) or {}).items():
                self.positions[tp] = offset

    def _callback(self, callback, partitions):
        self._in_callback = True
        try:
            return callback(partitions)
        finally:
            self._in_callback = False

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))
        if partition in self.positions:  # as BusConsumer: a partition no longer assigned is left alone
            self.positions[partition] = offset

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        if self._in_callback:
            raise BusError("offset commit not possible here: Cannot block on net.run() from the IO thread itself")
        self._commit(offsets)

    def commit_async(self, offsets: dict[TopicPartition, int]) -> None:
        """Accepted anywhere; it lands before the member rejoins (see BusConsumer.commit_async). A
        scripted failure is only recorded, as kafka-python only logs it."""
        if not offsets:
            return
        try:
            self._commit(offsets)
        except BusError:
            self._bus.events.append(("commit_failed", dict(offsets)))

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self._bus.fail_commits:
            self._bus.fail_commits -= 1
            raise BusError("offset commit failed: scripted")
        self._bus.committed.update(offsets)
        self._bus.events.append(("committed", dict(offsets)))

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused.update(tp for tp in partitions if tp in self.positions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused.difference_update(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: len(self._bus._partitions_of(tp[0])[tp[1]]) - pos for tp, pos in self.positions.items()}

    def close(self) -> None:
        self.closed = True
        self._bus.events.append(("closed", "consumer"))


class MemoryProducer:
    def __init__(self, bus: MemoryBus):
        self._bus = bus
        self._pending: list[tuple] = []
        self.closed = False

    def send(self, topic: str, key: str | bytes | None, value: bytes, headers=None) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        self._pending.append((topic, key, value, headers))

    def flush(self, timeout_s: float = 30.0) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        if self._bus.fail_flushes:
            self._bus.fail_flushes -= 1
            self._bus.events.append(("flush_failed", len(pending)))
            raise DeliveryError(f"{len(pending)} of {len(pending)} records: scripted failure", pending)
        for topic, key, value, _headers in pending:
            record = self._bus.publish(topic, key, value)
            self._bus.events.append(("delivered", topic, record.partition, record.offset))

    def close(self) -> None:
        self.closed = True
        self._bus.events.append(("closed", "producer"))
