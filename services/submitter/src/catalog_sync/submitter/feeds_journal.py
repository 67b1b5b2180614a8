"""The bulk lane's journal of feeds in flight (feeds.FeedJournal) on a compacted Kafka topic,
`listing.feeds.inflight`: key seller|marketplace|mode|batch, value the entry as JSON, tombstone
once a reported feed's keeping time is over.

Read like the accepted-hash table (accepted_hashes.KafkaHashTable: every process reads the whole
topic without a consumer group); a submitter that takes over a seller's partition waits until it
has read to the end before it handles the partition's messages. Writes are flushed and confirmed
before `write` returns: the entry exists at Kafka before createFeed leaves."""

from __future__ import annotations

import asyncio
import threading

import orjson

from catalog_sync.runtime.bus import BusProducer
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.topics import LISTING_FEEDS_INFLIGHT
from catalog_sync.submitter.accepted_hashes import KafkaHashTable


class KafkaFeedJournal:
    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings
        self.table = KafkaHashTable(settings, topic=LISTING_FEEDS_INFLIGHT)
        self._producer: BusProducer | None = None
        self._write_lock = threading.Lock()
        self._parsed: dict[str, tuple[str, dict]] = {}

    def start(self) -> KafkaFeedJournal:
        self.table.start()
        return self

    def wait_until_current(self, timeout_s: float = 30.0) -> bool:
        return self.table.wait_until_current(timeout_s)

    def close(self) -> None:
        self.table.close()
        if self._producer is not None:
            self._producer.close()

    async def write(self, key: str, record: dict | None) -> None:
        value = orjson.dumps(record) if record is not None else None
        await asyncio.to_thread(self._send, key, value)
        self.table.put(key, value.decode() if value is not None else None)

    def _send(self, key: str, value: bytes | None) -> None:
        with self._write_lock:
            if self._producer is None:
                self._producer = BusProducer(self._settings, linger_ms=0)
            self._producer.send(self._settings.topic(LISTING_FEEDS_INFLIGHT), key, value)
            self._producer.flush()

    def records(self) -> dict[str, dict]:
        found = {}
        for key in list(self.table.hashes):
            raw = self.table.get(key)
            if raw is None:
                continue
            cached = self._parsed.get(key)
            if cached is None or cached[0] != raw:
                cached = self._parsed[key] = (raw, orjson.loads(raw))
            found[key] = cached[1]
        return found
