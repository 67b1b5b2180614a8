"""The bulk lane's domain core against the emulator's Feeds behaviour in process (no HTTP): lane
choice, one outcome per item from the processing report, whole-feed failures, an expired report
URL, resuming a journaled feed without creating it twice, and handing a partition over to its next
owner. Amazon time runs 2,000x faster on both sides."""

import asyncio
import json
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.amazon_emulator.emulator import Emulator, EmulatorConfig
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.amazon_time import ScaledClock
from catalog_sync.runtime.spapi_accounts import SellerCredentials
from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.feeds import BulkLane, BulkSettings, MemoryJournal, default_threshold
from catalog_sync.submitter.listing_requests import build_call
from catalog_sync.submitter.metrics import FeedMetrics
from catalog_sync.submitter.outcomes import completed_event
from catalog_sync.submitter.rate import RateLimiter
from catalog_sync.submitter.submission import SpApiPorts, Submitter

SCALE = 2000.0
MARKET = "ATVPDKIKX0DER"
GOOD = {"item_name": [{"value": "Band", "marketplace_id": MARKET}], "brand": [{"value": "Acme"}],
        "condition_type": [{"value": "new_new"}]}
ACCOUNT = Account("S1", "app", "s", "Atzr|1")
ACCOUNT2 = Account("S2", "app", "s", "Atzr|2")


class EmulatorTransport:
    """The Feeds port straight onto the emulator's request pipeline."""

    def __init__(self, emulator: Emulator, lose_create_answers: int = 0) -> None:
        self.emulator = emulator
        self.tokens: dict[str, str] = {}
        self.calls: list[str] = []
        self.lose_create_answers = lose_create_answers

    def _token(self, account: Account) -> str:
        if account.refresh_token not in self.tokens:
            form = (f"grant_type=refresh_token&refresh_token={account.refresh_token}&client_id={account.client_id}"
                    f"&client_secret={account.client_secret}").encode()
            self.tokens[account.refresh_token] = json.loads(
                self.emulator.handle("POST", "/auth/o2/token", "", {}, form).body)["access_token"]
        return self.tokens[account.refresh_token]

    async def feeds_call(self, account, base_url, mode, operation, path, query="", body=None):
        self.calls.append(operation)
        answer = self.emulator.handle(
            {"createFeedDocument": "POST", "createFeed": "POST", "getFeed": "GET", "getFeeds": "GET",
             "getFeedDocument": "GET"}[operation], path, query,
            {"x-amz-access-token": self._token(account), "content-type": "application/json", "host": "emu"},
            json.dumps(body).encode() if body is not None else b"")
        headers = dict(answer.headers)
        if operation == "createFeed" and self.lose_create_answers:
            self.lose_create_answers -= 1
            return Answer(None, failure="timeout", detail="read timeout")
        return Answer(answer.status, request_id=headers.get("x-amzn-requestid"), body=json.loads(answer.body),
                      rate_limit=headers.get("x-amzn-ratelimit-limit"))

    async def upload(self, url, content_type, content):
        parts = urlsplit(url)
        answer = self.emulator.handle("PUT", parts.path, parts.query, {"content-type": content_type}, content)
        return Answer(answer.status)

    async def download(self, url):
        parts = urlsplit(url)
        answer = self.emulator.handle("GET", parts.path, parts.query, {}, b"")
        return Answer(answer.status), answer.body


def emulator() -> Emulator:
    return Emulator(EmulatorConfig(accounts=LwaAccounts.of([SellerCredentials("S1", "app", "s", "Atzr|1"),
                                                           SellerCredentials("S2", "app", "s", "Atzr|2")]),
                                   time_scale=SCALE, feed_processing_s=120.0))


def ready(n: int, *, mode="production", operation="upsert", attributes=GOOD, seller="S1"):
    return {"event_id": f"ev-{n}", "run_id": "run-1", "mode": mode, "reference": f"SKU-{n}", "item_type": "product",
            "operation": operation, "seller_id": seller, "marketplace_id": MARKET, "product_type": "HAIRBAND",
            "requirements": "LISTING", "parent_reference": None, "attributes_json": json.dumps(attributes),
            "content_hash": f"h-{n}"}


