"""`catalog-sync topics create` against Apache Kafka: every topic of catalog_sync.runtime.topics with its
partitions, settings and compaction; a second run leaves them as they are."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from catalog_sync.runtime import topics
from catalog_sync.runtime.bus import describe_partitions, missing_topics, topic_configs
from catalog_sync.runtime.config import RuntimeSettings

pytestmark = [pytest.mark.kafka, pytest.mark.apache]


def topics_create(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catalog_sync.cli", "topics", "create", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_topics_create_makes_every_topic_as_defined_and_leaves_existing_ones(kafka, apache_cluster, topic_prefix):
    # The session's broker when it is Apache Kafka (the mock cannot create topics), else a cluster of its own.
    bootstrap = kafka.bootstrap_servers if kafka.kind == "apache" else apache_cluster(1).bootstrap_servers
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": topic_prefix, "KAFKA_API_VERSION": ""}
    first = topics_create(env, "--partitions", "5", "--replication-factor", "1", "--min-insync-replicas", "1")
    assert first.returncode == 0, first.stderr
    plan = topics.topic_plan(prefix=topic_prefix, partitions=5, min_insync_replicas=1)
    assert sorted(line.split()[:2] for line in first.stdout.splitlines()) == sorted(["created", n] for n in plan)

    settings = RuntimeSettings.from_env("probe", env)
    configs = topic_configs(settings, list(plan))
    for name, (partitions, wanted) in plan.items():
        assert len(describe_partitions(settings, name)) == partitions, name
        assert {k: configs[name].get(k) for k in wanted} == wanted, (name, configs[name])
    assert configs[topic_prefix + topics.LISTING_ACCEPTED_HASHES]["cleanup.policy"] == "compact"
    assert len(describe_partitions(settings, topic_prefix + topics.CATALOG_RUN_EVENTS)) == 3

    again = topics_create(env, "--partitions", "9")
    assert again.returncode == 0, again.stderr
    assert {line.split()[0] for line in again.stdout.splitlines()} == {"exists"}
    assert len(describe_partitions(settings, topic_prefix + topics.LISTING_READY)) == 5  # left as it was


@pytest.mark.parametrize("worker", ["validator", "submitter", "recorder"])
def test_a_worker_refuses_to_start_without_its_topics_and_creates_none(worker, kafka, apache_cluster, topic_prefix,
                                                                      tmp_path):
    bootstrap = kafka.bootstrap_servers if kafka.kind == "apache" else apache_cluster(1).bootstrap_servers
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": topic_prefix, "KAFKA_API_VERSION": "",
           "METRICS_PORT": "off", "READ_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
           "LWA_CLIENT_ID": "app", "LWA_CLIENT_SECRET": "secret", "LWA_REFRESH_TOKEN": "Atzr|x", "SELLER_ID": "A1X"}
    done = subprocess.run([sys.executable, "-m", "catalog_sync.cli", worker], env=env, capture_output=True,
                          text=True, timeout=120)
    needed = [topic_prefix + t for t in topics.WORKER_TOPICS[worker]]
    assert done.returncode == 2, done.stdout + done.stderr
    assert "catalog-sync topics create" in done.stderr and all(name in done.stderr for name in needed), done.stderr
    settings = RuntimeSettings.from_env("probe", env)
    assert missing_topics(settings, needed) == needed, "the worker created topics"
