"""The consumer loop under both strategies, over the in-memory bus: at-least-once commits, revokes,
dead letters, the dead-letter budget, graceful stops and the shared pipeline metrics."""

from __future__ import annotations

import asyncio

import pytest
from loop_fixtures import (
    CODEC,
    SETTINGS,
    STYLES,
    TP,
    dead_letters,
    drive,
    echo,
    handled,
    make_loop,
    metric,
    outputs,
    publish,
    run_until,
    settings,
)

from catalog_sync.runtime.dead_letters import DeadLetterFlood
from catalog_sync.runtime.memory_bus import MemoryBus


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


def delivered_counts_before(bus: MemoryBus, index: int) -> set[int]:
    out = bus.records(SETTINGS.topic("out"))
    return {CODEC.decode(out[e[3]].value)[1]["item_count"] for e in bus.events[:index]
            if e[0] == "delivered" and e[1] == SETTINGS.topic("out")}


@pytest.mark.parametrize("style", STYLES)
def test_an_offset_is_committed_only_once_the_outputs_before_it_are_delivered(style, bus):
    publish(bus, [1, 2, 3])  # offsets 0-2
    bus.fail_flushes = 1  # the broker does not confirm the first outputs
    loop = make_loop(bus, style)
    run_until(loop, bus, lambda: bus.committed.get(TP) == 3)

    assert sorted(outputs(bus)) == [1001, 1002, 1003], "an output was lost or produced twice"
    commits = [(i, e[1][TP]) for i, e in enumerate(bus.events) if e[0] == "committed" and TP in e[1]]
    assert commits and commits[-1][1] == 3  # offset + 1 of the last message
    assert any(e[0] == "flush_failed" for e in bus.events[:commits[0][0]])
    for index, offset in commits:  # offset N committed: the outputs of offsets 0..N-1 (counts 1..N) are out
        assert set(range(1001, 1001 + offset)) <= delivered_counts_before(bus, index)


def test_a_revoke_in_a_batch_loop_keeps_the_commit_of_what_is_done_and_drops_what_is_held(bus):
    publish(bus, range(5))  # offsets 0-4; a batch holds 3
    batches, at_revoke = [], []

    def handle_batch(batch):
        batches.append([m.offset for m in batch])
        return []

    loop = make_loop(bus, "batch", handle_batch=handle_batch, runtime=settings(max_poll_records=3,
                                                                              batch_linger_ms=60_000),
                     on_revoke=lambda partitions: at_revoke.append(dict(bus.committed)))
    # Offsets 3-4 are held waiting for a fuller batch when the partition is revoked and assigned
    # again: the copies held must go (they come back from the committed offset), or they run twice.
    drive(loop, bus, (lambda: True, lambda: (bus.revoke([TP]), bus.assign([TP]))))

    assert at_revoke == [{TP: 3}]
    assert batches == [[0, 1, 2], [3, 4]]
    assert bus.committed == {TP: 5}


def test_a_revoke_in_a_concurrent_loop_commits_the_finished_prefix_and_gives_back_the_rest(bus):
    publish(bus, range(5))  # item_count = offset
    interrupted = []

    async def handle(message):
        if message.offset == 2:  # a call that does not answer before the revoke
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                interrupted.append(message.offset)
                raise
        return echo(message)

    loop = make_loop(bus, "concurrent", handle, commit_interval_s=60.0, revoke_drain_s=0.0)
    drive(loop, bus, (lambda: handled(loop) == 4,
                      lambda: bus.revoke([TP])))

    assert bus.committed == {TP: 2}, "offsets 0-1 are done; 2 is not, so 3-4 wait for it"
    assert interrupted == [2]
    assert sorted(outputs(bus)) == [1000, 1001, 1003, 1004]


@pytest.mark.parametrize("style", STYLES)
def test_a_partition_revoked_and_assigned_back_resumes_at_its_first_unfinished_message(style, bus):
    """kafka-python (like the Java client) keeps the position of a partition a member gets back in
    the same rebalance: messages the loop gave up at the revoke must be read again from there, or
    they are skipped for good (the worker-kill test once left 266 items pending on Apache Kafka)."""
    publish(bus, range(5))
    release = asyncio.Event()
    rebalanced = []

    async def handle(message):
        if message.offset == 2 and not rebalanced:
            await release.wait()  # in flight at the revoke: interrupted, given back
        return echo(message)

    def rebalance():
        rebalanced.append(True)
        bus.revoke([TP])
        bus.assign([TP])

    if style == "batch":  # offsets 3-4 are held for a fuller batch at the revoke; the stop ends the linger
        loop = make_loop(bus, style, runtime=settings(max_poll_records=3, batch_linger_ms=60_000))
        drive(loop, bus, (lambda: handled(loop) == 3, rebalance))
    else:
        loop = make_loop(bus, style, handle, commit_interval_s=0.0, revoke_drain_s=0.0)
        drive(loop, bus, (lambda: handled(loop) == 4, rebalance), (lambda: 1002 in outputs(bus), lambda: None),
              timeout_s=5)

    assert set(outputs(bus)) == {1000, 1001, 1002, 1003, 1004}, "a message given back at the revoke was skipped"
    assert bus.committed == {TP: 5}


