"""Issue 17, item 5: broker failures in a 3-node Apache Kafka cluster (replication factor 3,
min.insync.replicas=2) during a 2,000-item run through all three workers:

- the leader of the busiest partition is killed (kill -9) and started again later;
- every broker is restarted, one at a time (controlled shutdown, back in sync before the next);
- one broker is cut off from the workers for 30 s through a TCP proxy (the brokers still reach
  each other, so the cluster keeps it: its partitions are unreachable rather than moved).

Each time the run must complete with every item's status what the emulator's request log implies,
none pending and none recorded twice. PUTs sent twice and recovery times are printed (figures in
docs/performance.md). The three tests share one cluster; each has its own topics and groups.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from fault_pipeline import (
    check_against_amazon,
    final_count,
    listings_requests,
    make_catalog,
    start_stack,
    wait_for_run,
    wait_until_drained,
    worker_starts,
)

from catalog_sync.runtime.apache_kafka import ApacheKafkaCluster, KafkaUnavailable
from catalog_sync.runtime.bus import describe_partitions, end_offsets
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.topics import (
    ALL_EVENT_TOPICS,
    CATALOG_ITEM_CHANGED,
    LISTING_ACCEPTED_HASHES,
    LISTING_READY,
    LISTING_SUBMISSION_COMPLETED,
    LISTING_VALIDATION_FAILED,
)
from tests.support.background import wait_until
from tests.support.broker import unique_prefix
from tests.support.chaos import KafkaProxy
from tests.support.requirements import require

pytestmark = [pytest.mark.kafka, pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(600)]

ITEMS = 2_000
CUT_SECONDS = float(os.environ.get("BROKER_CUT_SECONDS", "30"))
# The pipeline's own topics, and the group offsets: a broker is back when it is in sync on all.
DATA_TOPICS = (CATALOG_ITEM_CHANGED, LISTING_READY, LISTING_VALIDATION_FAILED, LISTING_SUBMISSION_COMPLETED)


@pytest.fixture(scope="module")
def cluster():
    try:
        cluster = ApacheKafkaCluster(3)
    except KafkaUnavailable as exc:
        require(False, str(exc))
    with cluster:
        yield cluster


class Progress:
    """Samples the run's count of final outcomes (finished + error) in a thread; `longest_stall`
    is the longest time it did not move between two moments."""

    def __init__(self, stack, run_id: str, every_s: float = 0.25):
        self.samples: list[tuple[float, int]] = []
        self._stack, self._run_id, self._every_s = stack, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.samples.append((time.monotonic(), final_count(self._stack, self._run_id)))
            except Exception:  # the read API busy for a moment: the next sample counts
                continue

    def longest_stall(self, since: float, until: float) -> float:
        """Longest stretch within [since, until] in which no outcome was recorded (until the last
        item, so the end of the run is not a stall)."""
        moves = [t for (t, n), (_, before) in zip(self.samples[1:], self.samples, strict=False)
                 if n > before and since <= t <= until]
        points = [since, *moves]
        return max((b - a for a, b in zip(points, points[1:], strict=False)), default=until - since)


def stack_env(cluster: ApacheKafkaCluster, bootstrap: str | None = None) -> dict[str, str]:
    # Once (1 of 4 full runs), a submitter's consumer sent JoinGroup at the stack's start and never
    # got its answer; kafka-python sends it again only after the rebalance timeout (the max poll
    # interval) + 5 s, 305 s by default. 90 s keeps such a stall inside the test's waits.
    return {"KAFKA_BOOTSTRAP_SERVERS": bootstrap or cluster.bootstrap_servers, "TOPIC_PREFIX": unique_prefix(),
            "METRICS_PORT": "0", "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "KAFKA_MAX_POLL_INTERVAL_MS": "90000", "LOG_FORMAT": "json"}


def topics_of(settings: RuntimeSettings) -> list[str]:
    names = [*ALL_EVENT_TOPICS, LISTING_ACCEPTED_HASHES, "validator.dlq", "submitter.dlq", "recorder.dlq"]
    return [settings.topic(t) for t in names]


def busiest_partition_leader(settings: RuntimeSettings) -> tuple[str, int, int]:
    """(topic, partition, leader) of the data partition that has received most records so far."""
    ends = end_offsets(settings, [settings.topic(t) for t in DATA_TOPICS])
    (topic, partition), _ = max(ends.items(), key=lambda item: item[1])
    return topic, partition, describe_partitions(settings, topic)[partition].leader


def layouts(settings: RuntimeSettings) -> dict[str, dict]:
    """Partition states of the pipeline's topics that exist, and of the group offsets."""
    found = {}
    for topic in [*topics_of(settings), "__consumer_offsets"]:
        try:
            found[topic] = describe_partitions(settings, topic)
        except Exception:  # a dead-letter topic nobody created
            continue
    return found


def all_in_sync(settings: RuntimeSettings, node: int | None = None) -> bool:
    """Every partition has a leader and all three replicas in sync (`node` among them)."""
    for partitions in layouts(settings).values():
        for state in partitions.values():
            if state.leader == -1 or len(state.in_sync) < 3 or (node is not None and node not in state.in_sync):
                return False
    return True


def led_without(settings: RuntimeSettings, node: int) -> bool:
    return all(s.leader not in (-1, node) for p in layouts(settings).values() for s in p.values())