def lane(amazon: Emulator, journal=None, transport=None, plans=None, observer=None, **settings) -> BulkLane:
    clock = ScaledClock(SCALE)
    return BulkLane(transport=transport or EmulatorTransport(amazon), journal=journal or MemoryJournal(),
                    limiter=RateLimiter(plans, clock=clock.now, sleep=clock.sleep),
                    settings=BulkSettings(**{"threshold": 0, "linger_s": 1.0, "poll_interval_s": 10.0, **settings}),
                    clock=clock.now, sleep=clock.sleep, observer=observer)


def routed(bulk: BulkLane, events, account=ACCOUNT, partition=0, first_offset=100) -> list:
    return [bulk.route(account, "http://emu", e, build_call(e), (partition, first_offset + i)) for i, e in enumerate(events)]


def through_lane(bulk: BulkLane, events, account=ACCOUNT, first_offset=100):
    async def main():
        waits = routed(bulk, events, account, first_offset=first_offset)
        assert all(w is not None for w in waits)
        return await asyncio.wait_for(asyncio.gather(*waits), 30)
    return asyncio.run(main())


def test_the_default_threshold_is_what_the_item_lane_sends_while_one_feed_refills():
    assert default_threshold() == 300  # put 5/s x 60 s (five createFeed per five minutes)


def test_a_backlog_goes_out_as_one_feed_and_every_item_gets_its_own_outcome():
    amazon = emulator()
    bulk = lane(amazon)
    events = [ready(1), ready(2, attributes={k: v for k, v in GOOD.items() if k != "brand"}),
              ready(3, operation="delete"), ready(4)]
    results = through_lane(bulk, events)
    assert len(amazon.feeds.created) == 1 and bulk.feeds_sent == 1
    feed_id = amazon.feeds.created[0]["feed_id"]
    assert [r.outcome for r in results] == ["accepted", "invalid", "deleted", "accepted"]
    assert [r.feed.message_id for r in results] == [1, 2, 3, 4]
    assert {r.feed.feed_id for r in results} == {feed_id}
    invalid = results[1]
    assert (invalid.error_code, invalid.issues[0]["attribute_names"]) == ("90220", ["brand"])
    event = completed_event(events[1], invalid, "production")
    assert event["status"] == "error" and event["feed_id"] == feed_id and event["feed_message_id"] == 2
    create_ids = [r["request_id"] for r in amazon.requests() if r["operation"] == "createFeed"]
    poll_ids = [r["request_id"] for r in amazon.requests() if r["operation"] == "getFeed"]
    assert event["create_feed_request_id"] == create_ids[0] and event["get_feed_request_id"] == poll_ids[-1]
    assert event["feed_processing_status"] == "DONE" and create_ids[0] in event["attempt_request_ids"]
    # Accepted through the feed means live at Amazon, as by putListingsItem.
    assert (False, "S1", MARKET, "SKU-4") in amazon.listings.store


def test_the_feed_metrics_count_items_by_lane_and_feeds_by_how_they_ended():
    amazon = emulator()
    registry = CollectorRegistry()
    metrics = FeedMetrics(registry)
    bulk = lane(amazon, observer=metrics)
    through_lane(bulk, [ready(1), ready(2, attributes={k: v for k, v in GOOD.items() if k != "brand"}),
                        ready(3, operation="delete")])
    # The refresh token was granted by S1: Amazon ends a feed for S2 as FATAL.
    through_lane(lane(amazon, observer=metrics), [ready(n, seller="S2") for n in range(3)],
                 account=Account("S2", "app", "s", "Atzr|1"))
    short = lane(amazon, observer=metrics, threshold=300)
    assert short.route(ACCOUNT, "http://emu", ready(9), build_call(ready(9)), (0, 9)) is None
    metric = registry.get_sample_value
    assert metric("submitter_items_routed_total", {"lane": "feed"}) == 6
    assert metric("submitter_items_routed_total", {"lane": "item"}) == 1
    assert metric("submitter_feeds_created_total") == 2
    assert metric("submitter_feeds_ended_total", {"status": "DONE"}) == 1
    assert metric("submitter_feeds_ended_total", {"status": "FATAL"}) == 1
    outcomes = ("accepted", "invalid", "deleted", "failed")
    assert {o: metric("submitter_feed_items_total", {"outcome": o}) for o in outcomes} == {
        "accepted": 1, "invalid": 1, "deleted": 1, "failed": 3}
    assert bulk.feeds_in_flight == 0


