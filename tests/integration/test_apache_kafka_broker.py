"""Real Apache Kafka from its jars: `catalog-sync broker --engine apache` and the bus's client
settings as the broker sees them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_sync.runtime.apache_kafka import KafkaUnavailable, find_kafka
from catalog_sync.runtime.bus import (
    BusProducer,
    TopicReader,
    cluster_brokers,
    describe_partitions,
    ensure_topics,
)
from catalog_sync.runtime.config import RuntimeSettings
from tests.support.background import wait_until
from tests.support.requirements import require

pytestmark = [pytest.mark.kafka, pytest.mark.apache]


def apache_or_skip() -> None:
    try:
        find_kafka()
    except KafkaUnavailable as exc:
        require(False, str(exc))


def test_the_broker_command_prints_the_bootstrap_and_cleans_up_on_sigterm(tmp_path):
    apache_or_skip()
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen([sys.executable, "-m", "catalog_sync", "broker", "--engine", "apache"],
                                   stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        bootstrap = process.stdout.readline().strip()  # printed once the broker serves
        assert bootstrap.startswith("127.0.0.1:"), stderr.read_text()
        assert cluster_brokers(RuntimeSettings(service="probe", kafka_bootstrap_servers=bootstrap)) == {1}
        data_dir = Path(next(line for line in stderr.read_text().splitlines() if "data in" in line)
                        .split("data in ", 1)[1].rstrip(")"))
        assert data_dir.is_dir()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert not data_dir.exists(), "the data folder outlived the broker"
        assert "KAFKA_API_VERSION unset" in stderr.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_the_bus_negotiates_the_protocol_and_produces_idempotently_with_acks_all(kafka, apache_cluster, topic_prefix):
    # The session's broker when it is Apache Kafka, else a one-node cluster of this test's own.
    bootstrap = kafka.bootstrap_servers if kafka.kind == "apache" else apache_cluster(1).bootstrap_servers
    settings = RuntimeSettings.from_env("probe", {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": topic_prefix})
    assert settings.kafka_api_version is None
    topic = settings.topic("probe.settings")
    ensure_topics(settings, [topic], partitions=2)
    assert set(describe_partitions(settings, topic)) == {0, 1}
    producer = BusProducer(settings)
    try:
        config = producer._producer.config
        assert config["acks"] == -1 and config["enable_idempotence"] is True
        # Negotiated, not pinned: kafka-python's newest known protocol, which Kafka 4 still serves.
        assert config["api_version"] >= (4, 0)
        for i in range(10):
            producer.send(topic, f"k{i}", b"x")
        producer.flush()
        # The broker handed out a producer id: retried batches are de-duplicated by it.
        assert producer._producer._transaction_manager.has_producer_id()
    finally:
        producer.close()
    reader = TopicReader(settings, [topic])
    try:
        seen = []
        wait_until(lambda: seen.extend(reader.poll(timeout_ms=200)) or len(seen) >= 10, timeout_s=30,
                   message="the records back")
    finally:
        reader.close()
    assert sorted(r.key for r in seen) == sorted(f"k{i}".encode() for i in range(10))
