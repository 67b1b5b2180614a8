"""The recorder worker over a real Kafka-protocol broker: events → read store, duplicates and
undecodable input, and positions taken from the read store rather than from Kafka."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.recorder.metrics import RecorderMetrics
from catalog_sync.recorder.projection import PROJECTED_EVENTS
from catalog_sync.recorder.read_model import ItemFilters, ReadModel
from catalog_sync.recorder.service import TOPICS, Recorder, build_worker
from catalog_sync.recorder.settings import RecorderSettings
from catalog_sync.recorder.store import ReadStore
from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.consumer_loop import ConsumerLoop, StopSignal
from tests.support.background import running_in_thread, wait_until
from tests.support.broker import publish_raw, read_events
from tests.support.sample_events import TOPIC_OF, SampleRun

pytestmark = pytest.mark.kafka


def key_of(event: dict) -> str:
    if "reference" in event:
        return f"{event.get('seller_id') or ''}|{event['marketplace_id']}|{event['reference']}"
    return event["run_id"]


CODEC = AvroCodec()


def publish(settings, events, codec=CODEC):
    by_topic: dict[str, list] = {}
    for kind, event in events:
        by_topic.setdefault(TOPIC_OF[kind], []).append((key_of(event), codec.encode(kind, event)))
    for topic, items in by_topic.items():
        publish_raw(settings, topic, items)



@pytest.fixture
def store(tmp_path):
    s = ReadStore(f"sqlite:///{tmp_path / 'read.db'}")
    s.migrate()
    yield s
    s.close()


def test_worker_projects_a_run_ignores_duplicates_and_dead_letters_garbage(runtime_settings, store):
    runtime = runtime_settings("recorder")
    run = SampleRun()
    events = [run.opened(), *[run.changed(f"HB-{i}") for i in range(12)]]
    events += [run.submitted(f"HB-{i}", accepted=i % 4 != 0) for i in range(12)] + [run.closed(12)]
    publish(runtime, events + events[3:6])  # three events published twice
    publish_raw(runtime, TOPIC_OF["SubmissionCompleted"], [("junk", b"\x00not avro")])
    registry, stop = CollectorRegistry(), StopSignal()
    model = ReadModel(store)
    worker = build_worker(runtime, RecorderSettings(), store, registry=registry, stop=stop)
    with running_in_thread(worker.run, stop, "recorder"):
        wait_until(lambda: model.runs()["runs"] and model.runs()["runs"][0]["status"] != "in_progress",
                   timeout_s=60, message="the run to be recorded")
        dead = read_events(runtime, "recorder.dlq", 1)
    (recorded,) = model.runs()["runs"]
    assert recorded["status"] == "finished_with_errors"
    assert recorded["counts"] == {"total": 12, "pending": 0, "error": 3, "finished": 9}
    assert model.items(ItemFilters(limit=100))["summary"]["total"] == 12
    assert registry.get_sample_value("recorder_events_projected_total", {"event_type": "CatalogItemChanged"}) == 12
    assert registry.get_sample_value("recorder_events_skipped_total", {"reason": "duplicate"}) == 3
    assert registry.get_sample_value("recorder_runs", {"status": "finished_with_errors"}) == 1

    def processed(kind: str, outcome: str) -> float:
        labels = {"service": "recorder", "topic": runtime.topic(TOPIC_OF[kind]), "outcome": outcome}
        return registry.get_sample_value("pipeline_messages_processed_total", labels) or 0

    # A batch spans the four topics: each message is counted once, under its own topic.
    assert processed("CatalogItemChanged", "ok") == 15
    assert (processed("SubmissionCompleted", "ok"), processed("SubmissionCompleted", "dead_letter")) == (12, 1)
    assert processed("RunOpened", "ok") == 2  # RunOpened and RunClosed
    assert dead[0][2]["reason"] == "not_avro" and dead[0][2]["partition"] >= 0


def test_positions_come_from_the_read_store_not_from_kafka(runtime_settings, store):
    """A second worker in a NEW Kafka group (no committed offsets) but the same read store resumes
    where the store says: nothing old is read again, new events are applied."""
    run = SampleRun()
    first = runtime_settings("recorder")
    publish(first, [run.opened(), *[run.changed(f"HB-{i}") for i in range(8)]])
    model = ReadModel(store)
    stop = StopSignal()
    worker = build_worker(first, RecorderSettings(), store, stop=stop)
    with running_in_thread(worker.run, stop, "recorder"):
        wait_until(lambda: model.items(ItemFilters())["summary"]["total"] == 8, timeout_s=60,
                   message="8 items recorded")

    second = runtime_settings("recorder", group_id=first.group_id + "-fresh")
    registry, stop2 = CollectorRegistry(), StopSignal()
    recorder = Recorder(store, first.group_id, RecorderMetrics(registry))  # same positions in the store
    worker = ConsumerLoop(second, topics=TOPICS, strategy=BatchStrategy(recorder.handle_batch),
                          accepts=PROJECTED_EVENTS, registry=registry, on_assign=recorder.on_assign, stop=stop2)
    with running_in_thread(worker.run, stop2, "recorder"):
        publish(second, [run.submitted("HB-0")])
        wait_until(lambda: model.items(ItemFilters(status="finished"))["summary"]["total"] == 1, timeout_s=60,
                   message="the new outcome recorded")
    assert registry.get_sample_value("pipeline_messages_consumed_total",
                                     {"service": "recorder", "topic": second.topic("catalog.item.changed")}) is None
    assert registry.get_sample_value("recorder_events_projected_total", {"event_type": "SubmissionCompleted"}) == 1
    assert registry.get_sample_value("recorder_events_skipped_total", {"reason": "already_applied"}) == 0
