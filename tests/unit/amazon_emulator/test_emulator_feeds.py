"""The emulator's Feeds API 2021-06-30 without a server: the JSON_LISTINGS_FEED flow, its usage
plans on the time-scaled clock, per-message verdicts equal to putListingsItem's, and the report in
Amazon's processing-report format."""

import gzip
import json
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest

from catalog_sync.amazon_emulator.emulator import Emulator, EmulatorConfig
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.spapi_accounts import SellerCredentials
from tests.support.requirements import require

SELLERS = [SellerCredentials(f"S{n}", "app", "s", f"Atzr|{n}") for n in (1, 2)]
MARKET = "ATVPDKIKX0DER"
GOOD = {"item_name": [{"value": "Band", "marketplace_id": MARKET}], "brand": [{"value": "Acme"}],
        "condition_type": [{"value": "new_new"}]}
SHARED_FEEDS = Path(__file__).resolve().parents[3].parent / "shared" / "amazon" / "feeds"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def emulator(clock):
    emulator = Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), feed_processing_s=60.0))
    emulator.clock._source = clock  # Amazon's time under the test's control
    emulator.clock.set_scale(1.0)
    return emulator


def login(emulator, refresh="Atzr|1"):
    form = f"grant_type=refresh_token&refresh_token={refresh}&client_id=app&client_secret=s".encode()
    return json.loads(emulator.handle("POST", "/auth/o2/token", "", {}, form).body)["access_token"]


def call(emulator, token, method, path, body=None, query="", content_type="application/json"):
    answer = emulator.handle(method, path, query, {"x-amz-access-token": token, "content-type": content_type,
                                                   "host": "emu.test"},
                             json.dumps(body).encode() if body is not None else b"")
    return answer.status, json.loads(answer.body) if answer.body else None, dict(answer.headers)


def upload(emulator, url, content: bytes, content_type="application/json; charset=UTF-8"):
    parts = urlsplit(url)
    answer = emulator.handle("PUT", parts.path, parts.query, {"content-type": content_type}, content)
    return answer.status


def download(emulator, url):
    parts = urlsplit(url)
    answer = emulator.handle("GET", parts.path, parts.query, {}, b"")
    return answer.status, answer.body


def feed_document(messages, seller="S1"):
    return json.dumps({"header": {"sellerId": seller, "version": "2.0", "issueLocale": "en_US"},
                       "messages": messages}).encode()


def submit(emulator, token, content: bytes, marketplaces=(MARKET,)):
    status, doc, _ = call(emulator, token, "POST", "/feeds/2021-06-30/documents",
                          {"contentType": "application/json; charset=UTF-8"})
    assert status == 201 and doc["url"].startswith("http://emu.test/_documents/")
    assert upload(emulator, doc["url"], content) == 200
    status, created, headers = call(emulator, token, "POST", "/feeds/2021-06-30/feeds", {
        "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": list(marketplaces),
        "inputFeedDocumentId": doc["feedDocumentId"]})
    assert status == 202, created
    return created["feedId"], headers


def report_of(emulator, token, feed_id):
    status, feed, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")
    assert status == 200 and feed["processingStatus"] in ("DONE", "FATAL")
    status, document, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}")
    assert status == 200 and document["compressionAlgorithm"] == "GZIP"
    status, content = download(emulator, document["url"])
    assert status == 200
    return feed, json.loads(gzip.decompress(content))


MESSAGES = [
    {"messageId": 1, "sku": "OK-1", "operationType": "UPDATE", "productType": "HAIRBAND", "requirements": "LISTING",
     "attributes": GOOD},
    {"messageId": 2, "sku": "NO-BRAND", "operationType": "UPDATE", "productType": "HAIRBAND",
     "attributes": {k: v for k, v in GOOD.items() if k != "brand"}},
    {"messageId": 3, "sku": "OK-1", "operationType": "PATCH", "productType": "HAIRBAND",
     "patches": [{"op": "replace", "path": "/attributes/item_name", "value": [{"value": "Band 2"}]}]},
    {"messageId": 4, "sku": "GONE", "operationType": "DELETE"},
    {"messageId": 5, "sku": "BAD-PATCH", "operationType": "PATCH", "productType": "HAIRBAND",
     "patches": [{"op": "replace", "path": "/attributes/a/b", "value": [{}]}]},
]


