"""Bulk lane figures (interfaces.md §6, issue 21): one seller's backlog to all-items-final, with the
lane choice (SUBMITTER_BULK_LANE=on: JSON_LISTINGS_FEEDs above the threshold) and item by item
only, both against the emulator enforcing Amazon's plans (put 5/s burst 10; createFeed five per
five minutes; getFeed 2/s; ...) on the same time scale, submitter and emulator in processes of
their own, the embedded broker in this one.

- bulk_lane_speedup: item-lane time ÷ bulk-lane time, in Amazon seconds (same scale, so the ratio
  of real times is the same).
- bulk_lane_seconds / item_lane_seconds: those times in Amazon seconds.
- bulk_lane_urgent_latency_s: Amazon seconds from publishing one change while the first feed is
  in flight to its putListingsItem answer.

Amazon time runs BENCH_BULK_TIME_SCALE (default 20; the item leg then takes ~17 real minutes) times faster than the wall clock on both
sides, so every real second of CPU (reading 100,000 ready events, building and parsing documents,
the emulator judging 100,000 messages) counts as that many Amazon seconds: the bulk figure is
pessimistic by that much, the item figure is not (it waits on the plan). The emulator processes a
feed in BENCH_BULK_FEED_PROCESSING_S Amazon seconds (default 120)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.submitter import accounts_file, ready
from catalog_sync.amazon_emulator.server import RunningEmulator, start_in_subprocess
from catalog_sync.demo import create_stack_topics
from catalog_sync.runtime.bus import BusProducer, TopicReader
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.config import RuntimeSettings
from catalog_sync.runtime.embedded_broker import EmbeddedBroker
from catalog_sync.runtime.processes import ServiceProcess
from catalog_sync.runtime.topics import LISTING_READY, LISTING_SUBMISSION_COMPLETED
from tests.support.broker import unique_prefix

ITEMS = int(os.environ.get("BENCH_BULK_ITEMS", "100000"))
SCALE = float(os.environ.get("BENCH_BULK_TIME_SCALE", "20"))
PROCESSING_S = float(os.environ.get("BENCH_BULK_FEED_PROCESSING_S", "120"))
SELLER = "A1BULKSELLER"


def run_leg(broker: EmbeddedBroker, accounts: Path, workdir: Path, *, bulk: bool) -> dict:
    """Publish the backlog, start one submitter, wait until every item has its outcome."""
    args = ["--accounts-file", str(accounts), "--time-scale", str(SCALE), "--feed-processing-s", str(PROCESSING_S)]
    with start_in_subprocess(args) as emulator:
        prefix = unique_prefix()
        env = {**broker.env(), "TOPIC_PREFIX": prefix, "METRICS_PORT": "0", "LOG_FORMAT": "json",
               "SPAPI_ENDPOINT": emulator.url, "SPAPI_SANDBOX_ENDPOINT": emulator.sandbox_url,
               "LWA_TOKEN_URL": emulator.token_url, "SPAPI_ACCOUNTS_FILE": str(accounts),
               "SPAPI_TIME_SCALE": str(SCALE), "SUBMITTER_BULK_LANE": "on" if bulk else "off",
               "SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION": str(ITEMS + 10), "SUBMITTER_FEED_LINGER_S": str(SCALE * 0.5),
               "SUBMITTER_UNCHANGED_CHECK": "off",
               "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}
        settings = RuntimeSettings.from_env("bench", env, metrics_port=None)
        codec = AvroCodec()
        completed = settings.topic(LISTING_SUBMISSION_COMPLETED)
        create_stack_topics(env)  # the submitter refuses to start without its topics
        reader = TopicReader(settings, [completed])
        producer = BusProducer(settings, linger_ms=20)
        # The submitter first, then the backlog: the embedded broker keeps only ~85,000 of these
        # events in one partition (it dropped the oldest 14,733 of a backlog published before).
        process = ServiceProcess(f"bench-bulk-{'on' if bulk else 'off'}", ["submitter"], env, workdir).start()
        try:
            process.wait_for_log("partitions assigned", timeout_s=120)
            for i in range(ITEMS):
                event = ready(SELLER, f"HB-{i:06d}")
                producer.send(settings.topic(LISTING_READY), SELLER, codec.encode("ListingReady", event))
            producer.flush()
            published = time.monotonic()
            first = _first_call(emulator)
            urgent = _urgent(emulator, producer, settings, codec) if bulk else None
            if bulk and urgent is None:
                print("   the urgent change was not published: no moment with the backlog in feeds and one in flight")
            done, last = 0, time.monotonic()
            deadline = time.monotonic() + ITEMS / (5 * SCALE) * 2 + 600
            while done < ITEMS + (1 if urgent else 0):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{done} of {ITEMS} outcomes in time")
                records = reader.poll(timeout_ms=200, max_records=50_000)
                if records:
                    done += len(records)
                    last = time.monotonic()
            requests = emulator.requests()
        finally:
            process.stop()
            reader.close()
            producer.close()
    started = min(r["monotonic"] for r in requests if r.get("operation") not in (None, "lwaToken"))
    feeds_at = [round((r["monotonic"] - started) * SCALE) for r in requests
                if r.get("operation") == "createFeed" and r["status"] == 202]
    leg = {"seconds_real": last - started, "seconds": (last - started) * SCALE, "first_call_wait_s": first,
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


def _urgent(emulator: RunningEmulator, producer: BusProducer, settings, codec) -> tuple[float, str] | None:
    """Once the backlog is in feeds (a feed in flight; no feed document asked for and no item
    call for two lingers and a second), publish one more change and note when (the emulator's log and this process read the
    same monotonic clock). Earlier, the change would join the feed being gathered, as it should."""
    deadline, requests = time.monotonic() + 600, _Log(emulator)
    quiet_s = 2 * 0.5 + 1.0  # the linger is half a real second (SUBMITTER_FEED_LINGER_S)
    while True:
        log = requests.read()
        created = [r for r in log if r.get("operation") == "createFeed" and r["status"] == 202]
        # Quiet: no feed document asked for and no item call (the item lane's queue is drained).
        busy = [r["monotonic"] for r in log if r.get("operation") in ("createFeedDocument", "putListingsItem")]
        reported = sum(1 for r in log if r.get("operation") == "download")
        if created and len(created) > reported and time.monotonic() - max(busy) > quiet_s:
            break
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)  # as above
    sku = "HB-URGENT"
    sent_at = time.monotonic()
    producer.send(settings.topic(LISTING_READY), SELLER, codec.encode("ListingReady", ready(SELLER, sku)))
    producer.flush()
    return sent_at, sku


def run(results: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp, EmbeddedBroker() as broker:
        workdir = Path(tmp)
        accounts = accounts_file(workdir, [SELLER])
        bulk = run_leg(broker, accounts, workdir, bulk=True)
        print(f"   bulk lane: {ITEMS:,} items in {bulk['seconds']:,.0f} Amazon s ({bulk['seconds_real']:.1f} s real at "
              f"{SCALE:g}x): {bulk['feeds']} feeds, {bulk['item_calls']:,} item calls, {bulk['throttled']} 429s; "
              f"urgent change answered {bulk.get('urgent_latency_s') or float('nan'):.1f} Amazon s after publishing")
        items = run_leg(broker, accounts, workdir, bulk=False)
        print(f"   item lane: {ITEMS:,} items in {items['seconds']:,.0f} Amazon s ({items['seconds_real']:.1f} s real): "
              f"{items['item_calls']:,} item calls, {items['throttled']} 429s")
    results["bulk_lane_seconds"] = round(bulk["seconds"], 1)
    results["item_lane_seconds"] = round(items["seconds"], 1)
    results["bulk_lane_speedup"] = round(items["seconds"] / bulk["seconds"], 2)
    if bulk.get("urgent_latency_s") is not None:
        results["bulk_lane_urgent_latency_s"] = round(bulk["urgent_latency_s"], 2)
    print(f"   bulk_lane_speedup {results['bulk_lane_speedup']} (feed processing {PROCESSING_S:g} Amazon s); "
          + json.dumps({"bulk": bulk, "items": items}))
