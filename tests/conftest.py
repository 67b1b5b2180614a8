"""Fixtures shared by the whole suite. Nothing here starts a container or broker at import time."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.runtime.config import RuntimeSettings
from tests.support.broker import KafkaForTests, kafka_for_tests, unique_prefix

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def kafka() -> KafkaForTests:
    """A Kafka-protocol broker: env → testcontainers → embedded, shared by the session."""
    broker = kafka_for_tests()
    yield broker
    broker.close()


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
