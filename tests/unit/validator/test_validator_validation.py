"""The validator's core over whole changes: schema provider, rules and contract fields together."""

from __future__ import annotations

import json

import pytest
from validator_fixtures import DE, US, change, complete_hairband, schema, text, text_attribute

from catalog_sync.validator.schema_sources import (
    DirectorySource,
    ProductTypeSchemas,
    bundled_product_types_dir,
)
from catalog_sync.validator.validation import ItemValidator


def found(verdict):
    return [(i.code, i.path) for i in verdict.issues]


def test_a_complete_hairband_is_valid(bundled_validator):
    verdict = bundled_validator.validate(change(complete_hairband()), seller_id="A1SELLER")
    assert verdict.issues == []


def test_the_bundled_samples_include_more_than_hairband():
    names = DirectorySource(bundled_product_types_dir()).known()
    assert "HAIRBAND" in names and len(names) >= 2


def test_every_problem_of_an_item_is_reported_once_in_order(bundled_validator):
    attributes = complete_hairband()
    attributes["item_name"] = text("Ä" * 160)  # 160 characters, 320 bytes: within maxLength, over 300 bytes
    attributes["externally_assigned_product_identifier"][0]["value"] = "4006381333932"
    attributes["bullet_point"] = [{"value": f"b{i}", "language_tag": "en_US", "marketplace_id": US} for i in range(6)]
    attributes["list_price"][0]["marketplace_id"] = DE
    del attributes["brand"]
    verdict = bundled_validator.validate(change(attributes, reference="X" * 41), seller_id=None)
    assert found(verdict) == [
        ("schema.required", "/attributes/brand"),
        ("schema.maxUniqueItems", "/attributes/bullet_point"),
        ("gtin.check_digit", "/attributes/externally_assigned_product_identifier/0/value"),
        ("schema.maxUtf8ByteLength", "/attributes/item_name/0/value"),
        ("marketplace.mismatch", "/attributes/list_price/0/marketplace_id"),
        ("sku.too_long", "/reference"),
        ("seller.missing", "/seller_id"),
    ]
    again = bundled_validator.validate(change(attributes, reference="X" * 41), seller_id=None)
    assert again.issues == verdict.issues


def test_an_unknown_product_type_is_an_error_of_the_item(bundled_validator):
    verdict = bundled_validator.validate(change({}, product_type="SPACESHIP"), seller_id="S")
    assert found(verdict) == [("product_type.unknown", "/product_type")]
    assert "SPACESHIP" in verdict.issues[0].message


def test_a_product_type_name_never_reaches_the_file_system(schema_dir, tmp_path):
    (tmp_path.parent / "SECRET.json").write_text("{}")
    validator = schema_dir()
    verdict = validator.validate(change({}, product_type="../SECRET"), seller_id="S")
    assert found(verdict) == [("product_type.unknown", "/product_type")]


@pytest.mark.parametrize(("content", "reason"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"type": "object", "properties": {"x": {"pattern": "(("}}}), "cannot be compiled"),
    (json.dumps([1, 2]), "not a JSON object"),
])
def test_an_unreadable_schema_is_an_error_of_the_item_not_a_crash(tmp_path, content, reason):
    (tmp_path / "BROKEN.json").write_text(content)
    validator = ItemValidator(ProductTypeSchemas([DirectorySource(tmp_path)]))
    verdict = validator.validate(change({}, product_type="BROKEN"), seller_id="S")
    assert found(verdict) == [("product_type.unavailable", "/product_type")]
    assert reason in verdict.issues[0].message


def test_a_schema_dropped_into_the_folder_later_is_picked_up(tmp_path):
    clock = [0.0]
    validator = ItemValidator(ProductTypeSchemas([DirectorySource(tmp_path)], clock=lambda: clock[0]))
    assert found(validator.validate(change({}, product_type="LATE"), seller_id="S")) == [
        ("product_type.unknown", "/product_type")]
    (tmp_path / "LATE.json").write_text(json.dumps(schema({"item_name": text_attribute()})))
    clock[0] += 60
    assert validator.validate(change({"item_name": text("ok")}, product_type="LATE"), seller_id="S").issues == []


def test_compiled_validators_are_reused_per_product_type(tmp_path):
    compiled = []
    (tmp_path / "ONE.json").write_text(json.dumps(schema({"item_name": text_attribute()})))
    schemas = ProductTypeSchemas([DirectorySource(tmp_path)], on_compiled=compiled.append)
    validator = ItemValidator(schemas)
    for reference in ("A", "B", "C"):
        validator.validate(change({}, reference=reference, product_type="ONE"), seller_id="S")
    validator.validate(change({}, product_type="ONE", requirements="LISTING_OFFER_ONLY"), seller_id="S")
    assert len(compiled) == 1


