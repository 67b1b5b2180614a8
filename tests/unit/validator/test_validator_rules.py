"""Rules beyond the schema: barcodes, SKUs, marketplaces, variants."""

from __future__ import annotations

import orjson
import pytest
from validator_fixtures import DE, US, text

from catalog_sync.validator.identifiers import gs1_check_digit, identifier_problem
from catalog_sync.validator.rules import (
    identifier_issues,
    marketplace_issues,
    reference_issues,
    variant_issues,
)


@pytest.mark.parametrize(("kind", "value"), [
    ("ean", "4006381333931"), ("ean", "96385074"), ("upc", "036000291452"), ("upc", "012345678905"),
    ("gtin", "00012345600012"), ("gtin", "4006381333931"), ("GTIN", "036000291452"),
])
def test_valid_identifiers(kind, value):
    assert identifier_problem(kind, value) is None


@pytest.mark.parametrize(("kind", "value", "code"), [
    ("ean", "4006381333932", "gtin.check_digit"),
    ("upc", "036000291453", "gtin.check_digit"),
    ("gtin", "00012345600013", "gtin.check_digit"),
    ("upc", "4006381333931", "gtin.length"),  # an EAN-13 is not a UPC
    ("ean", "12345", "gtin.length"),
    ("ean", "40063813339A1", "gtin.digits"),
    ("upc", "０３６０００２９１４５２", "gtin.digits"),  # full-width digits are not GS1 digits
])
def test_invalid_identifiers(kind, value, code):
    assert identifier_problem(kind, value)[0] == code


def test_identifier_types_this_rule_does_not_know_are_left_to_the_schema():
    assert identifier_problem("isbn", "123") is None


def test_check_digit_arithmetic():
    assert gs1_check_digit("400638133393") == 1
    assert gs1_check_digit("03600029145") == 2


def test_identifier_issues_point_at_the_value():
    attributes = {"externally_assigned_product_identifier": [
        {"type": "ean", "value": "4006381333931"}, {"type": "upc", "value": "036000291453"}]}
    [issue] = identifier_issues(attributes)
    assert issue.code == "gtin.check_digit"
    assert issue.path == "/attributes/externally_assigned_product_identifier/1/value"
    assert "UPC '036000291453'" in issue.message and "check digit 3" in issue.message and "give 2" in issue.message


def test_sku_length_and_control_characters():
    assert reference_issues("HB-1001", "product") == []
    assert reference_issues("X" * 40, "variant") == []
    [long] = reference_issues("X" * 41, "product")
    assert (long.code, long.path) == ("sku.too_long", "/reference")
    assert "41 characters" in long.message and "at most 40" in long.message
    [control] = reference_issues("HB\t1001", "product")
    assert control.code == "sku.control_character" and "U+0009" in control.message
    # Category codes are not SKUs: no length limit, but still no control characters.
    assert reference_issues("C" * 60, "category") == []
    assert [i.code for i in reference_issues("CAT\x00", "category")] == ["sku.control_character"]


def test_every_marketplace_inside_the_attributes_must_be_the_events():
    attributes = {
        "item_name": text("Headband") + text("Haarband", language="de_DE", marketplace=DE),
        "purchasable_offer": [{"marketplace_id": US, "our_price": [{"schedule": [{"value_with_tax": 1}],
                                                                    "marketplace_id": DE}]}],
        "brand": [{"value": "Maple"}],  # no marketplace_id: Amazon applies the request's
    }
    found = marketplace_issues(attributes, US)
    assert [(i.code, i.path) for i in found] == [
        ("marketplace.mismatch", "/attributes/item_name/1/marketplace_id"),
        ("marketplace.mismatch", "/attributes/purchasable_offer/0/our_price/0/marketplace_id"),
    ]
    assert DE in found[0].message and US in found[0].message
    assert marketplace_issues({"item_name": text("Headband")}, US) == []


@pytest.mark.parametrize("template", [
    '{"item_name":[{"value":"x","marketplace_id":"<US>"}],"brand":[{"value":"marketplace_id"}]}',
    '{"item_name":[{"value":"x","marketplace_id":"<DE>"}]}',
    '{"item_name": [{"value": "x", "marketplace_id": "<DE>"}]}',  # not compact
    '{"item_name":[{"value":"x","marketplace_id" :"<DE>"}]}',
    '{"item_name":[{"value":"x","\\u006darketplace_id":"<DE>"}]}',  # an escaped key
    '{"item_name":[{"value":"x","marketplace_id":null}]}',
    '{"item_name":[{"value":"x","marketplace_id":"<DE>"}],"a\\"marketplace_id":"<US>"}',
    '{"item_name":[{"marketplace_id":"<DE>","marketplace_id":"<US>"}]}',  # duplicate key: the last wins
])
def test_the_json_text_shortcut_finds_what_the_walk_finds(template):
    """The marketplace check first compares two substring counts in the attributes' JSON text;
    whatever the text looks like, the result is the walk's."""
    raw = template.replace("<US>", US).replace("<DE>", DE)
    attributes = orjson.loads(raw)
    assert marketplace_issues(attributes, US, raw) == marketplace_issues(attributes, US)


KNOWN = {"parentage_level", "child_parent_sku_relationship", "variation_theme", "color", "size", "style"}


def variant(**attributes):
    base = {"parentage_level": [{"value": "child"}],
            "child_parent_sku_relationship": [{"child_relationship_type": "variation", "parent_sku": "HB-1"}],
            "variation_theme": [{"name": "SIZE_NAME/COLOR_NAME"}], "size": text("M"), "color": text("Red")}
    base.update(attributes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_complete_variant_passes():
    assert variant_issues("HB-1-RED-M", "HB-1", variant(), KNOWN, set()) == []


def test_a_variant_names_its_parent():
    assert [i.path for i in variant_issues("HB-1-RED", None, variant(), KNOWN, set())] == ["/parent_reference"]
    [itself] = variant_issues("HB-1", "HB-1", variant(), KNOWN, set())
    assert "itself" in itself.message


def test_a_variant_carries_the_relationship_attributes():
    found = variant_issues("HB-1-RED", "HB-1", variant(parentage_level=[{"value": "parent"}],
                                                      child_parent_sku_relationship=[{"parent_sku": "HB-9"}],
                                                      color=None), KNOWN, set())
    assert [(i.code, i.path) for i in found] == [
        ("variant.parentage_level", "/attributes/parentage_level/0/value"),
        ("variant.relationship", "/attributes/child_parent_sku_relationship/0/parent_sku"),
        ("variant.theme_attribute", "/attributes/color"),
    ]
    assert "'HB-9'" in found[1].message and "'HB-1'" in found[1].message
    assert "SIZE_NAME/COLOR_NAME" in found[2].message


def test_missing_relationship_attributes_are_not_reported_twice():
    attributes = variant(parentage_level=None, variation_theme=None)
    found = variant_issues("HB-1-RED", "HB-1", attributes, KNOWN, {"/attributes/variation_theme"})
    assert [i.path for i in found] == ["/attributes/parentage_level"]


def test_only_attributes_the_product_type_defines_are_demanded():
    assert variant_issues("HB-1-RED", "HB-1", {}, set(), set()) == []