def test_a_feed_is_queued_processed_later_and_reports_each_message_as_the_item_call_would(emulator, clock):
    token = login(emulator)
    feed_id, _ = submit(emulator, token, feed_document(MESSAGES))
    status, feed, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")
    assert feed["processingStatus"] == "IN_QUEUE" and "resultFeedDocumentId" not in feed
    clock.now += 30
    assert call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")[1]["processingStatus"] == "IN_PROGRESS"
    clock.now += 30
    feed, report = report_of(emulator, token, feed_id)
    assert feed["processingStatus"] == "DONE" and report["header"] == {"sellerId": "S1", "version": "2.0",
                                                                        "feedId": feed_id}
    by_message = {}
    for issue in report["issues"]:
        by_message.setdefault(issue["messageId"], []).append(issue)
    assert set(by_message) == {2, 5}
    assert by_message[2] == [{"messageId": 2, "sku": "NO-BRAND", "code": "90220", "severity": "ERROR",
                              "message": "'brand' is required but not supplied.", "attributeName": "brand"}]
    assert "Invalid path provided in patch" in by_message[5][0]["message"]
    assert report["summary"] == {"errors": 2, "warnings": 0, "messagesProcessed": 5, "messagesAccepted": 3,
                                 "messagesInvalid": 2}
    # Accepted messages changed the listings as the Listings Items API would have.
    stored = emulator.listings.store[(False, "S1", MARKET, "OK-1")]
    assert stored.attributes["item_name"] == [{"value": "Band 2"}]


def test_messages_are_applied_while_the_feed_is_in_progress_and_it_is_done_when_its_time_is_over(emulator, clock):
    token = login(emulator)
    feed_id, _ = submit(emulator, token, feed_document(MESSAGES))
    clock.now += 30  # half of the 60 s: in progress, and Amazon applies the messages meanwhile
    feed = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")[1]
    assert feed["processingStatus"] == "IN_PROGRESS" and "resultFeedDocumentId" not in feed
    assert (False, "S1", MARKET, "OK-1") in emulator.listings.store
    clock.now += 29.9
    assert call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")[1]["processingStatus"] == "IN_PROGRESS"
    clock.now += 0.1
    feed, report = report_of(emulator, token, feed_id)
    assert feed["processingStatus"] == "DONE" and report["summary"]["messagesProcessed"] == 5


def test_a_document_that_is_not_a_feed_ends_fatal_with_a_report(emulator, clock):
    token = login(emulator)
    feed_id, _ = submit(emulator, token, b"{not json")
    clock.now += 60
    feed, report = report_of(emulator, token, feed_id)
    assert feed["processingStatus"] == "FATAL"
    assert report["summary"]["messagesProcessed"] == 0 and report["issues"][0]["severity"] == "ERROR"


def test_a_feed_for_another_seller_is_fatal(emulator, clock):
    token = login(emulator)  # granted by S1 only
    feed_id, _ = submit(emulator, token, feed_document(MESSAGES[:1], seller="S2"))
    clock.now += 60
    feed, report = report_of(emulator, token, feed_id)
    assert feed["processingStatus"] == "FATAL" and ("S2" not in str(emulator.listings.store))


