"""A worker whose positions live in its own store (the recorder) is sought back to them whenever
that store fails: a store that lost acknowledged writes in a crash gets them again, and nothing is
handled from a partition before the store has said where to start."""

from __future__ import annotations

import pytest
from loop_fixtures import SETTINGS, drive, make_loop, publish, settings

from catalog_sync.runtime.consumer_loop import Reposition, RetryableError
from catalog_sync.runtime.memory_bus import MemoryBus

P0, P1 = (SETTINGS.topic("in"), 0), (SETTINGS.topic("in"), 1)


class CrashingStore:
    """Applied messages and the next offset of each partition, written together per batch as the
    read store does. `crash(lose)` loses the last `lose` batches written (a server whose
    acknowledged commits did not survive) and leaves it down for `down_for` position reads."""

    def __init__(self):
        self.batches: list[tuple[list[tuple[str, int, int]], dict]] = []  # (messages, offsets after)
        self.down_for = 0
        self.crashes_left: list[tuple[int, int]] = []  # (at batch call, batches lost)
        self.calls = 0

    @property
    def applied(self) -> list[tuple[str, int, int]]:
        return [m for messages, _ in self.batches for m in messages]

    @property
    def offsets(self) -> dict:
        return dict(self.batches[-1][1]) if self.batches else {}

    def handle_batch(self, batch):
        self.calls += 1
        if self.crashes_left and self.crashes_left[0][0] == self.calls:
            _, lose = self.crashes_left.pop(0)
            del self.batches[len(self.batches) - lose:]
            self.down_for = 2
            raise Reposition("store crashed")
        offsets = self.offsets
        for m in batch:
            offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), 0), m.offset + 1)
        self.batches.append(([(m.topic, m.partition, m.offset) for m in batch], offsets))
        return []

    def on_assign(self, partitions):
        if self.down_for:
            self.down_for -= 1
            raise RetryableError("store unavailable")
        return {tp: self.offsets.get(tp, 0) for tp in partitions}


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(partitions=2)


def test_after_a_store_crash_every_partition_is_read_again_from_what_the_store_kept(bus):
    publish(bus, range(10), partition=0)
    publish(bus, range(6), partition=1)
    store = CrashingStore()
    store.crashes_left = [(3, 2), (6, 1)]  # the 3rd batch finds the two before it lost; later one more
    loop = make_loop(bus, "batch", handle_batch=store.handle_batch, on_assign=store.on_assign,
                     runtime=settings(max_poll_records=3))
    drive(loop, bus, (lambda: len(store.applied) >= 16, lambda: None))

    every = [("in", 0, o) for o in range(10)] + [("in", 1, o) for o in range(6)]
    assert sorted(store.applied) == every, "a message the crashed store lost was skipped, or applied twice"
    assert store.offsets == {("in", 0): 10, ("in", 1): 6}
    seeks = bus.consumers[0].seeks
    assert len(seeks) == 4 and {tp for tp, _ in seeks} == {P0, P1}, "every assigned partition is sought, twice"
    assert bus.committed == {P0: 10, P1: 6}


def test_partitions_are_held_while_the_store_cannot_say_where_they_start(bus):
    publish(bus, range(5), partition=0)
    bus.committed[P0] = 4  # Kafka's commit is ahead of the store: it never decides what is applied
    store = CrashingStore()
    store.down_for = 3
    handled = []

    def handle_batch(batch):
        handled.extend(m.offset for m in batch)
        return store.handle_batch(batch)

    loop = make_loop(bus, "batch", handle_batch=handle_batch, on_assign=store.on_assign)
    drive(loop, bus, (lambda: len(handled) >= 5, lambda: None))
    assert handled == [0, 1, 2, 3, 4]
    assert store.down_for == 0


def test_reposition_needs_positions_to_seek_to(bus):
    publish(bus, [1])

    def handle_batch(batch):
        raise Reposition("store crashed")

    loop = make_loop(bus, "batch", handle_batch=handle_batch)
    with pytest.raises(RuntimeError, match="on_assign"):
        drive(loop, bus)
