"""Issue 21, crash safety: kill -9 the submitter at random points of the Feeds flow, at least 10
times, restarting it each time. No feed is ever created twice for the same items, and every item
ends with its outcome (the one of the feed it went in, by feed and message id).

The submitter runs as a process (`catalog-sync submitter`) with the bulk lane on; the emulator runs
in the test (its feeds and documents are read directly), Amazon time 50x on both sides. Each kill
waits for one more call of a Feeds step (createFeedDocument, the upload, createFeed, getFeed,
getFeedDocument, the report download; in shuffled rounds), then a random 0-300 ms more; a new wave
of items is published before each wait so feeds keep coming. CHAOS_SEED repeats a schedule."""

from __future__ import annotations

import json
import os
import random
import time

import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.demo import create_stack_topics
from catalog_sync.runtime.bus import TopicReader, ensure_topics
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.processes import ServiceProcess
from catalog_sync.runtime.topics import LISTING_READY, LISTING_SUBMISSION_COMPLETED
from tests.integration.test_submitter_worker import ACCOUNT_ENV, ready
from tests.support.broker import publish_raw

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ITEMS, WAVE = 1_500, 300  # a first backlog, then a new wave before each kill so feeds keep coming
MIN_KILLS = 10
SCALE = 50.0
STEPS = ("createFeedDocument", "upload", "createFeed", "getFeed", "getFeedDocument", "download")


@pytest.fixture
def emulator():
    config = EmulatorConfig(accounts=LwaAccounts.from_env(ACCOUNT_ENV), time_scale=SCALE, feed_processing_s=300.0)
    with start_in_thread(config) as running:
        yield running


def submitter_process(kafka_env, emulator, log_dir) -> ServiceProcess:
    env = {**kafka_env, **ACCOUNT_ENV, "SPAPI_ENDPOINT": emulator.url, "SPAPI_SANDBOX_ENDPOINT": emulator.sandbox_url,
           "LWA_TOKEN_URL": emulator.token_url, "SUBMITTER_BULK_LANE": "on", "SUBMITTER_FEED_THRESHOLD": "50",
           "SUBMITTER_FEED_MAX_MESSAGES": "200", "SUBMITTER_FEED_LINGER_S": "25", "SUBMITTER_FEED_POLL_S": "10",
           "SPAPI_TIME_SCALE": str(SCALE), "SUBMITTER_MAX_IN_FLIGHT_PER_PARTITION": "5000"}
    create_stack_topics(env)  # workers create no topics: they refuse to start without theirs
    return ServiceProcess("submitter", ["submitter"], env, log_dir)


def calls(emulator, operation: str) -> int:
    return sum(1 for r in emulator.requests() if r.get("operation") == operation)


def test_killed_submitters_never_create_a_feed_twice_and_lose_no_item(runtime_settings, kafka_env, emulator, tmp_path):
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
    print(f"chaos seed {seed} (CHAOS_SEED={seed} repeats this kill schedule)")
    chance = random.Random(seed)
    settings = runtime_settings("submitter")
    codec = AvroCodec()
    events = []

    def publish(count: int) -> None:
        wave = [ready(f"SKU-{n:05d}") for n in range(len(events), len(events) + count)]
        publish_raw(settings, LISTING_READY, [(e["seller_id"], codec.encode("ListingReady", e)) for e in wave])
        events.extend(wave)

    publish(ITEMS)

    kills, steps, process = [], [], submitter_process(kafka_env, emulator, tmp_path).start()
    try:
        started = time.monotonic()
        deadline = started + 600
        while len(kills) < MIN_KILLS and time.monotonic() < deadline:
            if kills:
                publish(WAVE)
            if not steps:  # shuffled rounds: every step gets its kills, in no fixed order
                steps = chance.sample(STEPS, len(STEPS))
            step = steps.pop()
            seen = calls(emulator, step)
            waited_until = time.monotonic() + 20
            while calls(emulator, step) <= seen and time.monotonic() < waited_until and process.running:
                time.sleep(0.01)  # polling the emulator's log: it has nothing to wait on
            assert process.running, process.log_text()[-3000:]
            if calls(emulator, step) <= seen:
                print(f"{time.monotonic() - started:.1f}s no {step} within 20 s", flush=True)
                continue  # this step does not come again in this process's flow; pick another
            time.sleep(chance.uniform(0.0, 0.3))
            process.kill()
            kills.append((step, len(emulator.emulator.feeds.created)))
            print(f"{time.monotonic() - started:.1f}s kill {len(kills)} after {step}", flush=True)
            process = submitter_process(kafka_env, emulator, tmp_path).start()
        assert len(kills) >= MIN_KILLS, f"only {len(kills)} kills: {kills}"
        outcomes = latest_outcomes(settings, {e["reference"] for e in events}, timeout_s=300)
    finally:
        process.stop()
    print(f"kills (step, feeds created so far): {kills}")

    # Nothing lost: every item ended, and well.
    assert len(outcomes) == len(events)
    assert {e["status"] for e in outcomes.values()} == {"finished"}, \
        sorted({(e["outcome"], e["error_code"], e["error_message"]) for e in outcomes.values() if e["status"] != "finished"})[:5]
    # No feed created twice for the same items: every SKU is in at most one created feed.
    feeds = emulator.emulator.feeds
    skus_of = {}
    for created in feeds.created:
        document = json.loads(feeds.documents[created["document_id"]].content)
        skus_of[created["feed_id"]] = {m["messageId"]: m["sku"] for m in document["messages"]}
    feeds_of: dict[str, list[str]] = {}
    for feed_id, skus in skus_of.items():
        for sku in skus.values():
            feeds_of.setdefault(sku, []).append(feed_id)
    twice = {sku: ids for sku, ids in feeds_of.items() if len(ids) > 1}
    assert not twice, f"{len(twice)} item(s) went to Amazon in two feeds, e.g. {sorted(twice.items())[:3]}"
    assert len(feeds.created) >= 2, "the backlog should have gone in several feeds"
    # Every item sent by feed names the feed and message it is in.
    by_feed = [e for e in outcomes.values() if e["feed_id"]]
    assert by_feed and all(skus_of[e["feed_id"]][e["feed_message_id"]] == e["reference"] for e in by_feed)


def latest_outcomes(settings, references: set[str], timeout_s: float) -> dict[str, dict]:
    """The latest SubmissionCompleted per reference, read until every reference has one."""
    codec = AvroCodec()
    topic = settings.topic(LISTING_SUBMISSION_COMPLETED)
    ensure_topics(settings, [topic])
    reader = TopicReader(settings, [topic], timeout_s=60)
    found: dict[str, dict] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while set(found) != references:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {len(references)} items have an outcome after {timeout_s}s")
            for record in reader.poll(timeout_ms=200):
                _, event = codec.decode(record.value)
                found[event["reference"]] = event
    finally:
        reader.close()
    return found
