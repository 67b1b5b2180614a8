"""Fixtures shared by the whole suite. Nothing here starts a container or broker at import time."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
from catalog_sync.runtime.config import RuntimeSettings
from tests.support.broker import (
    KafkaForTests,
    kafka_for_tests,
    kafka_plan,
    unique_prefix,
)
from tests.support.requirements import require

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"

# What the session ran on, for the terminal summary: its broker, and tests counted by broker kind.
_SESSION: dict[str, KafkaForTests] = {}
_RAN_ON: Counter = Counter()
_CPU_SECONDS: dict[str, float] = {}


def pytest_report_header(config) -> list[str]:
    return [f"kafka: {kafka_plan()}"]


@pytest.fixture(scope="session")
def kafka() -> KafkaForTests:
    """A Kafka-protocol broker shared by the session: KAFKA_BOOTSTRAP_SERVERS → real Apache Kafka
    from its jars → Docker → the embedded mock (tests/support/broker.py says when each is chosen)."""
    try:
        broker = kafka_for_tests()
    except KafkaUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    _SESSION["broker"] = broker
    yield broker
    if broker.cluster is not None:
        _CPU_SECONDS["session broker"] = sum(node.cpu_seconds() or 0.0 for node in broker.cluster.nodes)
    broker.close()


@pytest.fixture
def apache_cluster():
    """Factory: a cluster of this test's own (1 or 3 nodes) for tests that kill and restart
    nodes; every node is stopped and its data removed after the test, pass or fail."""
    clusters: list[ApacheKafkaCluster] = []

    def start(nodes: int = 3) -> ApacheKafkaCluster:
        try:  # whatever the session's broker: these tests need nodes of their own to kill
            cluster = ApacheKafkaCluster(nodes)
        except KafkaUnavailable as exc:
            require(False, str(exc))
        clusters.append(cluster)
        return cluster.start()

    yield start
    for cluster in clusters:
        cluster.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and not report.skipped:
        if "apache_cluster" in item.fixturenames:
            _RAN_ON["apache_cluster"] += 1
        elif "kafka" in item.fixturenames and "broker" in _SESSION:
            _RAN_ON[_SESSION["broker"].kind] += 1
        elif item.get_closest_marker("apache"):
            _RAN_ON["apache_cluster"] += 1
    return report


def pytest_terminal_summary(terminalreporter) -> None:
    broker = _SESSION.get("broker")
    if broker is None and not _RAN_ON:
        return
    terminalreporter.write_sep("-", "kafka")
    if broker is not None:
        used = _CPU_SECONDS.get("session broker")
        terminalreporter.write_line(f"session broker: {broker.description} at {broker.bootstrap_servers}"
                                    + (f"; it used {used:.0f} s of CPU" if used is not None else ""))
    on_apache = _RAN_ON["apache"] + _RAN_ON["apache_cluster"]
    terminalreporter.write_line(
        f"{on_apache} test(s) ran on Apache Kafka ({_RAN_ON['apache']} on the session's cluster, "
        f"{_RAN_ON['apache_cluster']} on clusters of their own); {_RAN_ON['embedded']} on the embedded mock; "
        f"{_RAN_ON['env'] + _RAN_ON['testcontainers']} on KAFKA_BOOTSTRAP_SERVERS or Docker")


@pytest.fixture
def topic_prefix() -> str:
    return unique_prefix()


@pytest.fixture
def kafka_env(kafka: KafkaForTests, topic_prefix: str) -> dict[str, str]:
    """Environment for a worker process using the test broker and this test's own topics and groups."""
    return {**kafka.env(topic_prefix), "METRICS_PORT": "0", "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "1000", "LOG_FORMAT": "json"}


@pytest.fixture
def runtime_settings(kafka_env):
    """Factory: RuntimeSettings for a service on the test broker and this test's prefix."""

    def make(service: str, **overrides) -> RuntimeSettings:
        return RuntimeSettings.from_env(service, kafka_env, **overrides)

    return make
