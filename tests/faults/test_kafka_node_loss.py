"""A partition leader killed (kill -9) in a 3-node Apache Kafka cluster: with replication factor 3,
min.insync.replicas=2 and acks=all, every record the producer saw acknowledged is still there after
the failover and after the node comes back; producing and consuming go on meanwhile."""

from __future__ import annotations

import time
import uuid

import pytest

from catalog_sync.runtime.bus import (
    BusConsumer,
    BusProducer,
    DeliveryError,
    TopicReader,
    describe_partitions,
    ensure_topics,
)
from catalog_sync.runtime.config import RuntimeSettings
from tests.support.background import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.apache, pytest.mark.slow]

TOPIC = "node-loss.records"
PARTITIONS = 3
BATCH = 100


class AckedProducer:
    """Sends numbered batches; a record counts as acknowledged only once its batch's flush succeeded.
    A batch whose flush fails is sent again (at-least-once), as the workers do."""

    def __init__(self, settings: RuntimeSettings):
        self.producer = BusProducer(settings)
        self.acknowledged: set[str] = set()
        self.failed_flushes = 0
        self.slowest_flush_s = 0.0
        self.next_batch = 0

    def send_batch(self) -> None:
        values = [f"{self.next_batch}-{i}" for i in range(BATCH)]
        self.next_batch += 1
        began_batch = time.monotonic()
        while True:
            assert time.monotonic() - began_batch < 60, f"batch {self.next_batch - 1} not acknowledged in 60 s"
            try:
                for value in values:
                    self.producer.send(TOPIC, f"key-{value}", value.encode())
                began = time.monotonic()
                self.producer.flush()
                self.slowest_flush_s = max(self.slowest_flush_s, time.monotonic() - began)
                break
            except DeliveryError:
                self.failed_flushes += 1
        self.acknowledged.update(values)


def test_acknowledged_records_survive_a_killed_leader_and_its_return(apache_cluster):
    started = time.monotonic()
    cluster = apache_cluster(3)
    settings = RuntimeSettings(service="node-loss", kafka_bootstrap_servers=cluster.bootstrap_servers,
                               session_timeout_ms=6_000, heartbeat_interval_ms=1_000)
    ensure_topics(settings, [TOPIC], partitions=PARTITIONS, replication_factor=3,
                  configs={TOPIC: {"min.insync.replicas": "2"}})
    layout = describe_partitions(settings, TOPIC)
    assert all(len(p.replicas) == 3 and len(p.in_sync) == 3 for p in layout.values()), layout

    producer = AckedProducer(settings)
    consumer = BusConsumer(settings, [TOPIC], group_id=f"node-loss-{uuid.uuid4().hex[:8]}")
    consumed: set[str] = set()

    def consume() -> None:
        records = consumer.poll(timeout_ms=100)
        consumed.update(r.value.decode() for r in records)
        if records:
            consumer.commit({(r.topic, r.partition): r.offset + 1 for r in records})

    try:
        for _ in range(5):
            producer.send_batch()
            consume()
        victim = layout[0].leader
        cluster.kill_node(victim)
        killed_at = time.monotonic()

        # Batches keep going while the cluster notices and moves the victim's leaderships. A flush may
        # stall for seconds meanwhile, so the test bounds each batch and the failover, not how many
        # batches fit in the outage.
        while time.monotonic() - killed_at < 12 or not _led_without(settings, victim):
            assert time.monotonic() - killed_at < 90, f"leaders still on killed node {victim} after 90 s"
            producer.send_batch()
            consume()
        failover_s = time.monotonic() - killed_at

        cluster.start_node(victim)
        wait_until(lambda: all(victim in p.in_sync for p in describe_partitions(settings, TOPIC).values()),
                   timeout_s=60, interval_s=0.2, message=f"node {victim} back in sync")
        for _ in range(5):
            producer.send_batch()
            consume()
        wait_until(lambda: (consume(), producer.acknowledged <= consumed)[1], timeout_s=30,
                   message="the group consumer to see every acknowledged record")
    finally:
        consumer.close()
        producer.producer.close()

    stored = _read_all(settings, producer.acknowledged)
    lost = producer.acknowledged - stored
    assert not lost, f"{len(lost)} acknowledged record(s) lost, e.g. {sorted(lost)[:5]}"
    print(f"\nnode loss: {len(producer.acknowledged)} records acknowledged, {producer.failed_flushes} flush(es) "
          f"retried, slowest flush {producer.slowest_flush_s:.1f} s, leaders moved off node {victim} after {failover_s:.1f} s, whole test {time.monotonic() - started:.1f} s")


def _led_without(settings: RuntimeSettings, victim: int) -> bool:
    """Every partition has a leader again, and none is the killed node."""
    leaders = {p.leader for p in describe_partitions(settings, TOPIC).values()}
    return -1 not in leaders and victim not in leaders


def _read_all(settings: RuntimeSettings, expected: set[str], timeout_s: float = 30.0) -> set[str]:
    """The topic read from its beginning, until it holds `expected` or `timeout_s` passed."""
    reader = TopicReader(settings, [TOPIC])
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + timeout_s
        while not expected <= seen and time.monotonic() < deadline:
            seen.update(r.value.decode() for r in reader.poll(timeout_ms=500))
    finally:
        reader.close()
    return seen
