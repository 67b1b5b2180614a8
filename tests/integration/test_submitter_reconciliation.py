"""Looking again after ACCEPTED over a Kafka-protocol broker and the emulator (real HTTP): what a
user notices of issue 18 item 5. An item goes accepted -> live; one Amazon turns down after
accepting it becomes an error with the request id of the GET that found it, and the next run sends
it again; the time limit leaves one "accepted, awaiting Amazon" with a note; Amazon's notification
ends the waiting early; a bad notification is dead-lettered and the worker goes on."""

from __future__ import annotations

import json

import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.topics import (
    LISTING_NOTIFICATION_RECEIVED,
    LISTING_READY,
    LISTING_STATE_OBSERVED,
    LISTING_SUBMISSION_COMPLETED,
    dead_letter_topic,
)
from tests.integration.test_submitter_worker import ACCOUNT_ENV, RunningSubmitter, ready, submitter_env
from tests.support.background import wait_until
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka
US = "ATVPDKIKX0DER"
QUICK = {"RECONCILE_FIRST_LOOK_S": "0.2", "RECONCILE_MAX_INTERVAL_S": "0.4", "RECONCILE_TIME_LIMIT_S": "4"}


@pytest.fixture
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.from_env(ACCOUNT_ENV))) as running:
        yield running


def publish_ready(settings, *events):
    codec = AvroCodec()
    publish_raw(settings, LISTING_READY, [(e["seller_id"], codec.encode("ListingReady", e)) for e in events])


def notification(sku: str, kind: str = "LISTINGS_ITEM_STATUS_CHANGE") -> bytes:
    payload = {"SellerId": "A1SELLER", "MarketplaceId": US, "Sku": sku}
    payload.update({"Status": ["BUYABLE", "DISCOVERABLE"]} if kind.startswith("LISTINGS_ITEM_STATUS")
                   else {"Severities": ["ERROR"]})
    return json.dumps({
        "NotificationVersion": "1.0", "NotificationType": kind, "PayloadVersion": "1.0",
        "EventTime": "2026-12-07T10:00:00.000Z", "Payload": payload,
        "NotificationMetadata": {"ApplicationId": "amzn1.sellerapps.app.1", "SubscriptionId": "sub-1",
                                 "PublishTime": "2026-12-07T10:00:01.000Z", "NotificationId": f"n-{sku}"}}).encode()


def gets(running, sku: str) -> list[dict]:
    return [r for r in running.requests() if r.get("sku") == sku and r["operation"] == "getListingsItem"]


