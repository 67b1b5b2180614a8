"""How the batch Worker assembles a batch from polls: a small poll is topped up for
KAFKA_BATCH_LINGER_MS, and records of a partition revoked meanwhile are not handled."""

from __future__ import annotations

from catalog_sync.runtime.bus import Record
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.worker import Worker


def records(partition: int, offsets) -> list[Record]:
    return [Record("in", partition, o, None, b"", 0) for o in offsets]


class ScriptedConsumer:
    """Answers polls from a script; a step may revoke (then re-assign) partitions first, as a
    rebalance inside kafka-python's poll does."""

    def __init__(self, worker: Worker, steps):
        self.worker = worker
        self.steps = list(steps)
        self.polls: list[int] = []  # max_records asked by each poll

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Record]:
        self.polls.append(max_records)
        if not self.steps:
            return []
        revoke, answer = self.steps.pop(0)
        if revoke:
            self.worker._revoked(revoke)
        return answer


def worker(linger_ms: int = 100, max_records: int = 10) -> Worker:
    settings = RuntimeSettings(service="test", max_poll_records=max_records, batch_linger_ms=linger_ms)
    return Worker(settings, topics=["in"], handle_batch=lambda batch: [])


def test_a_small_poll_is_topped_up_to_the_batch_size():
    w = worker()
    consumer = ScriptedConsumer(w, [(None, records(0, [3, 4])), (None, records(1, range(5))), (None, records(2, [0]))])
    batch = w._gather(consumer, records(0, [0, 1, 2]))
    assert [(r.partition, r.offset) for r in batch] == [*((0, o) for o in range(5)), *((1, o) for o in range(5))]
    assert consumer.polls == [7, 5]  # never asks past the batch size; stops once it is full


def test_a_full_poll_goes_at_once_and_no_linger_means_no_extra_poll():
    w = worker()
    consumer = ScriptedConsumer(w, [(None, records(1, [0]))])
    assert len(w._gather(consumer, records(0, range(10)))) == 10 and consumer.polls == []
    w = worker(linger_ms=0)
    consumer = ScriptedConsumer(w, [(None, records(1, [0]))])
    assert len(w._gather(consumer, records(0, [0]))) == 1 and consumer.polls == []


def test_records_held_from_a_revoked_partition_are_dropped_but_those_polled_after_are_kept():
    w = worker(max_records=100)
    # Partition 0 is revoked and re-assigned during the second poll, which returns it again from
    # the committed offset: the copies held from before must go, or offsets 0-1 run twice.
    consumer = ScriptedConsumer(w, [
        (None, records(1, [0])),
        ([("in", 0)], records(0, [0, 1, 2])),
    ])
    batch = w._gather(consumer, records(0, [0, 1]))
    assert [(r.partition, r.offset) for r in batch] == [(1, 0), (0, 0), (0, 1), (0, 2)]
    assert w._revoked_while_gathering is None  # a revoke outside a gather changes nothing held


def test_a_stop_ends_the_linger_with_what_is_in_hand():
    w = worker(linger_ms=60_000)
    w.stop.set()
    consumer = ScriptedConsumer(w, [(None, records(1, [0]))])
    assert len(w._gather(consumer, records(0, [0]))) == 1 and consumer.polls == []