def run_through(tmp_path, env: dict[str, str], prefix: str, fault, *, put_rate: float, fault_after: int):
    """Start the pipeline on `env`, publish ITEMS items, call `fault(stack, settings)` once
    `fault_after` outcomes are recorded (it returns its figures), wait for the run and check it
    against the emulator's log. Returns (figures, verdict, seconds from the fault to the end)."""
    stack = start_stack(tmp_path, env, put_rate=put_rate)
    try:
        settings = RuntimeSettings.from_env("fault-test", stack.env())
        catalog = make_catalog(ITEMS, prefix=prefix)
        run_id = stack.publish(catalog.write(tmp_path / "catalog.jsonl"), "production")
        for topic, partitions in layouts(settings).items():  # what the workers created
            assert all(len(s.replicas) == 3 for s in partitions.values()), (topic, partitions)
        with Progress(stack, run_id) as progress:
            wait_until(lambda: final_count(stack, run_id) >= fault_after, 180, interval_s=0.2,
                       message="the run under way")
            at_fault = final_count(stack, run_id)
            fault_began = time.monotonic()
            figures = fault(stack, settings)
            assert final_count(stack, run_id) < ITEMS, "the run ended before the fault was over"
            run = wait_for_run(stack, run_id, ITEMS, timeout_s=240)
            ended = time.monotonic()
        wait_until_drained(stack, timeout_s=120)  # replays still on their way count too
        figures["outcomes at the fault"] = at_fault
        figures["longest stall s"] = round(progress.longest_stall(fault_began, ended), 1)
        rows = item_rows(stack, run_id)
        keys = [(i["seller_id"], i["reference"]) for i in rows]
        assert len(keys) == len(set(keys)) == ITEMS, f"{len(keys)} rows for {len(set(keys))} items"
        verdict = check_against_amazon(catalog, dict(zip(keys, rows, strict=True)), listings_requests(stack))
        assert run["counts"]["pending"] == 0 and run["counts"]["total"] == ITEMS, run["counts"]
        for name in ("validator", "submitter", "recorder"):  # recovered on their own
            assert worker_starts(stack.processes[name]) == 1, f"{name} restarted"
        return figures, verdict, ended - fault_began
    finally:
        stack.stop()


def item_rows(stack, run_id: str) -> list[dict]:
    """Every row the read API lists for the run, page by page (a duplicate would show twice)."""
    rows, cursor = [], None
    while True:
        body = stack.api_get("/api/items", run_id=run_id, limit=500, **({"cursor": cursor} if cursor else {}))
        rows += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return rows


def report(name: str, figures: dict, verdict, after_fault_s: float) -> None:
    print(f"\n{name}: {figures}; run complete {after_fault_s:.1f} s after the fault began; "
          f"duplicate PUTs {verdict.duplicate_puts} on {len(verdict.duplicates)} SKUs")


def test_the_run_completes_when_the_busiest_partitions_leader_is_killed_and_restarted(cluster, tmp_path):
    def kill_leader(stack, settings):
        topic, partition, victim = busiest_partition_leader(settings)
        killed = time.monotonic()
        cluster.kill_node(victim)
        wait_until(lambda: led_without(settings, victim), 60, interval_s=0.2, message="leaders moved")
        failover_s = time.monotonic() - killed
        wait_until(lambda: time.monotonic() - killed >= 15, 20, interval_s=0.5, message="15 s without the node")
        restarted = time.monotonic()
        cluster.start_node(victim)
        wait_until(lambda: all_in_sync(settings, victim), 120, interval_s=0.5, message="the node back in sync")
        return {"victim": f"node {victim} (leader of {topic.split('.', 1)[1]}/{partition})",
                "leaders moved s": round(failover_s, 1),
                "back in sync s": round(time.monotonic() - restarted, 1)}

    figures, verdict, after_s = run_through(tmp_path, stack_env(cluster), "KILL", kill_leader, put_rate=8,
                                            fault_after=200)
    report("leader killed", figures, verdict, after_s)
    assert verdict.duplicate_puts <= 0.05 * ITEMS


def test_the_run_completes_through_a_rolling_restart_of_every_broker(cluster, tmp_path):
    def rolling_restart(stack, settings):
        figures = {}
        for node in cluster.nodes:
            began = time.monotonic()
            cluster.stop_node(node.node_id)  # controlled shutdown: leaderships move first
            cluster.start_node(node.node_id)
            wait_until(lambda n=node.node_id: all_in_sync(settings, n), 120, interval_s=0.5,
                       message=f"node {node.node_id} back in sync")
            figures[f"node {node.node_id} restarted s"] = round(time.monotonic() - began, 1)
        return figures

    figures, verdict, after_s = run_through(tmp_path, stack_env(cluster), "ROLL", rolling_restart, put_rate=5,
                                            fault_after=100)
    report("rolling restart", figures, verdict, after_s)
    assert verdict.duplicate_puts <= 0.05 * ITEMS


def test_the_run_completes_when_one_broker_is_cut_off_for_30_s(cluster, tmp_path):
    mode = os.environ.get("BROKER_CUT_MODE", "blackhole")
    with KafkaProxy(cluster.bootstrap_servers) as proxy:
        def cut_one(stack, settings):
            topic, partition, victim = busiest_partition_leader(settings)
            dropped = proxy.connections_dropped
            proxy.begin_cut(mode, broker=cluster.node(victim).bootstrap)
            began = time.monotonic()
            wait_until(lambda: time.monotonic() - began >= CUT_SECONDS, CUT_SECONDS + 5, interval_s=0.5,
                       message="the end of the cut")
            proxy.end_cut()
            return {"cut": f"node {victim} (leader of {topic.split('.', 1)[1]}/{partition}), {mode}, "
                           f"{CUT_SECONDS:.0f} s", "connections dropped": proxy.connections_dropped - dropped}

        figures, verdict, after_s = run_through(tmp_path, stack_env(cluster, proxy.bootstrap_servers), "CUT",
                                                cut_one, put_rate=8, fault_after=100)
    report("one broker cut off", figures, verdict, after_s)
    assert verdict.duplicate_puts <= 0.05 * ITEMS