def test_accepted_items_end_live_in_error_or_awaiting_amazon_and_the_rejected_one_is_resent(
        runtime_settings, kafka_env, emulator):
    settings = runtime_settings("submitter")
    emulator.emulator.after_acceptance("SKU-LIVE", live_after_s=0.5)
    emulator.emulator.after_acceptance("SKU-LATER-ERROR", issues_after_s=0.5)
    emulator.emulator.after_acceptance("SKU-SLOW", live_after_s=3600)
    publish_ready(settings, ready("SKU-LIVE"), ready("SKU-LATER-ERROR"), ready("SKU-SLOW"),
                  ready("SKU-INVALID", attributes={"item_name": [{"value": "x"}]}), ready("SKU-PREVIEW", mode="preview"))
    env = submitter_env(kafka_env, emulator, **QUICK)
    with RunningSubmitter(env):
        found = read_events(settings, LISTING_STATE_OBSERVED, 3, timeout_s=60)
        seen = {event["reference"]: event for _, _, event in found}
        assert {k for k, _, _ in found} == {f"A1SELLER|{US}|{r}" for r in seen}

        live = seen["SKU-LIVE"]
        assert (live["listing_state"], live["status"], live["ended_by"]) == ("live", "finished", "poll")
        assert live["looks"] >= 2 and "DISCOVERABLE" in live["amazon_statuses"]  # not live at the first look

        turned_down = seen["SKU-LATER-ERROR"]
        assert (turned_down["listing_state"], turned_down["status"], turned_down["error_code"]) == \
            ("error", "error", "8541")
        assert "conflicts with the Amazon catalog" in turned_down["error_message"]
        # The request id is the one of the GET that found the issue, as the emulator logged it.
        deciding = [r for r in gets(emulator, "SKU-LATER-ERROR") if r["request_id"] == turned_down["request_id"]]
        assert deciding and deciding[0]["status"] == 200
        put = [r for r in emulator.requests() if r.get("sku") == "SKU-LATER-ERROR" and r["operation"] == "putListingsItem"]
        assert turned_down["submission_request_id"] == put[0]["request_id"] != turned_down["request_id"]

        slow = seen["SKU-SLOW"]
        assert (slow["listing_state"], slow["status"], slow["ended_by"]) == ("awaiting", "finished", "time_limit")
        assert "accepted, awaiting Amazon" in slow["note"] and "4 s after acceptance" in slow["note"]

        # Nothing looked at an item Amazon refused, nor at a preview (which persists nothing).
        assert not gets(emulator, "SKU-INVALID") and not gets(emulator, "SKU-PREVIEW")
        # The GETs stayed within the plan: Amazon (the emulator, 5/s burst 10) never throttled them.
        assert all(r["status"] != 429 for r in emulator.requests() if r["operation"] == "getListingsItem")

        # The next run sends the turned-down item again although its content is the same; the
        # live one is skipped as unchanged.
        emulator.emulator.after_acceptance("SKU-LATER-ERROR", live_after_s=0)
        publish_ready(settings, ready("SKU-LATER-ERROR"), ready("SKU-LIVE"))
        completed = read_events(settings, LISTING_SUBMISSION_COMPLETED, 7, timeout_s=60)
    outcomes: dict[str, list[str]] = {}
    for _, _, event in completed:  # in order per item (one partition per key)
        outcomes.setdefault(event["reference"], []).append(event["outcome"])
    assert outcomes["SKU-LATER-ERROR"] == ["accepted", "accepted"]
    assert outcomes["SKU-LIVE"] == ["accepted", "unchanged"]
    puts = [r for r in emulator.requests() if r.get("sku") == "SKU-LATER-ERROR" and r["operation"] == "putListingsItem"]
    assert len(puts) == 2


def test_a_notification_ends_the_waiting_early_and_a_bad_one_is_dead_lettered(runtime_settings, kafka_env, emulator):
    settings = runtime_settings("submitter")
    # First look only after 60 s, and no later than 10 minutes: only a notification can end it soon.
    env = submitter_env(kafka_env, emulator, RECONCILE_FIRST_LOOK_S="60", RECONCILE_MAX_INTERVAL_S="600",
                        RECONCILE_TIME_LIMIT_S="900")
    publish_ready(settings, ready("SKU-NOTIFIED"))
    with RunningSubmitter(env):
        read_events(settings, LISTING_SUBMISSION_COMPLETED, 1, timeout_s=60)
        assert not gets(emulator, "SKU-NOTIFIED")
        publish_raw(settings, LISTING_NOTIFICATION_RECEIVED, [
            (None, b"{\"NotificationType\": \"LISTINGS_ITEM_STATUS_CHANGE\"}"),  # no payload: dead letter
            (None, b"\x00\x01 not json"),
        ])
        dead = read_events(settings, dead_letter_topic("submitter"), 2, timeout_s=60)
        assert {event["reason"] for _, _, event in dead} == {"bad_notification"}
        assert any("missing" in event["error"] and "Payload" in event["error"] for _, _, event in dead)
        # The worker is still there: a good notification (the watch may start a moment after the
        # SubmissionCompleted is out, so it is sent until a look happens).
        wait_until(lambda: publish_raw(settings, LISTING_NOTIFICATION_RECEIVED,
                                       [(None, notification("SKU-NOTIFIED"))]) or gets(emulator, "SKU-NOTIFIED"),
                   timeout_s=30, interval_s=0.5)
        found = read_events(settings, LISTING_STATE_OBSERVED, 1, timeout_s=30)
    [(_, _, observed)] = found
    assert (observed["listing_state"], observed["ended_by"], observed["looks"]) == ("live", "notification", 1)
