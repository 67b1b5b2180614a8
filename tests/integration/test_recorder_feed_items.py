"""Items the bulk lane sent in a JSON_LISTINGS_FEED, as the read API, the support-case pack and
`catalog-sync status` show them: "feed F, message M", and what Amazon support asks for there (the
Feeds API, createFeed, the feed ID and the request IDs)."""

from __future__ import annotations

import httpx
import pytest

from catalog_sync.recorder.api import create_app
from catalog_sync.recorder.read_model import ItemFilters, ReadModel
from catalog_sync.recorder.terminal import render_status
from tests.support.background import serving
from tests.support.sample_events import Partitions, SampleRun
from tests.support.stores import STORE_KINDS, migrated_store


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as opened:
        yield opened


def test_an_item_sent_by_feed_shows_its_feed_and_message_and_the_support_case_names_the_feeds_api(store):
    run = SampleRun()
    events = [run.opened(), run.changed("FEED-1"), run.changed("FEED-2"), run.changed("ITEM-1"),
              run.by_feed("FEED-1", "50012345678", 1),
              run.by_feed("FEED-2", "50012345678", 2, accepted=False, http_status=200, error_code="90220",
                          error_message="'condition_type' is required but not supplied."),
              run.submitted("ITEM-1", request_id="item-req", accepted=False), run.closed(3)]
    store.apply("recorder", Partitions().messages(events))
    with serving(create_app(ReadModel(store))) as url:
        items = {i["reference"]: i for i in httpx.get(f"{url}/api/items").json()["items"]}
        detail = httpx.get(f"{url}/api/items/FEED-2", params={"marketplace_id": "ATVPDKIKX0DER"}).json()
        case = httpx.get(f"{url}/api/support-case", params={"reference": "FEED-2",
                                                            "marketplace_id": "ATVPDKIKX0DER"}).json()
        mixed = httpx.get(f"{url}/api/support-case", params={"run_id": run.run_id}).json()
    model = ReadModel(store)
    status = render_status(model.activity(), [], model.items(ItemFilters()), 200)
    assert (items["FEED-1"]["feed_id"], items["FEED-1"]["feed_message_id"]) == ("50012345678", 1)
    assert (items["FEED-2"]["status"], items["FEED-2"]["feed_message_id"]) == ("error", 2)
    assert items["ITEM-1"]["feed_id"] is None and items["ITEM-1"]["feed_message_id"] is None
    assert detail["history"][-1]["feed_id"] == "50012345678" and detail["history"][-1]["feed_message_id"] == 2
    assert case["api"] == "Feeds API" and case["api_version"] == "2021-06-30" and case["operation"] == "createFeed"
    assert case["feed_ids"] == ["50012345678"]
    assert {"cf-50012345678", "gf-50012345678"} <= set(case["request_ids"]) | set(
        r for sub in case["submissions"] for r in (sub["create_feed_request_id"], sub["get_feed_request_id"]))
    assert "createFeed (JSON_LISTINGS_FEED) feedId 50012345678 messageId 2 SKU FEED-2" in case["text"]
    assert "x-amzn-RequestId: createFeed cf-50012345678, getFeed gf-50012345678" in case["text"]
    assert case["text"].startswith("API: Feeds API (2021-06-30)")
    # A run with errors from both lanes names both APIs (the pack of a run holds its errors).
    assert mixed["api"] == "Feeds API, Listings Items API"
    assert "cf-50012345678 (feed 50012345678, message 1)" in status  # catalog-sync status
