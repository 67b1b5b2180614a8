"""The consumer loop (batch strategy) over a real Kafka-protocol broker: commit, dead letters, graceful stop."""

import threading

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Outgoing, StopSignal
from catalog_sync.runtime.events import new_header, utc_now
from tests.support.background import wait_until
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka
SOURCE = "test.run.closed"
SINK = "test.run.echoed"


def closed_event(count: int) -> dict:
    return {**new_header("run-1"), "item_count": count, "closed_at": utc_now()}


class EchoWorker:
    """Runs a batch consumer loop in a thread that re-publishes every RunClosed with item_count + 1000."""

    def __init__(self, settings, fail_on: int | None = None):
        self.seen: list[int] = []
        self.stop = StopSignal()
        self.fail_on = fail_on
        self.registry = CollectorRegistry()
        self.worker = ConsumerLoop(settings, topics=[SOURCE], strategy=BatchStrategy(self.handle),
                                   accepts={"RunClosed"}, registry=self.registry, stop=self.stop)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def handle(self, batch):
        out = []
        for message in batch:
            count = message.event["item_count"]
            if count == self.fail_on:
                raise ValueError(f"cannot handle {count}")
            self.seen.append(count)
            out.append(Outgoing(SINK, message.key, "RunClosed", {**message.event, "item_count": count + 1000}))
        return out

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "worker did not stop within 30 s"

    def metric(self, name, **labels):
        return self.registry.get_sample_value(name, labels) or 0


def test_handles_produces_and_commits_so_a_restart_does_not_replay(runtime_settings):
    settings = runtime_settings("echo")
    codec = AvroCodec()
    publish_raw(settings, SOURCE, [(f"k{i}", codec.encode("RunClosed", closed_event(i))) for i in range(20)])
    with EchoWorker(settings) as first:
        echoed = read_events(settings, SINK, 20)
        assert sorted(e["item_count"] for _, _, e in echoed) == [i + 1000 for i in range(20)]
        assert sorted(first.seen) == list(range(20))
        assert first.metric("pipeline_messages_consumed_total", service="echo", topic=settings.topic(SOURCE)) == 20
        # Lag is exported per assigned partition (the 4 ensure_topics creates), 0 once all is handled.
        lag_samples = wait_until(lambda: [
            s for m in first.registry.collect() if m.name == "pipeline_consumer_lag_messages" for s in m.samples
        ], timeout_s=15, message="lag gauges")
        assert {s.labels["topic"] for s in lag_samples} == {settings.topic(SOURCE)}
        assert len(lag_samples) >= 1 and all(s.value == 0 for s in lag_samples)

    publish_raw(settings, SOURCE, [("k-late", codec.encode("RunClosed", closed_event(99)))])
    with EchoWorker(settings) as second:
        read_events(settings, SINK, 21)
    assert second.seen == [99], "the restarted worker replayed committed messages"


def test_undecodable_and_failing_messages_go_to_the_dead_letter_topic_and_the_rest_flows(runtime_settings):
    settings = runtime_settings("echo")
    codec = AvroCodec()
    publish_raw(settings, SOURCE, [
        ("bad-json", b'{"not": "avro"}'),
        ("good-1", codec.encode("RunClosed", closed_event(1))),
        ("wrong-schema", codec.encode("RunOpened", {**new_header("r"), "mode": "test", "endpoint": "test",
                                                    "started_at": utc_now(), "next_run_at": None, "source": None})),
        ("boom", codec.encode("RunClosed", closed_event(666))),
        ("good-2", codec.encode("RunClosed", closed_event(2))),
    ])
    with EchoWorker(settings, fail_on=666) as worker:
        echoed = read_events(settings, SINK, 2)
        dead = read_events(settings, "echo.dlq", 3)
    assert sorted(e["item_count"] for _, _, e in echoed) == [1001, 1002]
    by_key = {key: event for key, _, event in dead}
    assert by_key["bad-json"]["reason"] == "not_avro"
    assert by_key["bad-json"]["value"] == b'{"not": "avro"}'
    assert by_key["wrong-schema"]["reason"] == "unexpected_schema"
    assert by_key["boom"]["reason"] == "handler_error"
    assert "cannot handle 666" in by_key["boom"]["error"]
    assert codec.decode(by_key["boom"]["value"])[1]["item_count"] == 666  # original bytes kept for replay
    assert all(e["topic"] == settings.topic(SOURCE) for e in by_key.values())
    assert worker.metric("pipeline_dead_letters_total", service="echo", topic=settings.topic(SOURCE),
                         reason="not_avro") == 1
