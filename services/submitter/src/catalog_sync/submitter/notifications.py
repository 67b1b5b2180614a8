"""Amazon's listing notifications as an input that ends the reconciliation's polling early.

Where a seller subscribes to LISTINGS_ITEM_ISSUES_CHANGE and LISTINGS_ITEM_STATUS_CHANGE (SP-API
Notifications, destination an SQS queue), the user's forwarder puts each SQS message body, Amazon's
notification JSON as it is, on the topic `listing.notification.received` (any key). The submitter
reads it beside `listing.submission.completed`: a notification about a listing it is watching makes
the next getListingsItem happen at once (reconciliation.Reconciler.notified); the GET's answer, with
its request id, decides. Polling stays the fallback for sellers without a subscription.

The topic carries JSON, not Avro, so `NotificationCodec` reads it: Avro single-object encoded bytes
go to the Avro codec, anything else must be a notification of one of the two types, shaped as
Amazon's schemas (ListingsItemIssuesChangeNotification_2023-12-13.json,
ListingsItemStatusChangeNotification.json) require; otherwise the loop dead-letters it with reason
`bad_notification` and what is wrong. tests/unit/submitter/test_notifications.py checks this
reading against the schemas themselves.

Amazon's status schema names the type LISTINGS_ITEM_STATUS_CHANGED in its enum, while its own
example and Amazon's list of notification types say LISTINGS_ITEM_STATUS_CHANGE: both are taken.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from catalog_sync.runtime.codec import MARKER, AvroCodec, DecodeError

NOTIFICATION_RECORD = "AmazonListingNotification"  # the record name handlers see
ISSUES_CHANGE = "LISTINGS_ITEM_ISSUES_CHANGE"
STATUS_CHANGE = "LISTINGS_ITEM_STATUS_CHANGE"
_TYPES = {ISSUES_CHANGE: ISSUES_CHANGE, STATUS_CHANGE: STATUS_CHANGE, "LISTINGS_ITEM_STATUS_CHANGED": STATUS_CHANGE}
_SEVERITIES = frozenset({"NONE", "ERROR", "WARNING"})
_STATUSES = frozenset({"BUYABLE", "DISCOVERABLE", "DELETED"})
_TOP = ("NotificationVersion", "NotificationType", "PayloadVersion", "EventTime", "Payload", "NotificationMetadata")
_METADATA = ("ApplicationId", "SubscriptionId", "PublishTime", "NotificationId")
MAX_NOTIFICATION_BYTES = 256 * 1024  # SQS's largest message


class BadNotification(ValueError):
    pass


def parse_notification(data: bytes) -> dict:
    """The listing a notification is about, or BadNotification saying what is wrong."""
    if len(data) > MAX_NOTIFICATION_BYTES:
        raise BadNotification(f"{len(data)} bytes: larger than any SQS message")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadNotification(f"not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadNotification("not a JSON object")
    missing = [name for name in _TOP if name not in doc]
    if missing:
        raise BadNotification(f"missing {', '.join(missing)}")
    kind = _TYPES.get(doc["NotificationType"])
    if kind is None:
        raise BadNotification(f"NotificationType {str(doc['NotificationType'])[:80]!r} is not "
                              f"{ISSUES_CHANGE} or {STATUS_CHANGE}")
    for name in ("NotificationVersion", "PayloadVersion"):
        _string(doc, name, "")
    _time(doc, "EventTime", "")
    metadata, payload = doc["NotificationMetadata"], doc["Payload"]
    if not isinstance(metadata, dict):
        raise BadNotification("NotificationMetadata is not an object")
    for name in _METADATA:
        _string(metadata, name, "NotificationMetadata.", required=True)
    _time(metadata, "PublishTime", "NotificationMetadata.")
    if not isinstance(payload, dict):
        raise BadNotification("Payload is not an object")
    seller, sku = _string(payload, "SellerId", "Payload.", required=True), _string(payload, "Sku", "Payload.", required=True)
    marketplace = _string(payload, "MarketplaceId", "Payload.")
    _string(payload, "Asin", "Payload.")
    if kind == ISSUES_CHANGE:
        values = _enum_array(payload, "Severities", _SEVERITIES)
        if "EnforcementActions" in payload:
            _string_array(payload, "EnforcementActions")
    else:
        values = _enum_array(payload, "Status", _STATUSES)
        if "CreatedDate" in payload:
            _time(payload, "CreatedDate", "Payload.")
    return {"type": kind, "seller_id": seller, "marketplace_id": marketplace, "sku": sku, "values": values,
            "notification_id": metadata["NotificationId"]}


def _string(obj: dict, name: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and not required and name not in obj:
        return None
    if not isinstance(value, str):
        raise BadNotification(f"{where}{name} must be a string")
    return value


def _time(obj: dict, name: str, where: str) -> None:
    value = _string(obj, name, where, required=True)
    assert value is not None  # required=True raises on a missing value
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadNotification(f"{where}{name} {value[:40]!r} is not an ISO-8601 date-time") from None


def _string_array(payload: dict, name: str) -> list[str]:
    values = payload[name]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadNotification(f"Payload.{name} must be an array of strings")
    if len(set(values)) != len(values):
        raise BadNotification(f"Payload.{name} repeats a value")
    return values


def _enum_array(payload: dict, name: str, allowed: frozenset[str]) -> list[str]:
    if name not in payload:
        raise BadNotification(f"missing Payload.{name}")
    values = _string_array(payload, name)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise BadNotification(f"Payload.{name} has {unknown[0][:40]!r}, not one of {', '.join(sorted(allowed))}")
    return values


class NotificationCodec(AvroCodec):
    """The Avro codec, plus Amazon's notification JSON for anything not Avro-encoded."""

    def decode(self, data: bytes | None) -> tuple[str, dict]:
        if data and data[:2] == MARKER:
            return super().decode(data)
        if not data:
            raise DecodeError("bad_notification", "empty value: neither Avro nor an Amazon notification")
        try:
            return NOTIFICATION_RECORD, parse_notification(data)
        except BadNotification as exc:
            raise DecodeError("bad_notification", f"not an Amazon listing notification: {exc}") from None
