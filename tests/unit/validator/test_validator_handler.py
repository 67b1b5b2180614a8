"""One catalog change in, one event out: ListingReady or ValidationFailed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from validator_fixtures import US, change, complete_hairband

from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.validator.handler import content_hash, handle_change


def event(attributes=None, **fields):
    return {"event_id": "e-1", "event_time": datetime(2026, 11, 27, tzinfo=UTC), "run_id": "run-1",
            "mode": "preview", **change(attributes, **fields)}


def test_a_valid_product_becomes_listing_ready_keyed_by_seller(bundled_validator):
    [out] = handle_change(event(complete_hairband()), validator=bundled_validator, default_seller_id="DEFAULT")
    assert (out.topic, out.key, out.schema) == ("listing.ready", "A1SELLER", "ListingReady")
    ready = out.event
    assert ready["source_event_id"] == "e-1" and ready["run_id"] == "run-1" and ready["mode"] == "preview"
    assert ready["attributes_json"] == event(complete_hairband())["attributes_json"]
    assert ready["content_hash"] == content_hash("upsert", "HAIRBAND", "LISTING", complete_hairband())
    AvroCodec().encode("ListingReady", ready)  # the wire schema accepts it


def test_the_default_seller_fills_in(bundled_validator):
    [out] = handle_change(event(complete_hairband(), seller_id=None), validator=bundled_validator,
                          default_seller_id="A9DEFAULT")
    assert out.key == "A9DEFAULT" and out.event["seller_id"] == "A9DEFAULT"


def test_no_seller_at_all_is_a_validation_error(bundled_validator):
    [out] = handle_change(event(complete_hairband(), seller_id=None), validator=bundled_validator,
                          default_seller_id=None)
    assert out.schema == "ValidationFailed"
    assert out.key == f"|{US}|SKU-1"
    assert out.event["errors"] == [{"code": "seller.missing", "message": out.event["errors"][0]["message"],
                                    "path": "/seller_id"}]
    AvroCodec().encode("ValidationFailed", out.event)


def test_an_invalid_item_carries_every_error(bundled_validator):
    attributes = complete_hairband()
    del attributes["brand"], attributes["item_name"]
    [out] = handle_change(event(attributes), validator=bundled_validator, default_seller_id=None)
    assert (out.topic, out.key) == ("listing.validation.failed", f"A1SELLER|{US}|SKU-1")
    assert [e["path"] for e in out.event["errors"]] == ["/attributes/brand", "/attributes/item_name"]


def test_categories_and_deletes_go_out_as_ready(bundled_validator):
    [category] = handle_change(event({}, item_type="category", reference="CAT-1"), validator=bundled_validator,
                               default_seller_id=None)
    [delete] = handle_change(event({}, operation="delete", product_type=None), validator=bundled_validator,
                             default_seller_id=None)
    assert category.schema == delete.schema == "ListingReady"
    assert delete.event["operation"] == "delete"


def test_the_content_hash_ignores_key_order_and_whitespace(bundled_validator):
    attributes = complete_hairband()
    shuffled = json.dumps(dict(reversed(attributes.items())), indent=2)
    [a] = handle_change(event(attributes), validator=bundled_validator, default_seller_id=None)
    [b] = handle_change(event(attributes_json=shuffled), validator=bundled_validator, default_seller_id=None)
    assert a.event["content_hash"] == b.event["content_hash"]
    attributes["list_price"][0]["value"] = 21.99
    [c] = handle_change(event(attributes), validator=bundled_validator, default_seller_id=None)
    assert c.event["content_hash"] != a.event["content_hash"]
    assert content_hash("upsert", "HAIRBAND", "LISTING", {}) != content_hash("upsert", "HAIRBAND", "LISTING_OFFER_ONLY", {})


def test_the_publisher_computes_the_hash_the_validator_stamps(bundled_validator):
    # `publish --changed-only` compares a file's items with stored hashes of ListingReady events:
    # the file's own form (any key order, spacing) must hash to what the validator sends.
    from catalog_sync.publisher import change_hash
    from catalog_sync.runtime.contract import parse_change

    attributes = complete_hairband()
    reordered = json.loads(json.dumps(dict(reversed(list(attributes.items())))))
    for operation in ("upsert", "delete"):
        fields, errors = parse_change({"reference": "SKU-1", "item_type": "product", "operation": operation,
                                       "seller_id": "A1SELLER", "marketplace_id": US, "product_type": "HAIRBAND",
                                       "attributes": reordered})
        assert errors == []
        [out] = handle_change(event(attributes, operation=operation), validator=bundled_validator,
                              default_seller_id=None)
        assert out.schema == "ListingReady"
        assert change_hash(fields) == out.event["content_hash"]
