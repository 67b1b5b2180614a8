"""How the batch strategy assembles a batch from polls: a small poll is topped up for
KAFKA_BATCH_LINGER_MS, a full one goes at once, and records of a partition revoked meanwhile are
not handled twice."""

from __future__ import annotations

import pytest
from loop_fixtures import drive, make_loop, publish, settings

from catalog_sync.runtime.memory_bus import MemoryBus


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(partitions=3)


def arrivals(bus: MemoryBus, *polls):
    """Publish each group of (partition, count) as the next poll begins: records trickling in."""
    left = list(polls)

    def on_poll():
        if left:
            for partition, count in left.pop(0):
                publish(bus, range(count), partition=partition)

    bus.on_poll = on_poll


def recording(batches: list, bus: MemoryBus):
    def handle_batch(batch):
        batches.append(([(m.partition, m.offset) for m in batch], len(bus.consumers[0].polls)))
        return []

    return handle_batch


def test_a_small_poll_is_topped_up_to_the_batch_size_and_a_full_batch_does_not_wait(bus):
    batches = []
    arrivals(bus, [(0, 3)], [(0, 2)], [(1, 5)], [(2, 1)])
    loop = make_loop(bus, "batch", handle_batch=recording(batches, bus),
                     runtime=settings(max_poll_records=10, batch_linger_ms=60_000))
    drive(loop, bus)

    first, second = batches
    assert first == ([*((0, o) for o in range(3)), *((0, o) for o in range(3, 5)), *((1, o) for o in range(5))], 3)
    assert second[0] == [(2, 0)]  # the last, lone record: handled at the stop, not after a minute
    assert bus.consumers[0].polls[:3] == [10, 7, 5]  # never asks past the batch size


def test_a_full_poll_goes_at_once_and_no_linger_means_no_extra_poll(bus):
    batches = []
    publish(bus, range(10))
    loop = make_loop(bus, "batch", handle_batch=recording(batches, bus),
                     runtime=settings(max_poll_records=10, batch_linger_ms=60_000))
    drive(loop, bus)
    assert batches[0] == ([(0, o) for o in range(10)], 1)

    batches, bus = [], MemoryBus()
    publish(bus, [0])
    loop = make_loop(bus, "batch", handle_batch=recording(batches, bus), runtime=settings(batch_linger_ms=0))
    drive(loop, bus)
    assert batches == [([(0, 0)], 1)]


def test_records_held_from_a_revoked_partition_are_handled_once_with_those_polled_after(bus):
    batches = []
    publish(bus, [0, 1], partition=0)
    publish(bus, [0], partition=1)
    loop = make_loop(bus, "batch", handle_batch=recording(batches, bus),
                     runtime=settings(max_poll_records=100, batch_linger_ms=60_000))
    # Partition 0 is revoked and assigned again while its offsets 0-1 are held; offset 2 arrives.
    drive(loop, bus, (lambda: True, lambda: (bus.revoke([("t.in", 0)]), bus.assign([("t.in", 0)]),
                                             publish(bus, [2], partition=0))))

    [(batch, _)] = batches
    assert sorted(batch) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert bus.committed == {("t.in", 0): 3, ("t.in", 1): 1}
