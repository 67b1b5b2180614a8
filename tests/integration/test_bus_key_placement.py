"""A keyed record lands on the partition every Kafka client picks for its key (murmur2, positive,
modulo the partition count), so an item's events stay in order whichever process or client
produces them. The hashes are the Java client's own (Apache Kafka's UtilsTest.testMurmur2)."""

from __future__ import annotations

import time

import pytest

from catalog_sync.runtime.bus import TopicReader, ensure_topics
from tests.support.broker import publish_raw

pytestmark = pytest.mark.kafka

PARTITIONS = 4
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def java_partition(key: bytes) -> int:
    return (JAVA_MURMUR2[key] & 0x7FFFFFFF) % PARTITIONS  # Utils.toPositive(murmur2(key)) % partitions


def test_keyed_records_land_where_the_java_client_puts_them(runtime_settings):
    settings = runtime_settings("placement")
    topic = "placement.checked"
    ensure_topics(settings, [settings.topic(topic)], partitions=PARTITIONS)
    keys = list(JAVA_MURMUR2) * 3  # the same key again goes to the same place
    publish_raw(settings, topic, [(key, f"{n}".encode()) for n, key in enumerate(keys)])

    reader = TopicReader(settings, [settings.topic(topic)])
    placed: dict[bytes, set[int]] = {}
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, placed.values())) < len(keys) and time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=200):
                placed.setdefault(record.key, set()).add((record.partition, record.value))
    finally:
        reader.close()

    assert {key: {partition for partition, _ in found} for key, found in placed.items()} == \
        {key: {java_partition(key)} for key in JAVA_MURMUR2}
    assert {java_partition(key) for key in JAVA_MURMUR2} == set(range(PARTITIONS))  # every partition is checked