def test_a_backlog_above_the_message_limit_is_split_into_several_feeds():
    amazon = emulator()
    results = through_lane(lane(amazon, max_messages=10), [ready(n) for n in range(25)])
    assert len(amazon.feeds.created) == 3
    assert sorted(len({r.feed.feed_id for r in results[i:i + 10]}) for i in (0, 10, 20)) == [1, 1, 1]
    assert all(r.outcome == "accepted" for r in results)


def test_preview_never_feeds_and_a_short_backlog_goes_item_by_item():
    amazon = emulator()
    bulk = lane(amazon)
    preview = ready(1, mode="preview")
    assert bulk.route(ACCOUNT, "http://emu", preview, build_call(preview), (0, 1)) is None
    bulk = lane(amazon, threshold=300)
    event = ready(2)
    assert bulk.route(ACCOUNT, "http://emu", event, build_call(event), (0, 2)) is None
    assert amazon.requests() == []


def test_a_fatal_feed_ends_every_item_as_an_error_with_the_reason():
    amazon = emulator()
    # The refresh token was granted by S1; a feed for S2 is refused as a whole by Amazon.
    wrong = Account("S2", "app", "s", "Atzr|1")
    results = through_lane(lane(amazon), [ready(n, seller="S2") for n in range(3)], account=wrong)
    assert {r.outcome for r in results} == {"failed"} and {r.status for r in results} == {"error"}
    assert {r.error_code for r in results} == {"feed_fatal"}
    assert "not the selling partner" in results[0].error_message
    assert results[0].feed.processing_status == "FATAL" and results[0].feed.feed_id


def test_a_lost_create_feed_answer_is_looked_up_not_sent_again():
    amazon = emulator()
    transport = EmulatorTransport(amazon, lose_create_answers=1)
    results = through_lane(lane(amazon, transport=transport), [ready(n) for n in range(5)])
    assert len(amazon.feeds.created) == 1 and transport.calls.count("createFeed") == 1
    assert "getFeeds" in transport.calls and {r.outcome for r in results} == {"accepted"}


@pytest.mark.parametrize("crash_after", ["uploaded", "creating", "submitted", "reported"])
def test_a_journaled_feed_is_resumed_by_the_next_owner_without_a_second_feed(crash_after):
    amazon = emulator()
    journal = MemoryJournal()
    events = [ready(n) for n in range(6)]

    class Crash(Exception):
        pass

    async def first_owner():
        real_write = journal.write

        async def write(key, record):
            await real_write(key, record)
            if record is not None and record["state"] == crash_after:
                raise Crash  # the process dies right after this journal write
        journal.write = write
        bulk = lane(amazon, journal=journal)
        waits = routed(bulk, events)
        await asyncio.wait_for(asyncio.gather(*waits), 30)
        journal.write = real_write

    asyncio.run(first_owner())  # the items' futures end with a failure; the journal keeps the feed
    if crash_after in ("uploaded", "creating"):
        assert amazon.feeds.created == []
    # The next owner gets the same ready events again (uncommitted), at the same positions.
    results = through_lane(lane(amazon, journal=journal), events)
    assert len(amazon.feeds.created) == 1
    assert [r.outcome for r in results] == ["accepted"] * 6
    assert [r.feed.message_id for r in results] == [1, 2, 3, 4, 5, 6]
    assert {r.feed.feed_id for r in results} == {amazon.feeds.created[0]["feed_id"]}


