"""The submitter's accepted-hash table over a Kafka-protocol broker: it reads every partition of
the compacted topic from its beginning, and leaves no consumer group behind on the cluster (one
per process start would litter a real cluster)."""

from __future__ import annotations

import pytest

from catalog_sync.runtime.bus import ensure_topics
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.topics import LISTING_ACCEPTED_HASHES
from catalog_sync.submitter.accepted_hashes import KafkaHashTable
from tests.support.broker import publish_raw
from tests.support.chaos import FETCH, JOIN_GROUP, KafkaProxy

pytestmark = pytest.mark.kafka

KEYS = [f"A1SELLER|ATVPDKIKX0DER|SKU-{n:03d}" for n in range(40)]  # spread over every partition


def test_the_table_reads_every_partition_without_joining_a_consumer_group(kafka, kafka_env):
    settings = RuntimeSettings.from_env("submitter", kafka_env, metrics_port=None)
    topic = settings.topic(LISTING_ACCEPTED_HASHES)
    ensure_topics(settings, [topic], configs={topic: {"cleanup.policy": "compact"}})
    publish_raw(settings, LISTING_ACCEPTED_HASHES,
                [(key, f"hash-{n}".encode()) for n, key in enumerate(KEYS)] + [(KEYS[7], None)])  # 7: deleted

    with KafkaProxy(kafka.bootstrap_servers) as proxy:
        through_proxy = RuntimeSettings.from_env(
            "submitter", {**kafka_env, "KAFKA_BOOTSTRAP_SERVERS": proxy.bootstrap_servers}, metrics_port=None)
        table = KafkaHashTable(through_proxy).start()
        try:
            assert table.wait_until_current(timeout_s=30)
        finally:
            table.close()

    assert {key: table.get(key) for key in KEYS} == {
        key: None if n == 7 else f"hash-{n}" for n, key in enumerate(KEYS)}
    assert proxy.requests_seen[FETCH] > 0  # it did read through the proxy
    assert proxy.requests_seen[JOIN_GROUP] == 0, "the table joined a consumer group"
