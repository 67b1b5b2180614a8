"""The consumer loop over a real Kafka-protocol broker: commit, dead letters, graceful stop, and a
rebalance that gives a member back partitions whose messages it had in flight."""

import asyncio
import threading

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.bus import BusConsumer, TopicReader, ensure_topics
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.concurrent_strategy import ConcurrentStrategy
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Outgoing, StopSignal
from catalog_sync.runtime.events import new_header, utc_now
from tests.support.background import running_in_thread, wait_until
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


@pytest.mark.apache
def test_messages_in_flight_at_a_rebalance_are_handled_when_the_member_keeps_their_partitions(
        kafka, apache_cluster, kafka_env):
    """A second member joins while the first has every message in flight, then leaves. At each
    rebalance the first member gives its messages up and keeps some partitions, whose position the
    client keeps too: every message must still be echoed (before the loop rewound such partitions,
    the kept ones were read on from past the messages given up, which were never handled).
    Rebalance semantics: on Apache Kafka always (the mock's coordinator answers the second
    member's SyncGroup with InvalidRequestError now and then)."""
    env = dict(kafka_env)
    if kafka.kind != "apache":
        env.pop("KAFKA_API_VERSION", None)
        env["KAFKA_BOOTSTRAP_SERVERS"] = apache_cluster(1).bootstrap_servers
    settings = RuntimeSettings.from_env("echo", env, max_poll_records=500)
    codec = AvroCodec()
    count = 200
    publish_raw(settings, SOURCE, [(f"k{i}", codec.encode("RunClosed", closed_event(i))) for i in range(count)])
    revoked = asyncio.Event()

    async def handle(message):
        await revoked.wait()  # everything polled before the first rebalance is still in flight then
        count = message.event["item_count"]
        return [Outgoing(SINK, message.key, "RunClosed", {**message.event, "item_count": count + 1000})]

    strategy = ConcurrentStrategy(handle, revoke_drain_s=0.5, commit_interval_s=0.5)
    stop = StopSignal()
    first = ConsumerLoop(settings, topics=[SOURCE], strategy=strategy, accepts={"RunClosed"},
                         registry=CollectorRegistry(), stop=stop,
                         on_revoke=lambda partitions: partitions and strategy.event_loop.call_soon_threadsafe(revoked.set))
    with running_in_thread(first.run, stop, name="first member"):
        wait_until(lambda: first.metrics.registry.get_sample_value(
            "pipeline_messages_consumed_total", {"service": "echo", "topic": settings.topic(SOURCE)}) == count,
            timeout_s=30, message="the first member to take every message")
        second = BusConsumer(settings, [settings.topic(SOURCE)])  # the same group: a rebalance
        try:
            wait_until(lambda: second.poll(timeout_ms=100) is not None and second.assignment(), timeout_s=30,
                       message="the second member's assignment")
        finally:
            second.close()  # leaves without committing: the first member takes everything again
        ensure_topics(settings, [settings.topic(SINK)])
        echoed = echoed_counts(settings, count, timeout_s=60)
    assert echoed == {i + 1000 for i in range(count)}


def echoed_counts(settings, distinct: int, timeout_s: float) -> set[int]:
    """The item counts on SINK once `distinct` different ones are there (replays may repeat some)."""
    codec = AvroCodec()
    reader = TopicReader(settings, [settings.topic(SINK)], timeout_s=timeout_s)
    seen: set[int] = set()
    try:
        wait_until(lambda: seen.update(codec.decode(r.value)[1]["item_count"] for r in reader.poll(timeout_ms=200))
                   or len(seen) >= distinct, timeout_s=timeout_s, interval_s=0,
                   message=f"{distinct} distinct echoes")
    finally:
        reader.close()
    return seen