def test_create_feed_refuses_what_amazon_refuses(emulator):
    token = login(emulator)
    status, doc, _ = call(emulator, token, "POST", "/feeds/2021-06-30/documents",
                          {"contentType": "application/json; charset=UTF-8"})
    # Nothing uploaded yet; an unknown document; another feed type.
    for body in ({"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKET], "inputFeedDocumentId": doc["feedDocumentId"]},
                 {"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKET], "inputFeedDocumentId": "nope"},
                 {"feedType": "POST_PRODUCT_DATA", "marketplaceIds": [MARKET], "inputFeedDocumentId": doc["feedDocumentId"]},
                 {"feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [], "inputFeedDocumentId": doc["feedDocumentId"]}):
        status, answer, _ = call(emulator, token, "POST", "/feeds/2021-06-30/feeds", body)
        assert status == 400 and answer["errors"][0]["code"] == "InvalidInput", body
    # The presigned URL is signed for the declared content type.
    assert upload(emulator, doc["url"], b"{}", content_type="text/plain") == 403
    # Another seller's token sees neither the document nor its feeds.
    other = login(emulator, "Atzr|2")
    assert call(emulator, other, "GET", f"/feeds/2021-06-30/documents/{doc['feedDocumentId']}")[0] == 404


def test_an_upload_url_expires_after_five_minutes_of_amazon_time(emulator, clock):
    token = login(emulator)
    _, doc, _ = call(emulator, token, "POST", "/feeds/2021-06-30/documents",
                     {"contentType": "application/json; charset=UTF-8"})
    clock.now += 301
    assert upload(emulator, doc["url"], feed_document(MESSAGES)) == 403


def test_create_feed_is_held_to_five_per_five_minutes_and_time_scale_speeds_it_up(emulator, clock):
    token = login(emulator)
    statuses = []
    for _ in range(6):
        _, doc, _ = call(emulator, token, "POST", "/feeds/2021-06-30/documents",
                         {"contentType": "application/json; charset=UTF-8"})
        upload(emulator, doc["url"], feed_document(MESSAGES[:1]))
        status, _, headers = call(emulator, token, "POST", "/feeds/2021-06-30/feeds", {
            "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKET], "inputFeedDocumentId": doc["feedDocumentId"]})
        statuses.append(status)
    assert statuses == [202] * 5 + [429]
    assert headers.get("x-amzn-ratelimit-limit") is None  # not on a 429, as for Listings
    # One feed's worth refills in 60 s of Amazon time: 0.6 real seconds at a time scale of 100.
    emulator.configure(time_scale=100.0)
    clock.now += 0.61
    _, doc, _ = call(emulator, token, "POST", "/feeds/2021-06-30/documents",
                     {"contentType": "application/json; charset=UTF-8"})
    upload(emulator, doc["url"], feed_document(MESSAGES[:1]))
    status, _, headers = call(emulator, token, "POST", "/feeds/2021-06-30/feeds", {
        "feedType": "JSON_LISTINGS_FEED", "marketplaceIds": [MARKET], "inputFeedDocumentId": doc["feedDocumentId"]})
    assert status == 202 and headers["x-amzn-ratelimit-limit"] == "0.0"  # 0.0167 shown as Amazon's one decimal


def test_get_feeds_lists_the_sellers_json_listings_feeds_newest_first(emulator, clock):
    token = login(emulator)
    first, _ = submit(emulator, token, feed_document(MESSAGES[:1]))
    clock.now += 1
    second, _ = submit(emulator, token, feed_document(MESSAGES[:1]))
    status, answer, _ = call(emulator, token, "GET", "/feeds/2021-06-30/feeds", query="feedTypes=JSON_LISTINGS_FEED")
    assert status == 200 and [f["feedId"] for f in answer["feeds"]] == [second, first]
    assert call(emulator, token, "GET", "/feeds/2021-06-30/feeds")[0] == 400
    assert call(emulator, login(emulator, "Atzr|2"), "GET", "/feeds/2021-06-30/feeds",
                query="feedTypes=JSON_LISTINGS_FEED")[1]["feeds"] == []


def test_cancel_feed_only_while_in_queue(emulator, clock):
    token = login(emulator)
    feed_id, _ = submit(emulator, token, feed_document(MESSAGES[:1]))
    assert call(emulator, token, "DELETE", f"/feeds/2021-06-30/feeds/{feed_id}")[0] == 200
    clock.now += 60
    _, feed, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")
    assert feed["processingStatus"] == "CANCELLED" and "resultFeedDocumentId" not in feed
    assert (False, "S1", MARKET, "OK-1") not in emulator.listings.store


@pytest.mark.shared
def test_the_report_and_the_example_feed_match_amazons_schemas(emulator, clock):
    require(SHARED_FEEDS.is_dir(), f"Amazon's feed schemas are not at {SHARED_FEEDS}")
    report_schema = json.loads((SHARED_FEEDS / "listings-feed-processing-report-schema-v2.json").read_text())
    example = json.loads((SHARED_FEEDS / "listings-feed-schema-v2.example.json").read_text())
    token = login(emulator)
    example["header"]["sellerId"] = "S1"
    feed_id, _ = submit(emulator, token, json.dumps(example).encode())
    clock.now += 60
    _, report = report_of(emulator, token, feed_id)
    jsonschema.Draft7Validator(report_schema).validate(report)
    assert report["summary"]["messagesProcessed"] == len(example["messages"])
    # Our own documents follow the feed schema too (the submitter builds them the same way).
    feed_schema = json.loads((SHARED_FEEDS / "listings-feed-schema-v2.json").read_text())
    jsonschema.Draft7Validator(feed_schema).validate(json.loads(feed_document(MESSAGES)))
    with_issues, _ = submit(emulator, token, feed_document(MESSAGES))
    clock.now += 60
    _, report = report_of(emulator, token, with_issues)
    assert report["issues"]
    jsonschema.Draft7Validator(report_schema).validate(report)


def test_a_report_url_lasts_five_minutes_from_getfeeddocument_and_cannot_be_stretched(emulator, clock):
    token = login(emulator)
    feed_id, _ = submit(emulator, token, feed_document(MESSAGES[:1]))
    clock.now += 1000  # processed long ago: a URL asked for now is still good for five minutes
    _, feed, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")
    _, document, _ = call(emulator, token, "GET", f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}")
    assert download(emulator, document["url"])[0] == 200
    stretched = document["url"].replace("expires=", "expires=9")
    assert download(emulator, stretched)[0] == 403
    clock.now += 301
    assert download(emulator, document["url"])[0] == 403


def test_a_served_emulator_judges_a_large_feed_in_the_background_chunk_by_chunk(clock):
    from tests.support.background import wait_until

    emulator = Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), feed_processing_s=0.0))
    emulator.start_processing()
    try:
        token = login(emulator)
        messages = [{**MESSAGES[0], "messageId": i + 1, "sku": f"BIG-{i}"} for i in range(3000)]
        feed_id, _ = submit(emulator, token, feed_document(messages))
        # Other calls are answered between chunks, before the feed is through.
        answer = call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")[1]
        assert answer["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS")
        wait_until(lambda: call(emulator, token, "GET", f"/feeds/2021-06-30/feeds/{feed_id}")[1]["processingStatus"]
                   == "DONE", timeout_s=60, message="the feed processed")
        _, report = report_of(emulator, token, feed_id)
        assert report["summary"]["messagesAccepted"] == 3000
    finally:
        emulator.stop_processing()
