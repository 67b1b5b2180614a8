"""JSON Schema 2019-09 through jsonschema-rs: every error, once, with a path and a message a
catalog manager can act on."""

from __future__ import annotations

import pytest
from validator_fixtures import US, schema, text, text_attribute

from catalog_sync.validator.issues import finalize
from catalog_sync.validator.product_type import CompiledProductType

PRICE = {"type": "array", "items": {"type": "object", "required": ["currency", "value"], "additionalProperties": False,
                                    "properties": {"currency": {"type": "string", "enum": ["USD", "EUR"]},
                                                   "value": {"type": "number", "minimum": 0, "multipleOf": 0.01},
                                                   "marketplace_id": {"type": "string"}}}}
LEVEL = {"type": "array", "items": {"type": "object", "required": ["value"],
                                    "properties": {"value": {"type": "string", "enum": ["child", "parent"]}}}}
DATE = {"type": "array", "items": {"type": "object", "properties": {
    "value": {"type": "string", "oneOf": [{"format": "date"}, {"format": "date-time"}]}}}}
IS_PARENT = {"required": ["parentage_level"], "properties": {"parentage_level": {"contains": {
    "required": ["value"], "properties": {"value": {"enum": ["parent"]}}}}}}

PRODUCT = CompiledProductType("TEST", schema(
    {"item_name": text_attribute(max_length=10), "brand": text_attribute(), "list_price": PRICE,
     "parentage_level": LEVEL, "variation_theme": text_attribute(), "condition_type": text_attribute(),
     "release_date": DATE},
    required=["item_name", "brand"],
    all_of=[
        {"if": IS_PARENT, "then": {"required": ["variation_theme"]}},
        {"if": {"not": IS_PARENT}, "then": {"required": ["condition_type", "list_price"]}},
        # The same requirement stated twice, as Amazon's schemas do.
        {"if": {"not": IS_PARENT}, "then": {"required": ["condition_type"]}},
    ],
))


def issues(attributes):
    return finalize(PRODUCT.validate(attributes))


def complete(**changes):
    attributes = {"item_name": text("Headband"), "brand": text("Maple"), "condition_type": text("new_new"),
                  "list_price": [{"currency": "USD", "value": 19.99, "marketplace_id": US}]}
    attributes.update(changes)
    return {k: v for k, v in attributes.items() if v is not None}


def test_a_complete_item_is_valid():
    assert issues(complete()) == []


@pytest.mark.parametrize("price", [19.99, 0.07, 0.3, 5.1, 99.99, 1234.56, 10, 0])
def test_prices_that_are_multiples_of_a_cent_are_valid(price):
    assert issues(complete(list_price=[{"currency": "USD", "value": price}])) == []


def test_a_fraction_of_a_cent_is_reported_with_value_and_limit():
    [issue] = issues(complete(list_price=[{"currency": "USD", "value": 19.999}]))
    assert issue.code == "schema.multipleOf"
    assert issue.path == "/attributes/list_price/0/value"
    assert "19.999" in issue.message and "0.01" in issue.message


def test_every_error_is_reported_not_only_the_first():
    found = issues({"item_name": text("far too long a title"),
                    "list_price": [{"currency": "GBP", "value": -1, "extra": True}], "colour": text("red")})
    assert [(i.code, i.path) for i in found] == [
        ("schema.required", "/attributes/brand"),
        ("schema.additionalProperties", "/attributes/colour"),
        ("schema.required", "/attributes/condition_type"),
        ("schema.maxLength", "/attributes/item_name/0/value"),
        ("schema.enum", "/attributes/list_price/0/currency"),
        ("schema.additionalProperties", "/attributes/list_price/0/extra"),
        ("schema.minimum", "/attributes/list_price/0/value"),
    ]


def test_missing_required_attributes_point_at_the_missing_name():
    [brand] = [i for i in issues(complete(brand=None)) if i.code == "schema.required"]
    assert brand.path == "/attributes/brand"
    assert brand.message == "'brand' is required but not supplied"


def test_a_missing_property_inside_a_value_names_where():
    [issue] = issues(complete(list_price=[{"value": 5}]))
    assert issue.path == "/attributes/list_price/0/currency"
    assert "list_price[0]" in issue.message


def test_conditional_requirements_follow_the_item():
    parent = complete(parentage_level=[{"value": "parent"}], condition_type=None, list_price=None)
    assert [(i.code, i.path) for i in issues(parent)] == [("schema.required", "/attributes/variation_theme")]
    child = complete(parentage_level=[{"value": "child"}], condition_type=None)
    assert [(i.code, i.path) for i in issues(child)] == [("schema.required", "/attributes/condition_type")]


def test_a_requirement_stated_by_several_conditionals_is_reported_once():
    found = issues(complete(condition_type=None))
    assert [i.path for i in found] == ["/attributes/condition_type"]


def test_formats_are_checked_and_alternatives_explained():
    assert issues(complete(release_date=[{"value": "2026-11-27"}])) == []
    assert issues(complete(release_date=[{"value": "2026-11-27T10:00:00Z"}])) == []
    [issue] = issues(complete(release_date=[{"value": "2026-13-45"}]))
    assert issue.code == "schema.oneOf"
    assert issue.path == "/attributes/release_date/0/value"
    assert "a valid date or a valid date-time" in issue.message


def test_wrong_types_say_what_was_expected():
    [issue] = issues(complete(list_price=[{"currency": "USD", "value": "19.99"}]))
    assert issue.code == "schema.type"
    assert "'19.99'" in issue.message and "expected a number" in issue.message


def test_long_enum_lists_are_shortened_in_messages():
    product = CompiledProductType("TEST", schema({"country": {"type": "string", "enum": [f"C{i}" for i in range(40)]}}))
    [issue] = product.validate({"country": "XX"})
    assert "and 28 more" in issue.message


def test_top_level_requirements_can_be_relaxed_for_partial_requirement_sets():
    found = PRODUCT.validate({"list_price": [{"currency": "USD", "value": "x"}]}, enforce_required=False)
    assert [i.code for i in found] == ["schema.type"]


def test_output_order_is_deterministic():
    attributes = {"list_price": [{"currency": "X", "value": -1}], "item_name": text("x" * 20) * 11}
    assert issues(attributes) == issues(dict(reversed(attributes.items())))
    paths = [i.path for i in issues({"item_name": text("x" * 20) * 11})]
    assert paths[:4] == ["/attributes/brand", "/attributes/condition_type", "/attributes/item_name",
                         "/attributes/item_name/0/value"]
    # Array indexes in numeric order: 9 before 10.
    assert paths.index("/attributes/item_name/9/value") + 1 == paths.index("/attributes/item_name/10/value")