def test_a_dead_owners_feeds_waiting_for_their_turn_are_told_apart_from_the_one_it_sent():
    """Three batches of a seller; the process dies once Amazon created the second feed but before
    its answer came back, with the third batch uploaded and waiting for its turn. The next owner
    finds the second feed with getFeeds, creates only the third, and every item gets the outcome of
    the message that carries it."""
    amazon = emulator()
    events = [ready(n) for n in range(12)]

    class Crash(Exception):
        pass

    dead = False

    class DiesOnSecondCreate(EmulatorTransport):
        async def feeds_call(self, account, base_url, mode, operation, path, query="", body=None):
            nonlocal dead
            if dead:
                raise Crash
            if operation == "createFeed" and len(self.emulator.feeds.created) == 1:
                for _ in range(1000):  # the third batch uploaded and queued behind this createFeed
                    if any(r["state"] == "uploaded" for r in journal.records().values()):
                        break
                    await asyncio.sleep(0.001)
            answer = await super().feeds_call(account, base_url, mode, operation, path, query, body)
            if operation == "createFeed" and len(self.emulator.feeds.created) == 2:
                dead = True  # Amazon has the feed; its answer dies with the process
                raise Crash
            return answer

    class DyingJournal(MemoryJournal):
        async def write(self, key, record):
            if dead:
                raise Crash
            await super().write(key, record)

    journal = DyingJournal()

    async def first_owner():
        bulk = lane(amazon, journal=journal, transport=DiesOnSecondCreate(amazon), max_messages=4)
        waits = routed(bulk, events)
        await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 30)
        await bulk.aclose()

    asyncio.run(first_owner())
    states = sorted(r["state"] for r in journal.records().values())
    assert len(amazon.feeds.created) == 2 and states.count("creating") == 1 and states.count("uploaded") == 1, states
    dead = False  # the next owner's process
    results = through_lane(lane(amazon, journal=journal, max_messages=4), events)
    feeds = amazon.feeds
    skus_of = {c["feed_id"]: {m["messageId"]: m["sku"] for m in json.loads(feeds.documents[c["document_id"]].content)["messages"]}
               for c in feeds.created}
    in_feeds = [sku for skus in skus_of.values() for sku in skus.values()]
    assert len(feeds.created) == 3 and sorted(in_feeds) == sorted(e["reference"] for e in events)
    assert [r.outcome for r in results] == ["accepted"] * 12
    assert all(skus_of[r.feed.feed_id][r.feed.message_id] == e["reference"] for r, e in zip(results, events, strict=True))


def test_the_submitter_sends_a_backlog_above_the_threshold_by_feed_and_keeps_the_rest_item_by_item():
    amazon = emulator()
    clock = ScaledClock(SCALE)

    class ItemTransport:
        """The Listings port onto the same emulator."""

        def __init__(self):
            self.feeds = EmulatorTransport(amazon)

        async def prepare(self, account):
            pass

        def connection(self, base_url):
            import contextlib
            return contextlib.nullcontext()

        async def send(self, connection, account, base_url, call):
            path, _, query = call.path_and_query.partition("?")
            answer = amazon.handle(call.method, path, query, {"x-amz-access-token": self.feeds._token(account),
                                                              "content-type": "application/json"}, call.body or b"")
            headers = dict(answer.headers)
            return Answer(answer.status, request_id=headers.get("x-amzn-requestid"), body=json.loads(answer.body),
                          rate_limit=headers.get("x-amzn-ratelimit-limit"))

        async def refresh_token(self, account, generation):
            pass

    transport = ItemTransport()
    limiter = RateLimiter(clock=clock.now, sleep=clock.sleep)
    bulk = BulkLane(transport=transport.feeds, journal=MemoryJournal(), limiter=limiter,
                    settings=BulkSettings(threshold=20, linger_s=1.0, poll_interval_s=10.0), clock=clock.now,
                    sleep=clock.sleep)
    submitter = Submitter(SpApiPorts(accounts=Accounts({"S1": ACCOUNT}), transport=transport,
                                     endpoints=Endpoints("http://emu", "http://emu/sandbox"), limiter=limiter,
                                     clock=clock.now, sleep=clock.sleep), bulk=bulk)
    events = [ready(n) for n in range(200)]

    async def main():
        return await asyncio.wait_for(asyncio.gather(
            *(submitter.submit_now(e, (0, i)) for i, e in enumerate(events))), 60)

    done = asyncio.run(main())
    by_feed = [d for d in done if d.result.feed is not None]
    by_item = [d for d in done if d.result.feed is None]
    assert {d.result.outcome for d in done} == {"accepted"}
    assert len(by_item) == 20 and len(by_feed) == 180  # the threshold's worth item by item, the rest by feed
    assert len(amazon.feeds.created) == 1
    put_calls = [r for r in amazon.requests() if r["operation"] == "putListingsItem"]
    assert len(put_calls) == len(by_item)


