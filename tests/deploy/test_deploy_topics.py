"""deploy/kafka/create-topics.sh, run against a stand-in kafka-topics.sh that records its calls."""

from __future__ import annotations

import os
import subprocess

from deploy_facts import DEPLOY, WORKERS

from catalog_sync.runtime import topics

SCRIPT = DEPLOY / "kafka" / "create-topics.sh"


def run_script(tmp_path, **env) -> list[list[str]]:
    calls = tmp_path / "calls"
    stub = tmp_path / "kafka-topics.sh"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls}"\n')
    stub.chmod(0o755)
    result = subprocess.run(
        ["/bin/sh", str(SCRIPT)],
        env={"PATH": os.environ["PATH"], "KAFKA_TOPICS": str(stub), "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", **env},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return [line.split() for line in calls.read_text().splitlines()]


def flag_value(call: list[str], flag: str) -> str:
    return call[call.index(flag) + 1]


def created(calls) -> dict[str, dict]:
    """topic -> {"partitions": int, "config": [k=v], "replication": int} for every --create call."""
    out = {}
    for call in calls:
        if "--create" not in call:
            continue
        assert "--if-not-exists" in call, "re-running must not fail on existing topics"
        assert call[call.index("--bootstrap-server") + 1] == "kafka:9092"
        out[flag_value(call, "--topic")] = {
            "partitions": int(flag_value(call, "--partitions")),
            "replication": int(flag_value(call, "--replication-factor")),
            "config": [call[i + 1] for i, arg in enumerate(call) if arg == "--config"],
        }
    return out


def test_creates_every_topic_the_code_uses(tmp_path):
    made = created(run_script(tmp_path))
    expected = {*topics.ALL_EVENT_TOPICS, topics.LISTING_ACCEPTED_HASHES, topics.LISTING_FEEDS_INFLIGHT}
    expected |= {topics.dead_letter_topic(service) for service in WORKERS}
    assert set(made) == expected
    assert made[topics.LISTING_ACCEPTED_HASHES]["config"] == ["cleanup.policy=compact"]
    assert made[topics.LISTING_FEEDS_INFLIGHT]["config"] == ["cleanup.policy=compact"]
    assert all(t["replication"] == 1 for t in made.values())
    # The scaled inputs get the configured partition count (12 unless PARTITIONS says otherwise).
    for name in (topics.CATALOG_ITEM_CHANGED, topics.LISTING_READY, topics.LISTING_SUBMISSION_COMPLETED):
        assert made[name]["partitions"] == 12


def test_the_script_creates_what_topics_create_does(tmp_path):
    """catalog_sync.runtime.topics (`catalog-sync topics create`) and the script describe the same topics."""
    made = created(run_script(tmp_path, PARTITIONS="7"))
    plan = topics.topic_plan(partitions=7)
    assert {name: made[name]["partitions"] for name in made} == {name: p for name, (p, _) in plan.items()}
    assert {name: sorted(made[name]["config"]) for name in made} == {
        name: sorted(f"{k}={v}" for k, v in configs.items()) for name, (_, configs) in plan.items()}


def test_partitions_replication_and_prefix_follow_the_environment(tmp_path):
    made = created(run_script(tmp_path, PARTITIONS="24", REPLICATION_FACTOR="3", TOPIC_PREFIX="tenant1."))
    assert all(name.startswith("tenant1.") for name in made)
    assert made["tenant1.listing.ready"]["partitions"] == 24
    assert {t["replication"] for t in made.values()} == {3}
    assert all("min.insync.replicas=2" in t["config"] for t in made.values())  # the default with 3 copies
    plan = topics.topic_plan(prefix="tenant1.", partitions=24, min_insync_replicas=2)
    assert {name: sorted(t["config"]) for name, t in made.items()} == {
        name: sorted(f"{k}={v}" for k, v in configs.items()) for name, (_, configs) in plan.items()}


def test_secured_clusters_get_the_client_config(tmp_path):
    calls = run_script(tmp_path, KAFKA_COMMAND_CONFIG="/etc/kafka/client.properties")
    assert calls and all(call[call.index("--command-config") + 1] == "/etc/kafka/client.properties" for call in calls)
