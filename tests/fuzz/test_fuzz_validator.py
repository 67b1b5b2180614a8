"""The validator's handler on CatalogItemChanged events of any content (as the codec hands them
over): attributes_json of any shape — not JSON, not an object, deep, huge, wrong types under
real attribute names — references with control characters or megabytes. Every event gets exactly
one answer, ListingReady or ValidationFailed with clear errors, and that answer encodes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.events import new_header
from catalog_sync.validator.handler import handle_change
from catalog_sync.validator.schema_sources import (
    DirectorySource,
    ProductTypeSchemas,
    bundled_product_types_dir,
)
from catalog_sync.validator.validation import ItemValidator

CODEC = AvroCodec()
VALIDATOR = ItemValidator(ProductTypeSchemas([DirectorySource(bundled_product_types_dir())]))
HAIRBAND_ATTRIBUTES = sorted(VALIDATOR.schemas.get("HAIRBAND", "ATVPDKIKX0DER", "LISTING").compiled.attribute_names)
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=12)
# Attribute-shaped garbage: real attribute names (and digits, "²", "/", "~") with values of any shape.
attribute_names = st.sampled_from(HAIRBAND_ATTRIBUTES) | st.sampled_from(["0", "10", "²", "a/b", "~1", "", " "]) | st.text(max_size=8)
attribute_entries = st.dictionaries(st.sampled_from(["value", "marketplace_id", "language_tag", "type", "name", "parent_sku"])
                                    | st.text(max_size=5), json_values | st.sampled_from(["ATVPDKIKX0DER", "A1PA6795UKMFR9", "child", "ean", "4006381333931"]),
                                    max_size=4)
attributes = st.dictionaries(attribute_names, st.lists(attribute_entries, max_size=3) | json_values, max_size=6)


def nested(depth: int, opener: str = "{\"a\":", closer: str = "}") -> str:
    return opener * depth + "1" + closer * depth


attributes_json = st.one_of(
    attributes.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.sampled_from(["{", "null", "[]", "\"text\"", "{\"a\":1}}", "NaN", "1e999", "{\"a\":NaN}",
                     nested(300), nested(1000), nested(20_000), nested(500, "[", "]"),
                     "{\"item_name\":" + nested(400, "[", "]") + "}",
                     "{\"item_name\":[" + nested(900) + "]}",
                     json.dumps({"item_name": [{"value": "x" * 3_000_000}]})]),
)
references = st.text(min_size=1, max_size=60) | st.sampled_from(["R" * 100_000, "HB\x00\x1f\x7f", "\u2028", " "])


@st.composite
def changes(draw) -> dict:
    event = {
        # Drawn, not from new_header: ids from the `random` module inside a strategy would not replay.
        "event_id": str(draw(st.uuids(version=4))),
        "event_time": datetime(2026, 1, 1, 12, tzinfo=UTC),
        "run_id": draw(st.none() | st.just("run-1")),
        "mode": draw(st.sampled_from(["test", "preview", "production"])),
        "reference": draw(references),
        "item_type": draw(st.sampled_from(["category", "product", "variant"])),
        "operation": draw(st.sampled_from(["upsert", "delete"])),
        "seller_id": draw(st.none() | st.text(max_size=12)),
        "marketplace_id": draw(st.sampled_from(["ATVPDKIKX0DER", "A1PA6795UKMFR9", ""]) | st.text(max_size=12)),
        "product_type": draw(st.none() | st.sampled_from(["HAIRBAND", "BACKPACK", "GARDEN_HOSE", "", "../etc/passwd"])
                             | st.text(max_size=12)),
        "requirements": draw(st.sampled_from(["LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY"])),
        "parent_reference": draw(st.none() | references),
        "attributes_json": draw(attributes_json),
        "changed_at": draw(st.none() | st.just(datetime(2026, 1, 1, tzinfo=UTC))),
    }
    # What the worker sees: the event after a trip through Avro.
    return CODEC.decode(CODEC.encode("CatalogItemChanged", event))[1]


def answer_of(change: dict, default_seller: str | None = "A3DEFAULT"):
    emissions = handle_change(change, validator=VALIDATOR, default_seller_id=default_seller)
    assert len(emissions) == 1, "exactly one answer per change"
    emission = emissions[0]
    CODEC.decode(CODEC.encode(emission.schema, emission.event))  # the worker can produce it
    if emission.schema == "ValidationFailed":
        assert emission.event["errors"], "rejected without a reason"
        for error in emission.event["errors"]:
            assert error["code"] and error["message"] and error["path"].startswith("/")
            assert len(error["message"]) < 1_000, "a message quotes a whole value"
    else:
        assert emission.schema == "ListingReady"
    return emission


@FAST
@given(changes())
def test_any_change_gets_one_encodable_answer(change):
    answer_of(change)


@FAST
@given(attributes_json)
def test_attributes_of_any_shape_on_a_known_product_type(raw):
    change = CODEC.decode(CODEC.encode("CatalogItemChanged", {
        **new_header("run-1"), "mode": "production", "reference": "HB-1", "item_type": "variant",
        "operation": "upsert", "seller_id": "A3SELLER", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
        "requirements": "LISTING", "parent_reference": "HB-0", "attributes_json": raw, "changed_at": None}))[1]
    emission = answer_of(change)
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if raw and not isinstance(parsed, dict):  # "" is the empty attributes (the Avro default is "{}")
        codes = {e["code"] for e in emission.event["errors"]}
        assert codes & {"attributes.not_json", "attributes.not_object"}, codes


def test_attributes_nested_beyond_reason_are_a_validation_error():
    for raw in (nested(300), nested(1000), "{\"item_name\":[" + nested(900) + "]}"):
        for item_type, operation in (("product", "upsert"), ("category", "upsert"), ("product", "delete")):
            change = {**new_header(None), "event_id": "e", "mode": "production", "reference": "HB-1",
                      "item_type": item_type, "operation": operation, "marketplace_id": "ATVPDKIKX0DER",
                      "product_type": "HAIRBAND", "requirements": "LISTING", "attributes_json": raw}
            emission = answer_of(change)
            assert emission.schema == "ValidationFailed"
            assert [e["code"] for e in emission.event["errors"]] == ["attributes.too_deep"]


def test_unicode_digits_in_attribute_names_do_not_break_the_error_order():
    change = {**new_header(None), "mode": "production", "reference": "HB-1", "item_type": "product",
              "operation": "upsert", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
              "requirements": "LISTING",
              "attributes_json": json.dumps({"²": [{"value": 1}], "١": 1, "10": 2, "9": 3})}
    emission = answer_of(change)
    assert emission.schema == "ValidationFailed"
