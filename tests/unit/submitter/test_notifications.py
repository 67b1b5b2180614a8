"""Amazon's listing notifications as the submitter reads them: what Amazon's own schemas accept is
taken, what they refuse is refused with a reason (and dead-lettered by the loop as bad_notification)."""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from catalog_sync.runtime.codec import AvroCodec, DecodeError
from catalog_sync.runtime.events import new_header
from catalog_sync.submitter.notifications import (
    ISSUES_CHANGE,
    NOTIFICATION_RECORD,
    STATUS_CHANGE,
    BadNotification,
    NotificationCodec,
    parse_notification,
)
from tests.support.requirements import require

NOTIFICATIONS = Path(__file__).resolve().parents[3].parent / "shared" / "amazon" / "notifications"
ISSUES_TIME = datetime(2026, 12, 7, 10, tzinfo=UTC)
SCHEMAS = {ISSUES_CHANGE: "ListingsItemIssuesChangeNotification_2023-12-13.json",
           STATUS_CHANGE: "ListingsItemStatusChangeNotification.json"}

ISSUES = {"NotificationVersion": "1.0", "NotificationType": ISSUES_CHANGE, "PayloadVersion": "2023-12-13",
          "EventTime": "2026-12-07T10:00:00.000Z",
          "Payload": {"SellerId": "A1SELLER", "MarketplaceId": "ATVPDKIKX0DER", "Sku": "SKU-1",
                      "Severities": ["ERROR"], "EnforcementActions": ["LISTING_SUPPRESSED"]},
          "NotificationMetadata": {"ApplicationId": "amzn1.sellerapps.app.1", "SubscriptionId": "sub-1",
                                   "PublishTime": "2026-12-07T10:00:01.000Z", "NotificationId": "n-1"}}


def schema_of(kind: str) -> dict:
    path = NOTIFICATIONS / SCHEMAS[kind]
    require(path.is_file(), f"Amazon's notification schema is not at {path}")
    return json.loads(path.read_text())


def schema_accepts(kind: str, doc: dict) -> bool:
    schema = schema_of(kind)
    if kind == STATUS_CHANGE:
        # The schema's enum says LISTINGS_ITEM_STATUS_CHANGED; its example, and Amazon, send
        # LISTINGS_ITEM_STATUS_CHANGE (notifications.py takes both).
        schema = copy.deepcopy(schema)
        schema["properties"]["NotificationType"]["enum"].append(STATUS_CHANGE)
    return jsonschema.Draft7Validator(schema).is_valid(doc)


def ours_accepts(doc) -> bool:
    try:
        parse_notification(json.dumps(doc).encode())
    except BadNotification:
        return False
    return True


@pytest.mark.shared
@pytest.mark.parametrize("kind", [ISSUES_CHANGE, STATUS_CHANGE])
def test_amazons_examples_are_read_as_the_listing_they_are_about(kind):
    for example in schema_of(kind)["examples"]:
        assert schema_accepts(kind, example)
        note = parse_notification(json.dumps(example).encode())
        assert (note["type"], note["seller_id"], note["sku"]) == (kind, example["Payload"]["SellerId"],
                                                                    example["Payload"]["Sku"])
        assert note["marketplace_id"] == example["Payload"]["MarketplaceId"]


def _variants():
    status = copy.deepcopy(ISSUES)
    status["NotificationType"] = STATUS_CHANGE
    status["PayloadVersion"] = "1.0"
    status["Payload"] = {"SellerId": "A1SELLER", "Sku": "SKU-1", "Status": ["BUYABLE", "DISCOVERABLE"],
                         "CreatedDate": "2026-12-07T09:00:00Z"}
    yield "status change without a marketplace", STATUS_CHANGE, status
    yield "issues change", ISSUES_CHANGE, ISSUES
    none = copy.deepcopy(ISSUES)
    none["Payload"]["Severities"] = ["NONE"]
    yield "issues resolved", ISSUES_CHANGE, none
    for name in ("Sku", "SellerId", "Severities"):
        missing = copy.deepcopy(ISSUES)
        del missing["Payload"][name]
        yield f"no Payload.{name}", ISSUES_CHANGE, missing
    fatal = copy.deepcopy(ISSUES)
    fatal["Payload"]["Severities"] = ["FATAL"]
    yield "unknown severity", ISSUES_CHANGE, fatal
    twice = copy.deepcopy(ISSUES)
    twice["Payload"]["Severities"] = ["ERROR", "ERROR"]
    yield "repeated severity", ISSUES_CHANGE, twice
    bad_status = copy.deepcopy(status)
    bad_status["Payload"]["Status"] = ["ON_SALE"]
    yield "unknown status", STATUS_CHANGE, bad_status
    for name in ("NotificationMetadata", "EventTime", "Payload"):
        missing = copy.deepcopy(ISSUES)
        del missing[name]
        yield f"no {name}", ISSUES_CHANGE, missing
    no_id = copy.deepcopy(ISSUES)
    del no_id["NotificationMetadata"]["NotificationId"]
    yield "no NotificationId", ISSUES_CHANGE, no_id
    numeric = copy.deepcopy(ISSUES)
    numeric["Payload"]["Sku"] = 42
    yield "numeric SKU", ISSUES_CHANGE, numeric


@pytest.mark.shared
@pytest.mark.parametrize(("what", "kind", "doc"), list(_variants()), ids=[v[0] for v in _variants()])
def test_the_reader_accepts_exactly_what_amazons_schema_accepts(what, kind, doc):
    assert ours_accepts(doc) == schema_accepts(kind, doc), what


def test_the_reason_names_what_is_wrong_and_the_codec_still_reads_avro():
    codec = NotificationCodec()
    with pytest.raises(DecodeError) as refused:
        codec.decode(b"{not json")
    assert refused.value.reason == "bad_notification" and "not JSON" in refused.value.detail
    other = {**ISSUES, "NotificationType": "ANY_OFFER_CHANGED"}
    with pytest.raises(DecodeError) as refused:
        codec.decode(json.dumps(other).encode())
    assert "ANY_OFFER_CHANGED" in refused.value.detail
    late = {**ISSUES, "EventTime": "yesterday"}
    with pytest.raises(DecodeError, match="EventTime"):
        codec.decode(json.dumps(late).encode())
    assert codec.decode(json.dumps(ISSUES).encode())[0] == NOTIFICATION_RECORD
    event = {**new_header("run-1"), "item_count": 3, "closed_at": ISSUES_TIME}
    schema, decoded = codec.decode(AvroCodec().encode("RunClosed", event))
    assert schema == "RunClosed" and decoded["item_count"] == 3
