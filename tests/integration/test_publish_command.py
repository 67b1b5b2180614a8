"""`catalog-sync publish` and `schedule` as a user runs them, over a real Kafka-protocol broker."""

import json
import os
import subprocess
import sys

import pytest

from catalog_sync.runtime import topics
from tests.support.broker import read_events

pytestmark = pytest.mark.kafka
ITEM = {"reference": "HB-1", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
        "seller_id": "A1SELLER", "attributes": {"item_name": [{"value": "Band"}]}}


def cli(args, env, timeout=60):
    return subprocess.run([sys.executable, "-m", "catalog_sync", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def test_publish_opens_the_run_publishes_items_keyed_per_item_and_closes_it(tmp_path, kafka_env, runtime_settings):
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps({**ITEM, "reference": f"HB-{i}"}) for i in range(5)) + "\n")
    result = cli(["publish", str(path), "--mode", "test"], kafka_env)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert run_id.startswith("run-")
    settings = runtime_settings("reader")
    run_events = read_events(settings, topics.CATALOG_RUN_EVENTS, 2)
    assert [name for _, name, _ in run_events] == ["RunOpened", "RunClosed"]
    opened, closed = run_events[0][2], run_events[1][2]
    assert (opened["run_id"], opened["mode"], opened["endpoint"]) == (run_id, "test", "test")
    assert closed["item_count"] == 5
    items = read_events(settings, topics.CATALOG_ITEM_CHANGED, 5)
    assert sorted(key for key, _, _ in items) == [f"A1SELLER|ATVPDKIKX0DER|HB-{i}" for i in range(5)]
    assert {event["run_id"] for _, _, event in items} == {run_id}


def test_publish_refuses_a_file_with_bad_lines_and_names_them(tmp_path, kafka_env):
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(ITEM) + "\n" + json.dumps({"reference": "X"}) + "\n")
    result = cli(["publish", str(path), "--mode", "production"], kafka_env)
    assert result.returncode == 2
    assert f"{path}:2:" in result.stderr
    assert "nothing published" in result.stderr
    assert result.stdout == ""


def test_schedule_announces_the_next_run(tmp_path, kafka_env, runtime_settings):
    path = tmp_path / "catalog.jsonl"
    path.write_text(json.dumps(ITEM) + "\n")
    result = cli(["schedule", str(path), "--every", "1s", "--mode", "preview", "--runs", "2"], kafka_env)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 2
    opened = [e for _, name, e in read_events(runtime_settings("reader"), topics.CATALOG_RUN_EVENTS, 4)
              if name == "RunOpened"]
    assert len(opened) == 2
    for run in opened:
        assert (run["next_run_at"] - run["started_at"]).total_seconds() == pytest.approx(1.0, abs=0.01)
