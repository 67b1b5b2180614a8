"""Test helpers shared by the suite: strict skips, the broker choice, free ports, waiting on conditions."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

STRICT_ENV = "CATALOG_SYNC_STRICT"


def strict() -> bool:
    """CI sets CATALOG_SYNC_STRICT=1: a missing tool fails the test instead of skipping it."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0", "false")


def require(condition: bool, reason: str) -> None:
    """Skip (on a user's machine) or fail (in CI) when something the test needs is absent."""
    if condition:
        return
    import pytest

    if strict():
        pytest.fail(f"{reason} ({STRICT_ENV} is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout_s: float = 30.0, interval_s: float = 0.05,
               message: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail with `message` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


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
    from .apache_kafka import KafkaUnavailable, describe_availability

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
        from .apache_kafka import ApacheKafkaCluster, KafkaUnavailable

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
    from .embedded_broker import EmbeddedBroker

    broker = EmbeddedBroker()
    return KafkaForTests(broker.bootstrap_servers, broker.api_version, "embedded", [broker.close],
                         f"the embedded mock ({reason})")


def read_events(settings, topic: str, count: int, timeout_s: float = 30.0) -> list[tuple[str | None, str, dict]]:
    """Read `count` events from `topic` (unprefixed name) from its beginning, without a consumer
    group: (key, record name, event) tuples, dead letters included."""
    from .bus import TopicReader, ensure_topics
    from .codec import AvroCodec

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
    from .bus import BusProducer

    producer = BusProducer(settings)
    try:
        for key, value in items:
            producer.send(settings.topic(topic), key, value)
        producer.flush()
    finally:
        producer.close()


POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://catalog_sync:catalog_sync@127.0.0.1:5432/test")


def postgres_answers(url: str = POSTGRES_URL) -> bool:
    """Whether the test PostgreSQL server accepts connections (tests `require` it)."""
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=3).close()
        return True
    except Exception:
        return False


@contextmanager
def serving(app, log_level: str = "warning"):
    """Serve an ASGI app over real HTTP on a free loopback port for the duration; yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout_s=15, message="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def running_in_thread(run: Callable[[], object], stop, name: str = "worker", timeout_s: float = 30.0):
    """Run a worker loop (`run`) in a thread for the block; on exit set `stop` and fail the test
    if the loop does not finish within `timeout_s`."""
    import threading

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(timeout_s)
        assert not thread.is_alive(), f"{name} did not stop within {timeout_s} s"
