"""The submitter worker's bulk lane over a Kafka-protocol broker and the emulator (real HTTP), Amazon
time 50x faster on both sides: a seller's backlog above the threshold goes as JSON_LISTINGS_FEEDs,
every item ends with its own outcome, issues and feed/message ids, and a small change published
while a feed is in flight still goes item by item and finishes first; the feed metrics count it all."""

from __future__ import annotations

import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.topics import LISTING_READY, LISTING_SUBMISSION_COMPLETED
from tests.integration.test_submitter_worker import ACCOUNT_ENV, RunningSubmitter, ready, submitter_env
from tests.support.background import wait_until
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka

SCALE = 50.0
BULK_ENV = {"SUBMITTER_BULK_LANE": "on", "SUBMITTER_FEED_THRESHOLD": "40", "SUBMITTER_FEED_LINGER_S": "25",
            "SUBMITTER_FEED_POLL_S": "10", "SPAPI_TIME_SCALE": str(SCALE)}


@pytest.fixture
def emulator():
    config = EmulatorConfig(accounts=LwaAccounts.from_env(ACCOUNT_ENV), time_scale=SCALE, feed_processing_s=240.0)
    with start_in_thread(config) as running:
        yield running


def test_a_backlog_goes_by_feed_with_an_outcome_per_item_and_an_urgent_change_goes_item_by_item(
        runtime_settings, kafka_env, emulator):
    settings = runtime_settings("submitter")
    codec = AvroCodec()
    backlog = [ready(f"SKU-{n:04d}") for n in range(400)]
    backlog[250] = ready("SKU-NO-BRAND", attributes={"item_name": [{"value": "x", "marketplace_id": "ATVPDKIKX0DER"}],
                                                     "condition_type": [{"value": "new_new"}]})
    backlog[260] = ready("SKU-GONE", operation="delete")
    publish_raw(settings, LISTING_READY, [(e["seller_id"], codec.encode("ListingReady", e)) for e in backlog])
    with RunningSubmitter(submitter_env(kafka_env, emulator, **BULK_ENV)) as running:
        wait_until(lambda: any(r["operation"] == "createFeed" and r["status"] == 202 for r in emulator.requests()),
                   timeout_s=60, message="a createFeed call")
        urgent = ready("SKU-URGENT")
        publish_raw(settings, LISTING_READY, [(urgent["seller_id"], codec.encode("ListingReady", urgent))])
        found = read_events(settings, LISTING_SUBMISSION_COMPLETED, len(backlog) + 1, timeout_s=120)
    events = [event for _, _, event in found]
    by_ref = {e["reference"]: e for e in events}
    assert len(by_ref) == len(backlog) + 1 == len(events)  # one outcome per item, none twice
    by_feed = [e for e in events if e["feed_id"]]
    created = [r for r in emulator.requests() if r["operation"] == "createFeed" and r["status"] == 202]
    assert by_feed and len(by_feed) >= len(backlog) - 200, "most of the backlog should have gone by feed"
    assert {e["feed_id"] for e in by_feed} == {r["feed_id"] for r in created}
    assert {e["create_feed_request_id"] for e in by_feed} <= {r["request_id"] for r in created}
    for feed_id in {e["feed_id"] for e in by_feed}:
        ids = sorted(e["feed_message_id"] for e in by_feed if e["feed_id"] == feed_id)
        assert ids == list(range(1, len(ids) + 1))
    invalid = by_ref["SKU-NO-BRAND"]
    assert (invalid["status"], invalid["outcome"], invalid["error_code"]) == ("error", "invalid", "90220")
    assert invalid["issues"][0]["attribute_names"] == ["brand"]
    assert by_ref["SKU-GONE"]["outcome"] == "deleted"
    assert all(e["status"] == "finished" for e in events if e["reference"] not in ("SKU-NO-BRAND",))
    # The urgent change went as putListingsItem while the feed was in flight, and was final first.
    assert by_ref["SKU-URGENT"]["feed_id"] is None and by_ref["SKU-URGENT"]["http_status"] == 200
    fed_skus = {e["reference"] for e in by_feed}
    items = [r["sku"] for r in emulator.requests() if r["operation"] == "putListingsItem"]
    assert "SKU-URGENT" in items and not fed_skus & set(items)
    position = {e["reference"]: i for i, e in enumerate(events)}
    assert position["SKU-URGENT"] < min(position[r] for r in fed_skus)
    # Everything Amazon did is in its listings: nothing sent twice, nothing lost.
    assert len(created) == len({e["feed_id"] for e in by_feed})
    # What an operator's dashboard shows of it.
    metric = running.registry.get_sample_value
    assert metric("submitter_feeds_created_total") == len(created)
    assert metric("submitter_feeds_ended_total", {"status": "DONE"}) == len(created)
    assert metric("submitter_items_routed_total", {"lane": "feed"}) == len(by_feed)
    assert metric("submitter_items_routed_total", {"lane": "item"}) == len(events) - len(by_feed)
    assert metric("submitter_feed_items_total", {"outcome": "invalid"}) == 1
    assert metric("submitter_feeds_in_flight") == 0
