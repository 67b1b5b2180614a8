"""The consumer loop with its concurrent strategy (the submitter's) over a Kafka-protocol broker: a blocked
message does not hold up others, only the completed prefix is committed, busy partitions are
paused and resumed."""

from __future__ import annotations

import asyncio
import gc

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.concurrent_strategy import ConcurrentStrategy, _Task
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Outgoing, StopSignal
from catalog_sync.runtime.events import new_header, utc_now
from tests.support.background import running_in_thread, wait_until
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka
SOURCE = "test.concurrent.in"
SINK = "test.concurrent.out"


def closed(count: int) -> dict:
    return {**new_header("run-1"), "item_count": count, "closed_at": utc_now()}


class Harness:
    """A concurrent consumer loop in a thread; items in `blocked` wait until `release()` (or a stop)."""

    def __init__(self, settings, blocked=(), finishing=(), **options):
        self.blocked = set(blocked)
        self.finishing = set(finishing)  # blocked items that, when interrupted, still end with outputs
        self.seen: list[int] = []
        self.stop = StopSignal()
        self.registry = CollectorRegistry()
        self.strategy = ConcurrentStrategy(self.handle, commit_interval_s=0.2, **options)
        self.worker = ConsumerLoop(settings, topics=[SOURCE], strategy=self.strategy, accepts={"RunClosed"},
                                   registry=self.registry, stop=self.stop)
        self.gate = self.strategy.run_in_event_loop(self._make_gate())

    @staticmethod
    async def _make_gate():
        return asyncio.Event()

    async def handle(self, message):
        count = message.event["item_count"]
        self.seen.append(count)
        if count in self.blocked:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                if count not in self.finishing:
                    raise
        return [Outgoing(SINK, message.key, "RunClosed", {**message.event, "item_count": count + 1000})]

    def release(self):
        self.strategy.event_loop.call_soon_threadsafe(self.gate.set)

    def __enter__(self):
        self._running = running_in_thread(self.worker.run, self.stop, "concurrent-worker", 60)
        self._running.__enter__()
        return self

    def __exit__(self, *exc):
        return self._running.__exit__(*exc)


def publish(settings, counts, key="same-partition"):
    codec = AvroCodec()
    publish_raw(settings, SOURCE, [(key, codec.encode("RunClosed", closed(c))) for c in counts])


def test_a_blocked_message_does_not_hold_up_the_others_and_only_the_prefix_is_committed(runtime_settings):
    settings = runtime_settings("concurrent")
    publish(settings, range(10))
    with Harness(settings, blocked={3}, shutdown_drain_s=0.0):
        outputs = read_events(settings, SINK, 9, timeout_s=60)  # all but the blocked one
        assert sorted(e["item_count"] - 1000 for _, _, e in outputs) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    # Stopped with message 3 in flight: offsets 0-2 were committed, 3 onwards were not.
    with Harness(settings) as again:
        wait_until(lambda: len(again.seen) >= 7, 60, message="replay after restart")
        wait_until(lambda: again.strategy.in_flight == 0, 30, message="replay finished")
        assert sorted(again.seen) == [3, 4, 5, 6, 7, 8, 9]


def test_a_handled_message_is_freed_at_once_not_left_to_the_garbage_collector(runtime_settings):
    # A message caught in a reference cycle (with its payload and outputs) stays in memory until
    # the cyclic collector runs, and every pass of that collector walks all the work in flight.
    settings = runtime_settings("concurrent")
    publish(settings, range(20))

    def tasks_alive() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is _Task)

    gc.disable()
    try:
        with Harness(settings) as harness:
            assert len(read_events(settings, SINK, 20, timeout_s=60)) == 20
            wait_until(lambda: harness.strategy.in_flight == 0, 30, message="every message handled")
            wait_until(lambda: tasks_alive() == 0, 10, message="handled messages freed without gc")
    finally:
        gc.enable()


def test_a_partition_with_too_much_in_flight_is_paused_then_resumed(runtime_settings):
    settings = runtime_settings("concurrent")
    publish(settings, range(10))
    with Harness(settings, blocked=set(range(100)), max_in_flight_per_partition=5) as harness:
        wait_until(lambda: harness.strategy.in_flight >= 5, 60, message="messages in flight")
        wait_until(lambda: harness.worker._paused, 30, message="partition paused")
        publish(settings, range(10, 20))  # same partition: must wait while it is paused
        for i in range(8):  # other keys, other partitions: proof the consumer keeps polling
            publish(settings, [200 + i], key=f"witness-{i}")
        wait_until(lambda: any(c >= 200 for c in harness.seen), 60, message="a witness message handled")
        assert not any(10 <= c < 20 for c in harness.seen)
        harness.release()
        outputs = read_events(settings, SINK, 28, timeout_s=60)
        assert sorted(e["item_count"] - 1000 for _, _, e in outputs) == [*range(20), *range(200, 208)]
        assert not harness.worker._paused


def test_a_message_finished_as_the_stop_began_still_has_its_outputs_produced(runtime_settings):
    # A handler that ends after the loop's last look at completions, and a stop with no drain time
    # left: the finished message's outcome (an SP-API answer) must still go out. The loop is made
    # to not look at completions while the message is in its books, so that moment is not left to
    # thread timing: only a look after the stop has taken it off the books can see it.
    settings = runtime_settings("concurrent")
    publish(settings, [7])
    with Harness(settings, shutdown_drain_s=0.0) as harness:
        strategy = harness.strategy
        look = strategy._drain
        strategy._drain = lambda block_s=0.0: None if strategy._tasks else look(block_s)
        wait_until(lambda: harness.seen == [7] and strategy._done.qsize() == 1, 60, message="the message finished")
    outputs = read_events(settings, SINK, 1, timeout_s=30)
    assert [e["item_count"] for _, _, e in outputs] == [1007]


def test_a_stop_interrupts_handlers_and_publishes_what_they_finish(runtime_settings):
    # Offset 0 is like an SP-API call on the wire: interrupted, it still ends with its outcome.
    # Offset 1 has not begun anything: interrupted, it is given back. Neither holds the stop up.
    settings = runtime_settings("concurrent")
    publish(settings, [0, 1])
    with Harness(settings, blocked={0, 1}, finishing={0}, shutdown_drain_s=60.0) as harness:
        wait_until(lambda: sorted(harness.seen) == [0, 1], 60, message="both messages in hand")
    outputs = read_events(settings, SINK, 1, timeout_s=30)
    assert [e["item_count"] for _, _, e in outputs] == [1000]
    with Harness(settings) as again:  # offset 0 was committed with its outcome; offset 1 comes back
        wait_until(lambda: again.seen == [1] and again.strategy.in_flight == 0, 60, message="replay after restart")