def test_a_paused_partition_assigned_back_is_read_again(bus):
    """kafka-python keeps the paused flag of a partition a member gets back; the loop forgets its
    pauses at a revoke, so it must hand the partition back unpaused or it stays paused for good."""
    publish(bus, range(6))
    release = asyncio.Event()

    async def handle(message):
        await release.wait()
        return echo(message)

    loop = make_loop(bus, "concurrent", handle, commit_interval_s=0.0, revoke_drain_s=0.0,
                     max_in_flight_per_partition=2)
    drive(loop, bus, (lambda: TP in bus.consumers[0].paused,
                      lambda: (bus.revoke([TP]), bus.assign([TP]),
                               loop.strategy.event_loop.call_soon_threadsafe(release.set))),
          (lambda: bus.committed.get(TP) == 6, lambda: None), timeout_s=5)

    assert sorted(set(outputs(bus))) == [1000, 1001, 1002, 1003, 1004, 1005]


def test_the_commit_at_a_revoke_is_sent_without_blocking_inside_the_rebalance_callback(bus):
    """kafka-python 3 refuses a blocking commit inside its rebalance callbacks (they run on its IO
    thread): the revoke's commit is sent without waiting, before the member rejoins."""
    publish(bus, range(3))
    go = asyncio.Event()
    at_revoke = []

    async def handle(message):
        await go.wait()  # nothing is done at the first (cadence) commit; the next is 60 s away
        return echo(message)

    loop = make_loop(bus, "concurrent", handle, commit_interval_s=60.0,
                     on_revoke=lambda partitions: at_revoke.append(dict(bus.committed)))
    drive(loop, bus, (lambda: True, lambda: loop.strategy.event_loop.call_soon_threadsafe(go.set)),
          (lambda: handled(loop) == 3, lambda: bus.revoke([TP])), timeout_s=5)

    assert at_revoke == [{TP: 3}]


class WrongHost(Exception):
    """What the submitter raises for a request that would reach the wrong Amazon host."""

    dead_letter_reason = "wrong_amazon_host"


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("error", "reason"), [
    (ValueError("cannot handle 666"), "handler_error"),
    (WrongHost("https://sellingpartnerapi-fe.amazon.com is not the seller's region"), "wrong_amazon_host"),
], ids=["plain", "with-dead-letter-reason"])
def test_a_failing_message_is_dead_lettered_with_its_reason_and_the_others_flow(style, error, reason, bus):
    sent = publish(bus, [1, 666, 2])

    def handle(message):
        if message.event["item_count"] == 666:
            raise error
        return echo(message)

    loop = make_loop(bus, style, handle)
    run_until(loop, bus, lambda: bus.committed.get(TP) == 3)

    assert sorted(outputs(bus)) == [1001, 1002]
    [letter] = dead_letters(bus)
    assert letter["reason"] == reason and str(error) in letter["error"]
    assert (letter["service"], letter["topic"], letter["partition"], letter["offset"]) == ("svc", "t.in", 0, 1)
    assert letter["key"] == b"k" and letter["value"] == sent[1].value  # the original bytes, to replay once fixed
    assert metric(loop, "pipeline_dead_letters_total", topic="t.in", reason=reason) == 1


@pytest.mark.parametrize("style", STYLES)
def test_undecodable_bytes_are_dead_lettered_with_the_raw_payload(style, bus):
    publish(bus, [1])
    bus.publish("t.in", "junk", b'{"not": "avro"}', partition=0)
    publish(bus, [2])
    loop = make_loop(bus, style)
    run_until(loop, bus, lambda: bus.committed.get(TP) == 3)

    assert sorted(outputs(bus)) == [1001, 1002]
    [letter] = dead_letters(bus)
    assert (letter["reason"], letter["value"], letter["offset"]) == ("not_avro", b'{"not": "avro"}', 1)
    assert metric(loop, "pipeline_dead_letters_total", topic="t.in", reason="not_avro") == 1


@pytest.mark.parametrize("style", STYLES)
def test_a_flood_of_dead_letters_stops_the_loop_loudly_without_committing_past_it(style, bus):
    publish(bus, [1, 666, 666, 666, 2])
    loop = make_loop(bus, style, runtime=settings(dead_letters_per_minute=2))
    with pytest.raises(DeadLetterFlood):
        run_until(loop, bus, lambda: False)

    assert bus.committed.get(TP, 0) <= 1, "messages past the flood were committed: a fixed deploy would skip them"
    assert bus.consumers[0].closed and bus.producers[0].closed
    assert metric(loop, "pipeline_worker_up") == 0