def test_a_category_needs_only_a_known_product_type(bundled_validator):
    category = change({"anything": "goes"}, reference="CAT-HAIR", item_type="category")
    assert bundled_validator.validate(category, seller_id="S").issues == []
    unknown = change({}, reference="CAT-X", item_type="category", product_type="NOPE")
    assert found(bundled_validator.validate(unknown, seller_id="S")) == [("product_type.unknown", "/product_type")]
    missing = change({}, reference="CAT-X", item_type="category", product_type=None)
    assert found(bundled_validator.validate(missing, seller_id="S")) == [("product_type.required", "/product_type")]


def test_a_delete_needs_only_reference_and_marketplace(bundled_validator):
    delete = change({}, operation="delete", product_type=None)
    assert bundled_validator.validate(delete, seller_id="S").issues == []
    assert found(bundled_validator.validate(delete, seller_id=None)) == [("seller.missing", "/seller_id")]


def test_a_product_without_product_type_is_reported(bundled_validator):
    assert found(bundled_validator.validate(change({}, product_type=None), seller_id="S")) == [
        ("product_type.required", "/product_type")]


def test_unreadable_attributes_are_reported(bundled_validator):
    verdict = bundled_validator.validate(change(attributes_json="[1, 2"), seller_id="S")
    assert ("attributes.not_json", "/attributes") in found(verdict)
    verdict = bundled_validator.validate(change(attributes_json="[1, 2]"), seller_id="S")
    assert ("attributes.not_object", "/attributes") in found(verdict)


def test_offer_only_updates_are_not_held_to_the_full_listing_requirements(bundled_validator):
    offer = {"purchasable_offer": complete_hairband()["purchasable_offer"],
             "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 3}]}
    assert bundled_validator.validate(change(offer, requirements="LISTING_OFFER_ONLY"), seller_id="S").issues == []
    # Values are still checked.
    offer["fulfillment_availability"][0]["quantity"] = -1
    verdict = bundled_validator.validate(change(offer, requirements="LISTING_OFFER_ONLY"), seller_id="S")
    assert found(verdict) == [("schema.minimum", "/attributes/fulfillment_availability/0/quantity")]


def test_a_requirements_specific_schema_is_preferred(tmp_path):
    (tmp_path / "ONE.json").write_text(json.dumps(schema({"item_name": text_attribute()}, required=["item_name"])))
    (tmp_path / "ONE.LISTING_OFFER_ONLY.json").write_text(json.dumps(schema({"price": {"type": "number"}},
                                                                            required=["price"])))
    validator = ItemValidator(ProductTypeSchemas([DirectorySource(tmp_path)]))
    verdict = validator.validate(change({}, product_type="ONE", requirements="LISTING_OFFER_ONLY"), seller_id="S")
    assert found(verdict) == [("schema.required", "/attributes/price")]


def test_variants_in_the_bundled_schema(bundled_validator):
    attributes = complete_hairband()
    attributes.update({
        "parentage_level": [{"value": "child", "marketplace_id": US}],
        "child_parent_sku_relationship": [{"child_relationship_type": "variation", "parent_sku": "HB-1",
                                           "marketplace_id": US}],
        "variation_theme": [{"name": "SIZE/COLOR"}],
        "color": [{"value": "Blush", "language_tag": "en_US", "marketplace_id": US}],
        "size": text("One Size"),
    })
    good = change(attributes, reference="HB-1-BLUSH", item_type="variant", parent_reference="HB-1")
    assert bundled_validator.validate(good, seller_id="S").issues == []
    del attributes["size"]
    attributes["child_parent_sku_relationship"][0]["parent_sku"] = "HB-2"
    bad = change(attributes, reference="HB-1-BLUSH", item_type="variant", parent_reference="HB-1")
    assert found(bundled_validator.validate(bad, seller_id="S")) == [
        ("variant.relationship", "/attributes/child_parent_sku_relationship/0/parent_sku"),
        ("schema.required", "/attributes/size"),  # the schema's conditional, not repeated by the rule
    ]


def test_backpack_conditional_requirement(bundled_validator):
    attributes = complete_hairband()
    attributes["item_type_keyword"] = [{"value": "backpacks", "marketplace_id": US}]
    attributes["laptop_compartment"] = [{"value": True, "marketplace_id": US}]
    verdict = bundled_validator.validate(change(attributes, product_type="BACKPACK"), seller_id="S")
    assert found(verdict) == [("schema.required", "/attributes/maximum_compatible_laptop_size")]
