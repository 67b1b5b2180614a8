"""The validator on Amazon's real product type schemas (../shared/amazon/product-types)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from catalog_sync.validator.schema_sources import DirectorySource, ProductTypeSchemas
from catalog_sync.validator.validation import ItemValidator
from tests.support.requirements import require

pytestmark = pytest.mark.shared
PRODUCT_TYPES = Path(__file__).resolve().parents[2].parent / "shared" / "amazon" / "product-types"
US = "ATVPDKIKX0DER"


def text(value):
    return [{"value": value, "language_tag": "en_US", "marketplace_id": US}]


def value(v):
    return [{"value": v, "marketplace_id": US}]


COMMON = {
    "item_name": text("Maple & Rye Knotted Satin Headband for Women, Blush Pink"),
    "brand": text("Maple & Rye"),
    "externally_assigned_product_identifier": [{"type": "ean", "value": "4006381333931", "marketplace_id": US}],
    "bullet_point": text("Soft satin over a cushioned core") + text("Non-slip grip, no headaches"),
    "product_description": text("A padded satin headband with a top knot."),
    "country_of_origin": value("CN"),
    "supplier_declared_dg_hz_regulation": value("not_applicable"),
    "condition_type": value("new_new"),
    "list_price": [{"currency": "USD", "value": 19.99, "marketplace_id": US}],
    "purchasable_offer": [{"currency": "USD", "marketplace_id": US,
                           "our_price": [{"schedule": [{"value_with_tax": 14.99}]}]}],
    "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 120}],
    "merchant_shipping_group": value("legacy-template-id"),
    "color": text("Blush Pink"),
    "number_of_items": value(1),
    "manufacturer": text("Maple & Rye Ltd"),
}
HAIRBAND = {
    **COMMON,
    "item_type_keyword": value("hair-bands"),
    "fabric_type": text("100% Polyester"),
    "unit_count": [{"type": {"value": "个", "language_tag": "en_US"}, "value": 1, "marketplace_id": US}],
    "age_range_description": text("Adult"),
    "target_gender": value("female"),
    "generic_keyword": text("headband knotted satin"),
    "lifestyle": text("Casual"),
    "target_audience_keyword": text("women"),
}
FOOD_MILL = {
    **COMMON,
    "item_name": text("Stainless Steel Food Mill with 3 Grinding Discs"),
    "externally_assigned_product_identifier": [{"type": "upc", "value": "036000291452", "marketplace_id": US}],
    "item_type_keyword": value("food-mills"),
    "merchant_shipping_group": value("legacy-template-id"),
    "care_instructions": text("Dishwasher Safe"),
    "included_components": text("3 grinding discs"),
    "material": text("Stainless Steel"),
    "model_name": text("Classic Mill"),
    "model_number": value("FM-300"),
    "size": text("2 Quart"),
}


@pytest.fixture(scope="module")
def validator() -> ItemValidator:
    require(PRODUCT_TYPES.is_dir(), f"Amazon's real product type schemas are not in {PRODUCT_TYPES}")
    return ItemValidator(ProductTypeSchemas([DirectorySource(PRODUCT_TYPES)]))


def validate(validator, attributes, product_type="HAIRBAND", **fields):
    change = {"reference": "HB-1001", "item_type": "product", "operation": "upsert", "marketplace_id": US,
              "product_type": product_type, "requirements": "LISTING", "parent_reference": None,
              "attributes_json": json.dumps(attributes)}
    change.update(fields)
    return [(i.code, i.path) for i in validator.validate(change, seller_id="A1SELLER").issues]


def test_a_complete_hairband_is_valid(validator):
    assert validate(validator, HAIRBAND) == []


def test_a_complete_food_mill_is_valid(validator):
    merchant_group = json.loads((PRODUCT_TYPES / "MANUAL_FOOD_MILL_GRINDER.json").read_text())["properties"][
        "merchant_shipping_group"]["items"]["properties"]["value"].get("enum")
    attributes = copy.deepcopy(FOOD_MILL)
    if merchant_group:
        attributes["merchant_shipping_group"] = value(merchant_group[0])
    assert validate(validator, attributes, "MANUAL_FOOD_MILL_GRINDER") == []


def test_real_schema_errors_all_at_once(validator):
    attributes = copy.deepcopy(HAIRBAND)
    del attributes["brand"]
    attributes["item_name"] = attributes["item_name"] * 2  # maxUniqueItems 1 per marketplace and language
    attributes["lifestyle"] = text("日" * 700)  # 2,100 bytes against maxUtf8ByteLength 2000
    attributes["condition_type"] = value("used_mint")
    attributes["list_price"][0]["value"] = 19.999
    attributes["externally_assigned_product_identifier"][0]["value"] = "4006381333932"
    attributes["fulfillment_availability"] = [{"fulfillment_channel_code": "DEFAULT", "restock_date": "2026-02-30"}]
    attributes["colour"] = text("pink")
    assert validate(validator, attributes) == [
        ("schema.required", "/attributes/brand"),
        ("schema.additionalProperties", "/attributes/colour"),
        ("schema.enum", "/attributes/condition_type/0/value"),
        ("gtin.check_digit", "/attributes/externally_assigned_product_identifier/0/value"),
        # Amazon's conditional: seller-fulfilled stock states a quantity or "always available".
        ("schema.required", "/attributes/fulfillment_availability/0/is_inventory_available"),
        ("schema.required", "/attributes/fulfillment_availability/0/quantity"),
        ("schema.oneOf", "/attributes/fulfillment_availability/0/restock_date"),
        ("schema.maxUniqueItems", "/attributes/item_name"),
        ("schema.maxUtf8ByteLength", "/attributes/lifestyle/0/value"),
        ("schema.multipleOf", "/attributes/list_price/0/value"),
    ]


def test_conditional_identifier_requirement(validator):
    attributes = copy.deepcopy(HAIRBAND)
    del attributes["externally_assigned_product_identifier"]
    assert ("schema.required", "/attributes/externally_assigned_product_identifier") in validate(validator, attributes)
    attributes["supplier_declared_has_product_identifier_exemption"] = value(True)
    assert validate(validator, attributes) == []


def test_multi_byte_model_number_on_the_food_mill(validator):
    attributes = copy.deepcopy(FOOD_MILL)
    attributes["model_number"] = value("型番" * 7)  # 14 characters (maxLength 40) but 42 bytes
    assert ("schema.maxUtf8ByteLength", "/attributes/model_number/0/value") in validate(
        validator, attributes, "MANUAL_FOOD_MILL_GRINDER")


def test_a_variant_on_the_real_schema(validator):
    attributes = copy.deepcopy(HAIRBAND)
    attributes.update({
        "parentage_level": value("child"),
        "child_parent_sku_relationship": [{"child_relationship_type": "variation", "parent_sku": "HB-1000",
                                           "marketplace_id": US}],
        "variation_theme": [{"name": "COLOR_NAME"}],
    })
    assert validate(validator, attributes, item_type="variant", parent_reference="HB-1000") == []
    del attributes["color"]
    # The real schema requires the theme's attribute itself: reported once, by the schema.
    assert validate(validator, attributes, item_type="variant", parent_reference="HB-1000") == [
        ("schema.required", "/attributes/color")]
    attributes["child_parent_sku_relationship"][0]["parent_sku"] = "HB-9999"
    assert ("variant.relationship", "/attributes/child_parent_sku_relationship/0/parent_sku") in validate(
        validator, attributes, item_type="variant", parent_reference="HB-1000")
