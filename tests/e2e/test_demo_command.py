"""`catalog-sync demo --once`, exactly as the README tells a new user to run it (via `make demo`)."""

import os
import re
import subprocess
import sys

import pytest

from catalog_sync.runtime.processes import free_port

pytestmark = pytest.mark.slow


def test_demo_once_completes_the_sample_run_with_request_ids_from_the_emulator(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "TOPIC_PREFIX"))}
    result = subprocess.run(
        [sys.executable, "-m", "catalog_sync", "demo", "--once", "--api-port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"run run-\S+: finished_with_errors — 14 items: 6 finished, 8 error, 0 pending", out), out
    request_ids = re.findall(r"request_id=([0-9a-f-]{36})", out)
    # 6 items reach Amazon (4 accepted or deleted, BP-3000 answered INVALID, BadSKU answered 400); the
    # variants of BP-3000 are not sent after their parent failed, and say so.
    assert len(request_ids) == 6 and len(set(request_ids)) == 6
    assert len(re.findall(r"parent_not_accepted not sent: its parent BP-3000", out)) == 2, out
    assert "web page:   http://127.0.0.1:" in out
    # The line a user pastes to publish more runs into the demo (or attach a Kafka tool to it).
    export = re.search(r"^  export KAFKA_BOOTSTRAP_SERVERS=(\S+) KAFKA_API_VERSION=(\S+) READ_STORE_URL=(\S+)$", out, re.M)
    assert export, out
    assert re.fullmatch(r"[\w.-]+:\d+(,[\w.-]+:\d+)*", export[1]) and export[2] == "2.3"
    assert export[3] == f"sqlite:///{tmp_path / 'catalog-sync.db'}"
    assert f"broker:     {export[1]} (embedded" in out


@pytest.mark.kafka
@pytest.mark.apache
def test_demo_on_a_kafka_cluster_creates_its_topics_there_and_completes_the_sample_run(kafka, apache_cluster, tmp_path):
    """The README's second command for a real cluster: `catalog-sync demo --kafka ADDRESS`."""
    from catalog_sync.runtime.bus import describe_partitions
    from catalog_sync.runtime.config import RuntimeSettings

    # The session's Apache Kafka when it is one (the demo's topics have no prefix: no other test uses
    # them), else a cluster of this test's own.
    bootstrap = kafka.bootstrap_servers if kafka.kind == "apache" else apache_cluster(1).bootstrap_servers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "TOPIC_PREFIX"))}
    result = subprocess.run(
        [sys.executable, "-m", "catalog_sync", "demo", "--once", "--kafka", bootstrap, "--api-port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"topics on \S+: \d+ created, \d+ already there", out), out
    assert re.search(r"run run-\S+: finished_with_errors — 14 items: 6 finished, 8 error, 0 pending", out), out
    assert f"broker:     {bootstrap} (yours; Kafka protocol negotiated)" in out
    settings = RuntimeSettings(service="probe", kafka_bootstrap_servers=bootstrap)
    assert len(describe_partitions(settings, "listing.ready")) == 4
