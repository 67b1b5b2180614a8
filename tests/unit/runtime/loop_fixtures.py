"""Helpers for tests of the consumer loop over the in-memory bus: one loop of either strategy
around a per-message handler, run in the test's own thread until a script of steps is done."""

from __future__ import annotations

import dataclasses
import inspect
import time

from prometheus_client import CollectorRegistry

from catalog_sync.runtime.batch_strategy import BatchStrategy
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.concurrent_strategy import ConcurrentStrategy
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.consumer_loop import ConsumerLoop, Outgoing, StopSignal
from catalog_sync.runtime.events import new_header, utc_now
from catalog_sync.runtime.memory_bus import MemoryBus

# A topic prefix, as in every deployment of tests and demos: labels and dead letters name the
# full topic.
SETTINGS = RuntimeSettings(service="svc", topic_prefix="t.", batch_linger_ms=0, kafka_bootstrap_servers="memory")
TP = ("t.in", 0)
CODEC = AvroCodec()
STYLES = ["batch", "concurrent"]


class QuietStop(StopSignal):
    def install(self) -> None:
        """The loop runs in pytest's main thread here: leave its SIGINT/SIGTERM handlers alone."""


def settings(**changes) -> RuntimeSettings:
    return dataclasses.replace(SETTINGS, **changes)


def closed(count: int) -> dict:
    return {**new_header("run-1"), "item_count": count, "closed_at": utc_now()}


def publish(bus: MemoryBus, counts, topic: str = "in", key: str = "k", partition: int = 0) -> list:
    return [bus.publish(SETTINGS.topic(topic), key, CODEC.encode("RunClosed", closed(c)), partition=partition)
            for c in counts]


def echo(message) -> list[Outgoing]:
    """RunClosed with item_count + 1000; 666 cannot be handled."""
    count = message.event["item_count"]
    if count == 666:
        raise ValueError(f"cannot handle {count}")
    return [Outgoing("out", message.key, "RunClosed", {**message.event, "item_count": count + 1000})]


def outputs(bus: MemoryBus) -> list[int]:
    return [CODEC.decode(r.value)[1]["item_count"] for r in bus.records(SETTINGS.topic("out"))]


def dead_letters(bus: MemoryBus) -> list[dict]:
    return [CODEC.decode(r.value)[1] for r in bus.records(SETTINGS.topic("svc.dlq"))]


def metric(loop, name: str, **labels) -> float:
    return loop.metrics.registry.get_sample_value(name, {"service": "svc", **labels}) or 0


def handled(loop, outcome: str = "ok") -> float:
    """Messages the loop is done with (their outputs handed to the producer), whatever the topic label."""
    return sum(s.value for m in loop.metrics.registry.collect() if m.name == "pipeline_messages_processed"
               for s in m.samples if s.name.endswith("_total") and s.labels["outcome"] == outcome)


def make_loop(bus: MemoryBus, style: str, handle=echo, *, handle_batch=None, topics=("in",), on_assign=None,
              on_revoke=None, runtime: RuntimeSettings = SETTINGS, metrics=None, **options) -> ConsumerLoop:
    """`handle(message) -> outputs` (or a coroutine function, concurrent only) under either strategy;
    `handle_batch` replaces it for a batch loop."""
    if style == "batch":
        strategy = BatchStrategy(handle_batch or (lambda batch: [out for m in batch for out in handle(m)]),
                                 **options)
    else:
        if inspect.iscoroutinefunction(handle):
            handle_one = handle
        else:
            async def handle_one(message):
                return handle(message)
        strategy = ConcurrentStrategy(handle_one, **{"commit_interval_s": 0.0, **options})
    return ConsumerLoop(runtime, topics=topics, strategy=strategy, accepts={"RunClosed"},
                        registry=None if metrics else CollectorRegistry(), metrics=metrics, on_assign=on_assign,
                        on_revoke=on_revoke, stop=QuietStop(), bus=bus, retry_pause_s=0.01)


def drive(loop, bus: MemoryBus, *steps, timeout_s: float = 20.0) -> None:
    """Run `loop` here until its stop. Each poll that finds nothing takes the next step
    `(condition, action)` whose condition holds; once every step is taken, the loop is stopped.
    Past `timeout_s` the loop is stopped too and the test fails on what did not happen."""
    left = list(steps)
    deadline = time.monotonic() + timeout_s

    def on_idle():
        if not left or time.monotonic() > deadline:
            loop.stop.set()
        elif left[0][0]():
            left.pop(0)[1]()

    bus.on_idle = on_idle
    loop.run()
    assert not left, f"{len(left)} steps not taken within {timeout_s} s"


def run_until(loop, bus: MemoryBus, condition) -> None:
    drive(loop, bus, (condition, lambda: None))
