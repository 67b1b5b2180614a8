"""Raw kafka-python consume → produce pass-through over the embedded broker, the yardstick for
every worker's rate (`kafka_passthrough_events_per_s`): same client settings as the worker loop."""

from __future__ import annotations

import os
import time

from catalog_sync.runtime.bus import BusConsumer, BusProducer, ensure_topics
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.embedded_broker import EmbeddedBroker
from tests.support.broker import unique_prefix

EVENTS = int(os.environ.get("BENCH_PASSTHROUGH_EVENTS", "25000"))
# The embedded broker keeps only the newest ~5 MB per partition: stay well under 4 x 5 MB.
VALUE = b"x" * 600


def bench_env(broker: EmbeddedBroker) -> dict:
    return {**broker.env(), "TOPIC_PREFIX": unique_prefix(), "KAFKA_MAX_POLL_RECORDS": "5000",
            "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


def run(results: dict) -> None:
    with EmbeddedBroker() as broker:
        settings = RuntimeSettings.from_env("passthrough", bench_env(broker), metrics_port=None)
        source, sink = settings.topic("bench.in"), settings.topic("bench.out")
        ensure_topics(settings, [source, sink])
        producer = BusProducer(settings, linger_ms=20)
        for i in range(EVENTS):
            producer.send(source, f"seller-{i % 200}", VALUE)
        producer.flush()
        consumer = BusConsumer(settings, [source])
        # Join the group before the clock starts (the mock broker delays the first rebalance).
        first = consumer.poll(timeout_ms=10_000, max_records=1)
        done = len(first)
        for r in first:
            producer.send(sink, r.key, r.value)
        started = time.perf_counter()
        while done < EVENTS:
            records = consumer.poll(timeout_ms=1000, max_records=5000)
            for r in records:
                producer.send(sink, r.key, r.value)
            producer.flush()
            offsets = {}
            for r in records:
                offsets[(r.topic, r.partition)] = r.offset + 1
            consumer.commit(offsets)
            done += len(records)
        elapsed = time.perf_counter() - started
        consumer.close()
        producer.close()
    results["kafka_passthrough_events_per_s"] = round((EVENTS - 1) / elapsed, 1)
    print(f"   pass-through: {EVENTS:,} events of {len(VALUE)} bytes in {elapsed:.2f} s")
