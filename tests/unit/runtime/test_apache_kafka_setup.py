"""The local Apache Kafka's set-up without starting Java: version pin, jar fetch, node config,
what is missing and what the tests' broker choice does about it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_sync.runtime import apache_kafka
from catalog_sync.runtime.apache_kafka import KafkaNode, KafkaUnavailable, _properties
from tests.support import broker
from tests.support.requirements import STRICT_ENV


def fake_tool(folder: Path, name: str, script: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A PATH with only the stand-ins put in `bin`, and a cache of this test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "touch", "cat", "echo"):
        real = next((Path(d) / tool for d in os.environ["PATH"].split(":") if (Path(d) / tool).exists()), None)
        if real:
            (bin_dir / tool).symlink_to(real)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("JAVA_HOME", apache_kafka.JARS_DIR_ENV, apache_kafka.VERSION_ENV, "KAFKA_BOOTSTRAP_SERVERS",
                 broker.TEST_KAFKA_ENV, STRICT_ENV):
        monkeypatch.delenv(name, raising=False)
    return bin_dir


def test_the_pom_pins_the_version_and_the_environment_can_try_another(monkeypatch):
    assert apache_kafka.pinned_version() == "4.4.0"
    monkeypatch.setenv(apache_kafka.VERSION_ENV, "4.1.1")
    assert apache_kafka.pinned_version() == "4.1.1"
    assert apache_kafka.jars_dir().parts[-2:] == ("kafka-4.1.1", "lib")


def test_jars_are_fetched_once_into_the_cache(isolated):
    calls = isolated.parent / "mvn-calls"
    # Stands in for `mvn dependency:copy-dependencies -DoutputDirectory=DIR`: one jar into DIR.
    fake_tool(isolated, "mvn", f'echo "$@" >> {calls}\nfor a; do case $a in -DoutputDirectory=*) '
                               'd=${a#-DoutputDirectory=}; mkdir -p "$d"; touch "$d/kafka_2.13-4.4.0.jar";; esac; done\n')
    first = apache_kafka.fetch_jars()
    assert first == isolated.parent / "cache" / "catalog-sync" / "kafka-4.4.0" / "lib"
    assert (first / "kafka_2.13-4.4.0.jar").exists()
    assert apache_kafka.fetch_jars() == first
    assert len(calls.read_text().splitlines()) == 1, "a cached folder must not be fetched again"
    assert "-Dkafka.version=4.4.0" in calls.read_text()
    assert [p.name for p in first.parent.iterdir()] == ["lib"], "no staging folder left behind"


def test_a_failed_fetch_leaves_nothing_that_looks_complete(isolated):
    fake_tool(isolated, "mvn", 'echo "Could not resolve org.apache.kafka:kafka_2.13" >&2\nexit 1\n')
    with pytest.raises(KafkaUnavailable, match="Could not resolve"):
        apache_kafka.fetch_jars()
    assert not apache_kafka.jars_present(apache_kafka.jars_dir())
    assert list(apache_kafka.jars_dir().parent.iterdir()) == []


def test_missing_or_old_java_and_missing_maven_say_what_to_install(isolated):
    with pytest.raises(KafkaUnavailable, match="Java is not installed"):
        apache_kafka.find_kafka()
    fake_tool(isolated, "java", 'echo \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    with pytest.raises(KafkaUnavailable, match="Java 11; Apache Kafka 4 needs Java 17"):
        apache_kafka.find_kafka()
    fake_tool(isolated, "java", 'echo \'openjdk version "17.0.15" 2025-04-15\' >&2\n')
    with pytest.raises(KafkaUnavailable, match="Maven"):
        apache_kafka.find_kafka()


def test_without_java_the_tests_use_the_mock_unless_strict(isolated, monkeypatch):
    assert broker.kafka_plan().startswith("Docker or the embedded mock: Java is not installed")
    monkeypatch.setenv(STRICT_ENV, "1")
    assert "Apache Kafka required" in broker.kafka_plan()
    with pytest.raises(KafkaUnavailable, match="CATALOG_SYNC_STRICT=1.*Java is not installed"):
        broker.kafka_for_tests()
    monkeypatch.setenv(broker.TEST_KAFKA_ENV, "embedded")  # an explicit choice still stands
    assert broker.kafka_plan() == "the embedded mock (CATALOG_SYNC_TEST_KAFKA=embedded)"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    chosen = broker.kafka_for_tests()
    assert (chosen.kind, chosen.bootstrap_servers, chosen.api_version) == ("env", "kafka-1:9092", None)


def test_a_wrong_choice_is_refused(monkeypatch):
    monkeypatch.setenv(broker.TEST_KAFKA_ENV, "docker")
    with pytest.raises(ValueError, match="must be auto, apache or embedded"):
        broker.kafka_choice()


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_one_node_is_broker_and_controller_of_a_quorum_of_one(tmp_path):
    node = KafkaNode(1, 19092, 19093, tmp_path / "node-1")
    config = parse(_properties(node, [node]))
    assert config["process.roles"] == "broker,controller"
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert config["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert config["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert config["auto.create.topics.enable"] == "false"
    assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("1", "1")
    assert config["offsets.topic.replication.factor"] == "1"


def test_three_nodes_replicate_three_times_and_need_two_in_sync(tmp_path):
    nodes = [KafkaNode(i, 19000 + 2 * i, 19001 + 2 * i, tmp_path / f"node-{i}") for i in (1, 2, 3)]
    configs = [parse(_properties(node, nodes)) for node in nodes]
    assert {c["controller.quorum.bootstrap.servers"] for c in configs} == {
        "127.0.0.1:19003,127.0.0.1:19005,127.0.0.1:19007"}
    assert [c["node.id"] for c in configs] == ["1", "2", "3"]
    for config in configs:
        assert (config["default.replication.factor"], config["min.insync.replicas"]) == ("3", "2")
        assert (config["transaction.state.log.replication.factor"], config["transaction.state.log.min.isr"]) == ("3", "2")


def test_a_cluster_has_one_or_three_nodes():
    with pytest.raises(ValueError, match="1 or 3 nodes"):
        apache_kafka.ApacheKafkaCluster(2)


def test_kafka_uuids_are_never_read_as_options():
    ids = {apache_kafka._kafka_uuid() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
