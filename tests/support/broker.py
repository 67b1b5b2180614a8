"""The broker the tests run on (KAFKA_BOOTSTRAP_SERVERS → real Apache Kafka from its jars →
testcontainers Kafka → the embedded broker), topic prefixes no other test uses, and reading and
writing whole topics."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

from catalog_sync.runtime.bus import BusProducer, TopicReader, ensure_topics
from catalog_sync.runtime.codec import AvroCodec
from tests.support.requirements import STRICT_ENV, strict


def unique_prefix() -> str:
    """A TOPIC_PREFIX (and group prefix) no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}."


TEST_KAFKA_ENV = "CATALOG_SYNC_TEST_KAFKA"  # auto (default) | apache | embedded


@dataclass
class KafkaForTests:
    bootstrap_servers: str
    api_version: str | None
    kind: str  # env | apache | testcontainers | embedded
    _closers: list = field(default_factory=list)
    description: str = ""  # what runs, or why the tier above it was not used
    cluster: object | None = None  # the ApacheKafkaCluster of kind "apache"

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


def kafka_choice() -> str:
    choice = os.environ.get(TEST_KAFKA_ENV, "").strip() or "auto"
    if choice not in ("auto", "apache", "embedded"):
        raise ValueError(f"{TEST_KAFKA_ENV}={choice!r} must be auto, apache or embedded")
    return choice


def kafka_plan() -> str:
    """Which broker kafka_for_tests() would choose, and why, without starting anything."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        return f"KAFKA_BOOTSTRAP_SERVERS={os.environ['KAFKA_BOOTSTRAP_SERVERS'].strip()}"
    choice = kafka_choice()
    if choice == "embedded":
        return f"the embedded mock ({TEST_KAFKA_ENV}=embedded)"
    from catalog_sync.runtime.apache_kafka import KafkaUnavailable, describe_availability

    try:
        return describe_availability()
    except KafkaUnavailable as exc:
        if choice == "apache" or strict():
            return f"Apache Kafka required ({TEST_KAFKA_ENV}={choice}, {STRICT_ENV}={os.environ.get(STRICT_ENV, '')}) " \
                   f"but unavailable: {exc}"
        return f"Docker or the embedded mock: {exc}"


def kafka_for_tests() -> KafkaForTests:
    """KAFKA_BOOTSTRAP_SERVERS if set → real Apache Kafka from its jars (Java 17+; the jars fetched
    with Maven when missing) → testcontainers Kafka if a Docker engine answers → the embedded mock.
    CATALOG_SYNC_TEST_KAFKA=apache or embedded picks one. Raises KafkaUnavailable when Apache Kafka
    is asked for, or CATALOG_SYNC_STRICT is set, and it cannot run here."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if bootstrap:
        return KafkaForTests(bootstrap, os.environ.get("KAFKA_API_VERSION") or None, "env", description=bootstrap)
    choice = kafka_choice()
    reason = f"{TEST_KAFKA_ENV}=embedded"
    if choice != "embedded":
        from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster, KafkaUnavailable

        try:
            cluster = ApacheKafkaCluster(1).start()
        except KafkaUnavailable as exc:
            if choice == "apache" or strict():
                raise KafkaUnavailable(f"Apache Kafka cannot run here ({TEST_KAFKA_ENV}={choice}, "
                                       f"{STRICT_ENV}={os.environ.get(STRICT_ENV, '')}): {exc}") from exc
            reason = str(exc)
        else:
            return KafkaForTests(cluster.bootstrap_servers, None, "apache", [cluster.close],
                                 f"Apache Kafka {cluster.version}, 1 node, started in {cluster.started_in_s:.1f} s",
                                 cluster)
    if choice == "auto" and _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        container = KafkaContainer().with_kraft()
        container.start()
        return KafkaForTests(container.get_bootstrap_server(), None, "testcontainers", [container.stop],
                             f"Kafka in Docker ({reason})")
    from catalog_sync.runtime.embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    return KafkaForTests(broker.bootstrap_servers, broker.api_version, "embedded", [broker.close],
                         f"the embedded mock ({reason})")


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