def test_a_cancelled_feed_ends_every_item_as_an_error_with_the_reason():
    amazon = emulator()

    class CancellingTransport(EmulatorTransport):
        """Someone cancels the feed (cancelFeed) right after it is created."""

        async def feeds_call(self, account, base_url, mode, operation, path, query="", body=None):
            answer = await super().feeds_call(account, base_url, mode, operation, path, query, body)
            if operation == "createFeed" and answer.status == 202:
                cancelled = self.emulator.handle("DELETE", f"/feeds/2021-06-30/feeds/{answer.body['feedId']}", "",
                                                 {"x-amz-access-token": self._token(account), "host": "emu"}, b"")
                assert cancelled.status == 200
            return answer

    results = through_lane(lane(amazon, transport=CancellingTransport(amazon)), [ready(n) for n in range(3)])
    assert {(r.outcome, r.status, r.error_code) for r in results} == {("failed", "error", "feed_cancelled")}
    assert "CANCELLED" in results[0].error_message and results[0].feed.feed_id == amazon.feeds.created[0]["feed_id"]
    assert not any(key[3].startswith("SKU-") for key in amazon.listings.store)  # nothing was applied


def test_a_report_url_that_expired_before_its_download_is_asked_for_again():
    amazon = emulator()
    clock = ScaledClock(SCALE)
    statuses = []

    class StallsBeforeTheFirstDownload(EmulatorTransport):
        """The first report download starts only after its presigned URL's five minutes are over."""

        async def download(self, url):
            if not statuses:
                await clock.sleep(400)
            answer, content = await super().download(url)
            statuses.append(answer.status)
            return answer, content

    transport = StallsBeforeTheFirstDownload(amazon)
    results = through_lane(lane(amazon, transport=transport), [ready(1), ready(2, operation="delete"), ready(3)])
    assert statuses == [403, 200] and transport.calls.count("getFeedDocument") == 2
    assert [r.outcome for r in results] == ["accepted", "deleted", "accepted"]
    assert [r.feed.message_id for r in results] == [1, 2, 3]
    assert {r.feed.feed_id for r in results} == {amazon.feeds.created[0]["feed_id"]}