def test_a_stop_in_a_batch_loop_handles_the_batch_in_hand_commits_and_closes(bus):
    publish(bus, [1, 2, 3])
    loop = make_loop(bus, "batch", runtime=settings(batch_linger_ms=60_000))  # the batch waits for more
    run_until(loop, bus, lambda: True)  # stop at the first poll that finds nothing

    assert sorted(outputs(bus)) == [1001, 1002, 1003]
    assert bus.committed == {TP: 3}
    closing = bus.events.index(("closed", "consumer"))
    assert [e for e in bus.events[:closing] if e[0] == "committed"], "committed only after closing"
    assert bus.producers[0].closed and metric(loop, "pipeline_worker_up") == 0


def test_a_stop_in_a_concurrent_loop_lets_a_call_on_the_wire_finish_commits_and_closes(bus):
    publish(bus, [1, 2, 3])
    closed = []

    async def handle(message):
        if message.event["item_count"] == 2:  # a call already sent: interrupted, it still ends with its answer
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return echo(message)
        return echo(message)

    async def on_close():
        closed.append(asyncio.get_running_loop().is_running())

    loop = make_loop(bus, "concurrent", handle, commit_interval_s=60.0, shutdown_drain_s=30.0, on_close=on_close)
    run_until(loop, bus, lambda: handled(loop) == 2)

    assert sorted(outputs(bus)) == [1001, 1002, 1003]
    assert bus.committed == {TP: 3}
    assert closed == [True], "on_close did not run on the handlers' event loop"
    closing = bus.events.index(("closed", "consumer"))
    assert [e for e in bus.events[:closing] if e[0] == "committed"]
    assert bus.producers[0].closed and metric(loop, "pipeline_worker_up") == 0


@pytest.mark.parametrize("style", STYLES)
def test_each_message_is_counted_once_under_its_own_topic_and_outcome(style, bus):
    # The recorder reads several topics in one batch; a dead letter is not also a success.
    publish(bus, [1, 666, 2], topic="in.a")
    publish(bus, [3], topic="in.b")
    bus.publish("t.in.b", "junk", b"\x00junk", partition=0)
    loop = make_loop(bus, style, topics=("in.a", "in.b"))
    run_until(loop, bus, lambda: bus.committed.get(("t.in.a", 0)) == 3 and bus.committed.get(("t.in.b", 0)) == 2)

    def processed(topic, outcome):
        return metric(loop, "pipeline_messages_processed_total", topic=topic, outcome=outcome)

    assert (processed("t.in.a", "ok"), processed("t.in.a", "dead_letter")) == (2, 1)
    assert (processed("t.in.b", "ok"), processed("t.in.b", "dead_letter")) == (1, 1)
    assert metric(loop, "pipeline_messages_consumed_total", topic="t.in.a") == 3
    assert metric(loop, "pipeline_messages_consumed_total", topic="t.in.b") == 2


@pytest.mark.parametrize("style", STYLES)
def test_processing_time_is_observed_for_every_message_handled(style, bus):
    publish(bus, [1, 2, 666, 4, 5])
    bus.publish("t.in", "junk", b"\x00junk", partition=0)  # dead-lettered as it is decoded: handled too
    loop = make_loop(bus, style)
    run_until(loop, bus, lambda: bus.committed.get(TP) == 6)

    assert metric(loop, "pipeline_processing_duration_seconds_count") == 6 == sum(
        metric(loop, "pipeline_messages_processed_total", topic="t.in", outcome=o) for o in ("ok", "dead_letter"))
    assert metric(loop, "pipeline_processing_duration_seconds_sum") > 0


def test_a_second_loop_in_one_process_reports_under_its_own_label_in_the_first_loops_registry(bus):
    # The submitter runs its reconciliation loop beside the PUT loop: one /metrics, both visible.
    first = make_loop(bus, "concurrent")
    publish(bus, [1, 2])
    run_until(first, bus, lambda: bus.committed.get(TP) == 2)
    second = make_loop(bus, "batch", topics=("other",), metrics=first.metrics.labelled("svc-second"))
    publish(bus, [3, 4, 5], topic="other")
    run_until(second, bus, lambda: bus.committed.get(("t.other", 0)) == 3)
    registry = first.metrics.registry
    assert second.metrics.registry is registry
    processed = "pipeline_messages_processed_total"
    assert registry.get_sample_value(processed, {"service": "svc", "topic": "t.in", "outcome": "ok"}) == 2
    assert registry.get_sample_value(processed, {"service": "svc-second", "topic": "t.other", "outcome": "ok"}) == 3
    assert registry.get_sample_value(processed, {"service": "svc", "topic": "t.other", "outcome": "ok"}) is None
    assert registry.get_sample_value("pipeline_processing_duration_seconds_count", {"service": "svc-second"}) == 3
