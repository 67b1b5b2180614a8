"""The submitter worker end to end over a Kafka-protocol broker and the SP-API emulator (real HTTP):
ready events in, SubmissionCompleted events out, accepted hashes kept across a restart."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.sandbox import ACCEPTED as SANDBOX_ACCEPTED
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.demo import create_stack_topics
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.consumer_loop import StopSignal
from catalog_sync.runtime.events import new_header
from catalog_sync.runtime.topics import LISTING_READY, LISTING_SUBMISSION_COMPLETED, dead_letter_topic
from catalog_sync.submitter.service import run
from catalog_sync.submitter.settings import SubmitterSettings
from tests.support.background import running_in_thread
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka

ATTRIBUTES = {"item_name": [{"value": "Band", "language_tag": "en_US", "marketplace_id": "ATVPDKIKX0DER"}],
              "brand": [{"value": "Acme", "marketplace_id": "ATVPDKIKX0DER"}],
              "condition_type": [{"value": "new_new", "marketplace_id": "ATVPDKIKX0DER"}]}


def ready(sku: str, *, seller="A1SELLER", mode="production", item_type="product", attributes=None,
          content_hash=None, operation="upsert") -> dict:
    return {**new_header("run-1"), "mode": mode, "source_event_id": f"src-{sku}", "reference": sku,
            "item_type": item_type, "operation": operation, "seller_id": seller, "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
            "attributes_json": json.dumps(ATTRIBUTES if attributes is None else attributes),
            "changed_at": None, "content_hash": content_hash or f"hash-{sku}"}


# The submitter's one account; the emulator knows it, and only it.
ACCOUNT_ENV = {"LWA_CLIENT_ID": "app", "LWA_CLIENT_SECRET": "secret", "LWA_REFRESH_TOKEN": "Atzr|seller",
               "SELLER_ID": "A1SELLER"}


@pytest.fixture
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.from_env(ACCOUNT_ENV))) as running:
        yield running


class RunningSubmitter:
    """The submitter's own `run()` (topic check, accepted-hash table, worker) in a thread, its
    topics created first as `catalog-sync topics create` would."""

    def __init__(self, env):
        self.settings = SubmitterSettings.from_env(env)
        create_stack_topics(env)
        self.stop = StopSignal()
        self.registry = CollectorRegistry()

    def _run(self):
        run(self.settings, registry=self.registry, stop=self.stop)

    def __enter__(self):
        self._running = running_in_thread(self._run, self.stop, "submitter", 60)
        self._running.__enter__()
        return self

    def __exit__(self, *exc):
        return self._running.__exit__(*exc)


def submitter_env(kafka_env, emulator, **extra):
    return {**kafka_env, "SPAPI_ENDPOINT": emulator.url, "SPAPI_SANDBOX_ENDPOINT": emulator.sandbox_url,
            "LWA_TOKEN_URL": emulator.token_url, **ACCOUNT_ENV, **extra}


def test_outcomes_for_every_kind_of_item_and_no_resend_after_restart(runtime_settings, kafka_env, emulator):
    settings = runtime_settings("submitter")
    codec = AvroCodec()
    events = [
        ready("SKU-OK"),
        ready("SKU-INVALID", attributes={"item_name": [{"value": "x"}]}),
        ready("CAT-1", item_type="category"),
        ready("SKU-PREVIEW", mode="preview"),
        ready("SKU-TEST", mode="test"),
        ready("BadSKU"),
        ready("SKU-GONE", operation="delete"),
    ]
    publish_raw(settings, LISTING_READY, [(e["seller_id"], codec.encode("ListingReady", e)) for e in events])
    env = submitter_env(kafka_env, emulator)
    with RunningSubmitter(env):
        found = read_events(settings, LISTING_SUBMISSION_COMPLETED, len(events), timeout_s=60)
    by_ref = {event["reference"]: event for _, _, event in found}
    assert {k for k, _, _ in found} == {f"A1SELLER|ATVPDKIKX0DER|{e['reference']}" for e in events}
    ok = by_ref["SKU-OK"]
    assert (ok["outcome"], ok["status"], ok["http_status"], ok["amazon_status"], ok["endpoint"]) == \
        ("accepted", "finished", 200, "ACCEPTED", "production")
    assert ok["request_id"] and ok["attempt_request_ids"] == [ok["request_id"]] and ok["submission_id"]
    invalid = by_ref["SKU-INVALID"]
    assert (invalid["outcome"], invalid["status"], invalid["error_code"]) == ("invalid", "error", "90220")
    assert {n for i in invalid["issues"] for n in i["attribute_names"]} == {"brand", "condition_type"}
    assert (by_ref["CAT-1"]["outcome"], by_ref["CAT-1"]["attempts"]) == ("not_sent", 0)
    assert (by_ref["SKU-PREVIEW"]["outcome"], by_ref["SKU-PREVIEW"]["endpoint"]) == ("valid", "production")
    # A test run reaches Amazon's static sandbox, which answers its fixed example: ACCEPTED, the
    # example's submission id, whatever the item.
    assert (by_ref["SKU-TEST"]["outcome"], by_ref["SKU-TEST"]["endpoint"]) == ("accepted", "test")
    assert by_ref["SKU-TEST"]["submission_id"] == SANDBOX_ACCEPTED["submissionId"]
    assert (by_ref["BadSKU"]["outcome"], by_ref["BadSKU"]["http_status"], by_ref["BadSKU"]["error_code"]) == \
        ("rejected", 400, "BAD_REQUEST")
    assert by_ref["SKU-GONE"]["outcome"] == "deleted"
    log = emulator.requests()
    calls = {(r["sku"], r["operation"], r["endpoint"], r["mode"]) for r in log if r["operation"] != "lwaToken"}
    assert ("SKU-TEST", "putListingsItem", "sandbox", None) in calls
    assert ("SKU-PREVIEW", "putListingsItem", "production", "VALIDATION_PREVIEW") in calls
    assert ("SKU-GONE", "deleteListingsItem", "production", None) in calls
    assert not any(r.get("sku") == "CAT-1" for r in log)

    # A second process (after a restart) sees the accepted hash: the same payload is not resent,
    # a changed one is.
    seen = len(log)
    again = [ready("SKU-OK"), ready("SKU-OK", content_hash="hash-changed")]
    publish_raw(settings, LISTING_READY, [(e["seller_id"], codec.encode("ListingReady", e)) for e in again])
    with RunningSubmitter(env):
        found = read_events(settings, LISTING_SUBMISSION_COMPLETED, len(events) + 2, timeout_s=60)
    latest = [event for _, _, event in found if event["reference"] == "SKU-OK"][-2:]
    assert [e["outcome"] for e in latest] == ["unchanged", "accepted"]
    resent = [r for r in emulator.requests(since=log[-1]["seq"]) if r.get("sku") == "SKU-OK"]
    assert len(resent) == 1, f"expected only the changed payload to be sent, saw {len(resent)} calls ({seen})"


def test_a_replayed_event_is_answered_again_without_a_second_call(runtime_settings, kafka_env, emulator):
    # The same ListingReady event twice (same event id), as a replay after a rebalance or a broker
    # outage delivers it: a rejected item is not sent to Amazon again, and the outcome published
    # again is the same event, which the recorder ignores as a duplicate.
    settings = runtime_settings("submitter")
    codec = AvroCodec()
    rejected = ready("BadSKU")
    publish_raw(settings, LISTING_READY, [(rejected["seller_id"], codec.encode("ListingReady", rejected))] * 2)
    with RunningSubmitter(submitter_env(kafka_env, emulator)):
        found = read_events(settings, LISTING_SUBMISSION_COMPLETED, 2, timeout_s=60)
    first, second = (event for _, _, event in found)
    assert first["outcome"] == "rejected" and second == first
    calls = [r for r in emulator.requests() if r.get("sku") == "BadSKU"]
    assert len(calls) == 1, f"the replay called Amazon again: {len(calls)} calls"


def test_a_request_that_forgot_the_mode_table_is_dead_lettered_not_sent(runtime_settings, kafka_env, emulator,
                                                                         monkeypatch):
    # A future code path that builds its call without the table: a preview run's delete as the
    # first version sent it (production host, no mode). The client refuses it at the wire.
    from catalog_sync.submitter import listing_requests, submission

    def forgetful(event):
        return listing_requests.ListingCall(
            "deleteListingsItem", "DELETE", f"{listing_requests.API_PATH}/{event['seller_id']}/{event['reference']}",
            (("marketplaceIds", event["marketplace_id"]),), None, "delete", event["mode"], False)

    monkeypatch.setattr(submission, "build_call", forgetful)
    settings = runtime_settings("submitter")
    codec = AvroCodec()
    gone = ready("SKU-LIVE", mode="preview", operation="delete")
    publish_raw(settings, LISTING_READY, [(gone["seller_id"], codec.encode("ListingReady", gone))])
    with RunningSubmitter(submitter_env(kafka_env, emulator)) as running:
        (dead,) = [event for _, _, event in read_events(settings, dead_letter_topic("submitter"), 1, timeout_s=60)]
        refused = running.registry.get_sample_value("spapi_mode_violations_total")
    assert dead["reason"] == "mode_violation" and "preview" in dead["error"]
    assert refused == 1
    assert not [r for r in emulator.requests() if r.get("sku") == "SKU-LIVE"], "the refused request reached Amazon"
