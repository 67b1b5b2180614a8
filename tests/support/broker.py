"""The broker the tests run on (KAFKA_BOOTSTRAP_SERVERS → testcontainers Kafka → the embedded
broker), topic prefixes no other test uses, and reading and writing whole topics."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

from catalog_sync.runtime.bus import BusProducer, TopicReader, ensure_topics
from catalog_sync.runtime.codec import AvroCodec


def unique_prefix() -> str:
    """A TOPIC_PREFIX (and group prefix) no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


@dataclass
class KafkaForTests:
    bootstrap_servers: str
    api_version: str | None
    kind: str  # env | testcontainers | embedded
    _closers: list = field(default_factory=list)

    def env(self, prefix: str = "") -> dict[str, str]:
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers, "TOPIC_PREFIX": prefix}
        if self.api_version:
            env["KAFKA_API_VERSION"] = self.api_version
        return env

    def close(self) -> None:
        for close in reversed(self._closers):
            close()


def _docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def kafka_for_tests() -> KafkaForTests:
    """KAFKA_BOOTSTRAP_SERVERS if set → testcontainers Kafka if a Docker engine answers → embedded broker."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if bootstrap:
        return KafkaForTests(bootstrap, os.environ.get("KAFKA_API_VERSION") or None, "env")
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().with_kraft()
        container.start()
        return KafkaForTests(container.get_bootstrap_server(), None, "testcontainers", [container.stop])
    from catalog_sync.runtime.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    return KafkaForTests(broker.bootstrap_servers, broker.api_version, "embedded", [broker.close])


def read_events(settings, topic: str, count: int, timeout_s: float = 30.0) -> list[tuple[str | None, str, dict]]:
    """Read `count` events from `topic` (unprefixed name) from its beginning, without a consumer
    group: (key, record name, event) tuples, dead letters included."""
    codec = AvroCodec()
    ensure_topics(settings, [settings.topic(topic)])
    consumer = TopicReader(settings, [settings.topic(topic)], timeout_s=timeout_s)
    found: list = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(found)} of {count} events from {topic} in {timeout_s}s")
            for record in consumer.poll(timeout_ms=200):
                name, event = codec.decode(record.value)
                found.append((record.key.decode() if record.key is not None else None, name, event))
    finally:
        consumer.close()
    return found


def publish_raw(settings, topic: str, items: list[tuple[str | None, bytes]]) -> None:
    """Produce raw (key, value) pairs to `topic` (unprefixed name) and wait for delivery."""
    producer = BusProducer(settings)
    try:
        for key, value in items:
            producer.send(settings.topic(topic), key, value)
        producer.flush()
    finally:
        producer.close()
