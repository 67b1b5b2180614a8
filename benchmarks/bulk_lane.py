"""Bulk lane figures (interfaces.md §6, issue 21): one seller's backlog to all-items-final, with the
lane choice (SUBMITTER_BULK_LANE=on: JSON_LISTINGS_FEEDs above the threshold) and item by item
only, both against the emulator enforcing Amazon's plans (put 5/s burst 10; createFeed five per
five minutes; getFeed 2/s; ...) on the same time scale, submitter and emulator in processes of
their own, the embedded broker in this one.

- bulk_lane_speedup: item-lane time ÷ bulk-lane time, in Amazon seconds (same scale, so the ratio
  of real times is the same).
- bulk_lane_seconds / item_lane_seconds: those times in Amazon seconds; the bulk one is the median
  of BENCH_BULK_LEGS (default 3) legs. A leg ends when the last outcome was produced (its record's
  timestamp).
- bulk_lane_urgent_latency_s: Amazon seconds from publishing one change, once the whole backlog
  is routed (the submitter's submitter_items_routed_total) and a feed is in flight, to its
  putListingsItem answer (median over the legs that had such a moment).

The submitter runs with SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION above the backlog, so that feeds can
be full (25,000 messages). One more bulk leg runs with its default (2,000), which bounds a feed to
that many items: bulk_lane_default_in_flight_seconds (not part of the ratio).

Amazon time runs BENCH_BULK_TIME_SCALE (default 20; the item leg then takes ~17 real minutes) times faster than the wall clock on both
sides, so every real second of CPU (reading 100,000 ready events, building and parsing documents,
the emulator judging 100,000 messages) counts as that many Amazon seconds: the bulk figure is
pessimistic by that much, the item figure is not (it waits on the plan). The emulator processes a
feed in BENCH_BULK_FEED_PROCESSING_S Amazon seconds (default 120)."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.submitter import accounts_file, ready
from catalog_sync.amazon_emulator.server import RunningEmulator, start_in_subprocess
from catalog_sync.demo import create_stack_topics
from catalog_sync.runtime.bus import BusProducer, TopicReader
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.embedded_broker import EmbeddedBroker
from catalog_sync.runtime.processes import ServiceProcess, free_port
from catalog_sync.runtime.topics import LISTING_READY, LISTING_SUBMISSION_COMPLETED
from tests.support.broker import unique_prefix

ITEMS = int(os.environ.get("BENCH_BULK_ITEMS", "100000"))
SCALE = float(os.environ.get("BENCH_BULK_TIME_SCALE", "20"))
PROCESSING_S = float(os.environ.get("BENCH_BULK_FEED_PROCESSING_S", "120"))
BULK_LEGS = int(os.environ.get("BENCH_BULK_LEGS", "3"))
DEFAULT_IN_FLIGHT = 2_000  # SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION's default
MOCK_KEEPS = 60_000  # ready events the benchmark publishes ahead of the submitter (see run_leg)
LINGER_REAL_S = 0.5  # SUBMITTER_FEED_LINGER_S, in real seconds
SELLER = "A1BULKSELLER"


def run_leg(broker: EmbeddedBroker, accounts: Path, workdir: Path, *, bulk: bool, in_flight: int = ITEMS + 10) -> dict:
    """Publish the backlog, start one submitter, wait until every item has its outcome."""
    args = ["--accounts-file", str(accounts), "--time-scale", str(SCALE), "--feed-processing-s", str(PROCESSING_S)]
    with start_in_subprocess(args) as emulator:
        prefix = unique_prefix()
        metrics_port = free_port()
        env = {**broker.env(), "TOPIC_PREFIX": prefix, "METRICS_PORT": str(metrics_port), "LOG_FORMAT": "json",
               "SPAPI_ENDPOINT": emulator.url, "SPAPI_SANDBOX_ENDPOINT": emulator.sandbox_url,
               "LWA_TOKEN_URL": emulator.token_url, "SPAPI_ACCOUNTS_FILE": str(accounts),
               "SPAPI_TIME_SCALE": str(SCALE), "SUBMITTER_BULK_LANE": "on" if bulk else "off",
               "SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION": str(in_flight), "SUBMITTER_FEED_LINGER_S": str(SCALE * LINGER_REAL_S),
               "SUBMITTER_UNCHANGED_CHECK": "off",
               "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}
        settings = RuntimeSettings.from_env("bench", env, metrics_port=None)
        codec = AvroCodec()
        completed = settings.topic(LISTING_SUBMISSION_COMPLETED)
        create_stack_topics(env)  # the submitter refuses to start without its topics
        reader = TopicReader(settings, [completed])
        producer = BusProducer(settings, linger_ms=20)
        # The submitter first, then the backlog, never more than MOCK_KEEPS ahead of what it read:
        # the embedded broker keeps only ~85,000 events of one partition and drops the oldest
        # (14,733 of a backlog published before the submitter started; 11,712 once when it read
        # slower than this published).
        process = ServiceProcess(f"bench-bulk-{'on' if bulk else 'off'}", ["submitter"], env, workdir).start()
        watched = _Submitter(metrics_port, settings.topic(LISTING_READY))
        try:
            process.wait_for_log("partitions assigned", timeout_s=120)
            for i in range(ITEMS):
                if i % 5_000 == 0:
                    watched.wait_until_read(i - MOCK_KEEPS)
                event = ready(SELLER, f"HB-{i:06d}")
                producer.send(settings.topic(LISTING_READY), SELLER, codec.encode("ListingReady", event))
            producer.flush()
            published = time.monotonic()
            first = _first_call(emulator)
            # Outcomes are read as they come (the embedded broker would drop the oldest of them
            # too) and timed by their records' timestamps: when the submitter produced them.
            urgent, done, last_ms = None, 0, 0
            deadline = time.monotonic() + ITEMS / (5 * SCALE) * 2 + 600
            while done < ITEMS + (1 if urgent else 0):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{done} of {ITEMS} outcomes in time")
                records = reader.poll(timeout_ms=200, max_records=50_000)
                done += len(records)
                last_ms = max([last_ms, *(r.timestamp_ms for r in records)])
                if bulk and urgent is None and done < ITEMS and watched.backlog_in_feeds():
                    urgent = _publish_urgent(producer, settings, codec)
            if bulk and urgent is None:
                print("   the urgent change was not published: no moment with the backlog in feeds and one in flight")
            requests = emulator.requests()
        finally:
            process.stop()
            reader.close()
            producer.close()
    calls = [r for r in requests if r.get("operation") not in (None, "lwaToken")]
    started, started_wall = min(r["monotonic"] for r in calls), min(r["time"] for r in calls)
    seconds_real = last_ms / 1000 - started_wall
    feeds_at = [round((r["monotonic"] - started) * SCALE) for r in requests
                if r.get("operation") == "createFeed" and r["status"] == 202]
    leg = {"seconds_real": seconds_real, "seconds": seconds_real * SCALE, "first_call_wait_s": first,
           "published_s": round((published - started) * SCALE), "feeds_created_at_s": feeds_at,
           "feeds": sum(1 for r in requests if r.get("operation") == "createFeed" and r["status"] == 202),
           "item_calls": sum(1 for r in requests if r.get("operation") == "putListingsItem" and r["status"] == 200),
           "throttled": sum(1 for r in requests if r["status"] == 429)}
    if urgent:
        sent_at, sku = urgent
        answered = [r for r in requests if r.get("sku") == sku and r.get("operation") == "putListingsItem"]
        leg["urgent_latency_s"] = (answered[-1]["monotonic"] - sent_at) * SCALE if answered else None
        leg["urgent_published_at_s"] = round((sent_at - started) * SCALE)
    return leg


class _Log:
    """The emulator's request log, fetched a new part at a time: the whole log of a 100,000-item
    run fetched every few milliseconds cost the machine more CPU than the run it watched."""

    def __init__(self, emulator: RunningEmulator) -> None:
        self._emulator = emulator
        self.entries: list[dict] = []

    def read(self) -> list[dict]:
        self.entries += self._emulator.requests(since=self.entries[-1]["seq"] if self.entries else 0)
        return self.entries


def _first_call(emulator: RunningEmulator, timeout_s: float = 120) -> float:
    started, log = time.monotonic(), _Log(emulator)
    while not [r for r in log.read() if r.get("operation") not in (None, "lwaToken")]:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError("the submitter made no call")
        time.sleep(0.2)  # polling a log in another process: nothing to wait on
    return time.monotonic() - started


class _Submitter:
    """What the benchmark reads of the submitter's /metrics."""

    def __init__(self, metrics_port: int, ready_topic: str) -> None:
        self._url = f"http://127.0.0.1:{metrics_port}/metrics"
        self._ready_topic = ready_topic
        self._all_routed_at: float | None = None

    def _samples(self) -> dict[tuple[str, str | None], float]:
        try:
            text = httpx.get(self._url, timeout=5).text
        except httpx.HTTPError:  # not serving yet
            return {}
        return {(s.name, s.labels.get("lane") or s.labels.get("topic")): s.value
                for family in text_string_to_metric_families(text) for s in family.samples
                if s.labels.get("service", "submitter") == "submitter"}

    def wait_until_read(self, count: int, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while self._samples().get(("pipeline_messages_consumed_total", self._ready_topic), 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the submitter did not read {count} ready events in {timeout_s} s")
            time.sleep(0.1)  # polling another process's metrics: nothing to wait on

    def backlog_in_feeds(self) -> bool:
        """The moment for the urgent change: every backlog item routed (by item or by feed) two
        lingers ago, so no batch is still gathering, and a feed in flight. Earlier, the change
        would join the feed being gathered, as it should."""
        samples = self._samples()
        routed = samples.get(("submitter_items_routed_total", "item"), 0) + samples.get(
            ("submitter_items_routed_total", "feed"), 0)
        if routed < ITEMS:
            return False
        if self._all_routed_at is None:
            self._all_routed_at = time.monotonic()
        quiet = time.monotonic() - self._all_routed_at > 2 * LINGER_REAL_S + 0.5
        return quiet and samples.get(("submitter_feeds_in_flight", None), 0) > 0


def _publish_urgent(producer: BusProducer, settings, codec) -> tuple[float, str]:
    """One more change of the seller; when it was sent (the emulator's log and this process read
    the same monotonic clock)."""
    sku = "HB-URGENT"
    sent_at = time.monotonic()
    producer.send(settings.topic(LISTING_READY), SELLER, codec.encode("ListingReady", ready(SELLER, sku)))
    producer.flush()
    return sent_at, sku


def run(results: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        accounts = accounts_file(workdir, [SELLER])
        # The bulk leg is CPU-bound times the scale and varies run to run (665-1,107 Amazon s on one
        # day): its median of BULK_LEGS runs is reported. The item leg waits on the plan.
        legs = []
        for _ in range(BULK_LEGS):
            bulk = run_leg(broker, accounts, workdir, bulk=True)
            legs.append(bulk)
            urgent = bulk.get("urgent_latency_s")
            print(f"   bulk lane: {ITEMS:,} items in {bulk['seconds']:,.0f} Amazon s ({bulk['seconds_real']:.1f} s real "
                  f"at {SCALE:g}x): {bulk['feeds']} feeds, {bulk['item_calls']:,} item calls, {bulk['throttled']} "
                  f"429s; urgent change answered {'?' if urgent is None else f'{urgent:.1f}'} Amazon s after publishing")
        default = run_leg(broker, accounts, workdir, bulk=True, in_flight=DEFAULT_IN_FLIGHT)
        print(f"   bulk lane, SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION={DEFAULT_IN_FLIGHT:,}: {default['seconds']:,.0f} Amazon s "
              f"({default['seconds_real']:.1f} s real): {default['feeds']} feeds, {default['item_calls']:,} item calls")
        items = run_leg(broker, accounts, workdir, bulk=False)
        print(f"   item lane: {ITEMS:,} items in {items['seconds']:,.0f} Amazon s ({items['seconds_real']:.1f} s real): "
              f"{items['item_calls']:,} item calls, {items['throttled']} 429s")
    bulk_seconds = statistics.median(leg["seconds"] for leg in legs)
    results["bulk_lane_seconds"] = round(bulk_seconds, 1)
    results["item_lane_seconds"] = round(items["seconds"], 1)
    results["bulk_lane_default_in_flight_seconds"] = round(default["seconds"], 1)
    results["bulk_lane_speedup"] = round(items["seconds"] / bulk_seconds, 2)
    urgent = [leg["urgent_latency_s"] for leg in legs if leg.get("urgent_latency_s") is not None]
    if urgent:
        results["bulk_lane_urgent_latency_s"] = round(statistics.median(urgent), 2)
    print(f"   bulk_lane_speedup {results['bulk_lane_speedup']} (median of {len(legs)} bulk legs; feed processing "
          f"{PROCESSING_S:g} Amazon s); " + json.dumps({"bulk": legs, "default_in_flight": default, "items": items}))