def test_a_feed_waiting_for_its_createfeed_when_the_partition_moves_is_created_once_by_the_next_owner():
    """A scale-out moves the seller's partition while its uploaded feed waits for its createFeed
    turn: the old process sends no createFeed and answers none of its items (the consumer group
    gives them to the next owner), and the next owner resumes the journaled feed."""
    amazon = emulator()
    events = [ready(n) for n in range(5)]
    old_transport = EmulatorTransport(amazon)
    uploaded = asyncio.Event()

    class WatchedJournal(MemoryJournal):
        async def write(self, key, record):
            await super().write(key, record)
            if record is not None and record["state"] == "uploaded":
                uploaded.set()

    journal = WatchedJournal()

    async def main():
        # The seller's createFeed plan is spent: the next one is ten Amazon minutes away.
        old = lane(amazon, journal=journal, transport=old_transport, plans={"createFeed": UsagePlan(1 / 600, 1)})
        gate = old.limiter.lane("S1", "createFeed")
        await gate.acquire()
        gate.answered()
        await old.assigned([0, 1])
        unanswered = routed(old, events)
        await uploaded.wait()
        assert await old.revoked([0]) == 0  # nothing of the partition on its way to Amazon
        new = lane(amazon, journal=journal)
        await new.assigned([0])
        results = await asyncio.wait_for(asyncio.gather(*routed(new, events)), 30)
        await asyncio.wait_for(asyncio.wait(unanswered), 30)  # the old owner's turn came, and it stopped
        return unanswered, results

    unanswered, results = asyncio.run(main())
    assert all(f.cancelled() for f in unanswered)
    assert old_transport.calls.count("createFeed") == 0
    assert len(amazon.feeds.created) == 1
    assert [r.outcome for r in results] == ["accepted"] * 5
    assert [r.feed.message_id for r in results] == [1, 2, 3, 4, 5]
    assert {r.feed.feed_id for r in results} == {amazon.feeds.created[0]["feed_id"]}


def test_a_revoke_waits_until_the_createfeed_on_its_way_has_its_feed_id_journaled():
    amazon = emulator()
    journal = MemoryJournal()
    events = [ready(n) for n in range(4)]
    on_the_wire, answer_back = asyncio.Event(), asyncio.Event()

    class SlowCreateFeedAnswer(EmulatorTransport):
        async def feeds_call(self, account, base_url, mode, operation, path, query="", body=None):
            answer = await super().feeds_call(account, base_url, mode, operation, path, query, body)
            if operation == "createFeed":
                on_the_wire.set()  # Amazon created the feed; its answer is on its way back
                await answer_back.wait()
            return answer

    old_transport = SlowCreateFeedAnswer(amazon)

    async def main():
        old = lane(amazon, journal=journal, transport=old_transport)
        await old.assigned([0])
        unanswered = routed(old, events)
        await on_the_wire.wait()
        revoking = asyncio.ensure_future(old.revoked([0]))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not revoking.done(), "the revoke let the next owner in while a createFeed was on its way"
        answer_back.set()
        assert await asyncio.wait_for(revoking, 30) == 0
        (entry,) = journal.records().values()
        assert (entry["state"], entry["feed_id"]) == ("submitted", amazon.feeds.created[0]["feed_id"])
        await asyncio.wait_for(asyncio.wait(unanswered), 30)
        new = lane(amazon, journal=journal)
        await new.assigned([0])
        return unanswered, await asyncio.wait_for(asyncio.gather(*routed(new, events)), 30)

    unanswered, results = asyncio.run(main())
    assert all(f.cancelled() for f in unanswered) and "getFeed" not in old_transport.calls
    assert len(amazon.feeds.created) == 1
    assert [r.outcome for r in results] == ["accepted"] * 4
    assert {r.feed.feed_id for r in results} == {amazon.feeds.created[0]["feed_id"]}


def test_items_of_a_revoked_partition_leave_their_open_batch_unanswered():
    amazon = emulator()

    async def main():
        bulk = lane(amazon, linger_s=60.0)
        await bulk.assigned([0, 1])
        moved = routed(bulk, [ready(n) for n in range(3)], partition=0)
        kept = routed(bulk, [ready(n, seller="S2") for n in range(3)], account=ACCOUNT2, partition=1)
        assert await bulk.revoked([0]) == 0
        assert all(f.cancelled() for f in moved) and bulk.backlog("S1") == 0
        return await asyncio.wait_for(asyncio.gather(*kept), 30)

    results = asyncio.run(main())
    assert [r.outcome for r in results] == ["accepted"] * 3
    (created,) = amazon.feeds.created  # S1's batch, lingering as long as S2's, never went out
    assert json.loads(amazon.feeds.documents[created["document_id"]].content)["header"]["sellerId"] == "S2"
