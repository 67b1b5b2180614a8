"""Where "last ACCEPTED content hash per (seller, marketplace, sku)" lives: a compacted Kafka topic.

Choice: the compacted topic `listing.accepted.hashes` (key `seller|marketplace|sku`, value the
content hash as UTF-8, tombstone after a delete), read into memory by every submitter process.
- It survives restarts and needs nothing the deployment does not already run (a SQLite file
  would not be shared by submitters on different hosts; PostgreSQL would add a dependency and a
  network round trip in front of every item).
- It is written in the same produce-flush-commit cycle as the outcome event, before the ready
  message's offset is committed. A process that takes over a seller's partition waits until
  its table has read to the end of the topic (`wait_until_current`), so it sees every hash the
  previous owner produced for the messages it committed.
- Every process reads all partitions from their beginning, without a consumer group (nothing
  to share, nothing to commit, and no group left on the cluster per process start). The table
  is small: one short record per listing, about 150 bytes in memory; a million listings is
  ~150 MB. The submitter updates its own copy at once when Amazon accepts, so duplicates within
  one process are skipped without a round trip.

Only production-mode ACCEPTED answers write it (the sandbox and VALIDATION_PREVIEW persist nothing).
"""

from __future__ import annotations

import threading
import time

import structlog

from catalog_sync.runtime.bus import BusError, TopicReader
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.topics import LISTING_ACCEPTED_HASHES
from catalog_sync.submitter.submission import MemoryHashes

log = structlog.get_logger()

TAIL_PAUSE_S = 0.1


class KafkaHashTable(MemoryHashes):
    """MemoryHashes kept current from the compacted topic by a background consumer."""

    def __init__(self, settings: RuntimeSettings, *, topic: str = LISTING_ACCEPTED_HASHES) -> None:
        super().__init__()
        self._settings = settings
        self._topic = topic  # another compacted table of the same shape (feeds_journal.py)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._current = threading.Condition(self._lock)
        self._fresh_polls: list[float] = []  # start times of polls that found nothing left to read
        self._waiting = 0  # callers in wait_until_current
        self.records_read = 0
        # Our own writes win until the topic hands them back: an older record read meanwhile
        # must not briefly bring back a stale hash (that could skip a changed item).
        self._pending: dict[str, str | None] = {}
        self._thread = threading.Thread(target=self._tail, name=topic, daemon=True)

    def start(self) -> KafkaHashTable:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def get(self, key: str) -> str | None:
        with self._lock:
            if key in self._pending:
                return self._pending[key]
            return self.hashes.get(key)

    def put(self, key: str, content_hash: str | None) -> None:
        with self._lock:
            self._pending[key] = content_hash
            super().put(key, content_hash)

    def wait_until_current(self, timeout_s: float = 30.0) -> bool:
        """Block until two polls that began after this call found the table at the end of every
        partition (a fetch answered after now reflects everything flushed before now)."""
        since = time.monotonic()
        deadline = since + timeout_s
        with self._current:
            self._waiting += 1
            try:
                while sum(1 for t in self._fresh_polls if t >= since) < 2:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        log.warning("accepted-hash table not current; unchanged items may be resent",
                                    waited_s=round(timeout_s, 1))
                        return False
                    self._current.wait(remaining)
            finally:
                self._waiting -= 1
        return True

    def _tail(self) -> None:
        try:
            consumer = TopicReader(self._settings, [self._settings.topic(self._topic)])
        except BusError:
            log.exception("accepted-hash table reader could not start")
            return
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                records = consumer.poll(timeout_ms=100, max_records=10_000)
                with self._lock:
                    for record in records:
                        if record.key is None:
                            continue
                        key = record.key.decode("utf-8", "replace")
                        value = record.value.decode("utf-8") if record.value is not None else None
                        MemoryHashes.put(self, key, value)
                        if key in self._pending and self._pending[key] == value:
                            del self._pending[key]
                    self.records_read += len(records)
                assigned = consumer.assignment()
                lags = consumer.lag()
                if assigned and not records and all(lags.get(tp, 1) == 0 for tp in assigned):
                    with self._current:
                        self._fresh_polls = [*self._fresh_polls[-3:], started]
                        self._current.notify_all()
                elif records and not self._waiting:
                    # Our own writes stream back all the time: reading them a tenth of a second
                    # later in bigger batches costs far less than a poll (two thread hand-overs
                    # inside kafka-python) per record. Nobody needs them sooner: get() prefers
                    # our own writes, and a waiter (a rebalance) gets polls at full speed.
                    self._stop.wait(TAIL_PAUSE_S)
        except Exception:
            log.exception("accepted-hash table reader stopped")
        finally:
            consumer.close()
