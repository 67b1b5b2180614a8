"""Amazon's vocabulary: maxUniqueItems with selectors, maxUtf8ByteLength, minUtf8ByteLength,
informational keywords ignored, and the $schema URI never fetched."""

from __future__ import annotations

import pytest
from validator_fixtures import DE, US, schema, text, text_attribute

from catalog_sync.validator.product_type import CompiledProductType


def codes(issues):
    return sorted((i.code, i.path) for i in issues)


def compiled(properties, **kwargs) -> CompiledProductType:
    return CompiledProductType("TEST", schema(properties, **kwargs))


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a" * 12, True),  # 12 bytes
        ("é" * 6, True),  # 2 bytes each: 12
        ("é" * 7, False),  # 14 bytes in 7 characters: maxLength alone would pass it
        ("日本" * 2, True),  # 3 bytes each: 12
        ("日本語テスト", False),  # 18 bytes
        ("🎀" * 3, True),  # 4 bytes each: 12
        ("🎀" * 3 + "a", False),
    ],
)
def test_max_utf8_byte_length_counts_utf8_bytes_not_characters(value, valid):
    product = compiled({"item_name": text_attribute(max_length=100, max_bytes=12)})
    issues = product.validate({"item_name": text(value)})
    assert (issues == []) is valid
    if not valid:
        [issue] = issues
        assert issue.code == "schema.maxUtf8ByteLength"
        assert issue.path == "/attributes/item_name/0/value"
        assert "at most 12 bytes" in issue.message and f"{len(value.encode())} bytes" in issue.message


def test_min_utf8_byte_length():
    product = compiled({"brand": text_attribute(min_bytes=3)})
    assert product.validate({"brand": text("ü")}) != []  # one character, 2 bytes
    assert product.validate({"brand": text("üa")}) == []  # 3 bytes
    [issue] = product.validate({"brand": text("ab")})
    assert (issue.code, issue.path) == ("schema.minUtf8ByteLength", "/attributes/brand/0/value")


def test_max_unique_items_counts_per_selector_combination():
    product = compiled({"bullet_point": text_attribute(max_unique=2)})
    two_languages = [
        {"value": "one", "language_tag": "en_US", "marketplace_id": US},
        {"value": "two", "language_tag": "en_US", "marketplace_id": US},
        {"value": "eins", "language_tag": "de_DE", "marketplace_id": US},
        {"value": "zwei", "language_tag": "de_DE", "marketplace_id": US},
    ]
    assert product.validate({"bullet_point": two_languages}) == []
    three_english = [*two_languages, {"value": "three", "language_tag": "en_US", "marketplace_id": US}]
    [issue] = product.validate({"bullet_point": three_english})
    assert (issue.code, issue.path) == ("schema.maxUniqueItems", "/attributes/bullet_point")
    assert "3 values" in issue.message and "'en_US'" in issue.message and "at most 2" in issue.message


def test_max_unique_items_reports_each_overfull_combination_once():
    product = compiled({"item_name": text_attribute(max_unique=1)})
    names = text("a") + text("b") + text("c", marketplace=DE) + text("d", marketplace=DE) + text("e", language="de_DE")
    issues = product.validate({"item_name": names})
    assert [i.code for i in issues] == ["schema.maxUniqueItems"] * 2
    assert {US in i.message or DE in i.message for i in issues} == {True}


def test_max_unique_items_with_a_missing_selector_groups_the_items_without_it():
    product = compiled({"item_name": text_attribute(max_unique=1)})
    names = [{"value": "a", "language_tag": "en_US"}, {"value": "b", "language_tag": "en_US"}]
    [issue] = product.validate({"item_name": names})
    assert "no marketplace_id" in issue.message


def test_max_unique_items_without_selectors_compares_whole_items():
    product = compiled({"generic_keyword": text_attribute(max_unique=1, selectors=None)})
    assert product.validate({"generic_keyword": text("a") + text("b")}) == []
    [issue] = product.validate({"generic_keyword": text("a") + text("a")})
    assert issue.code == "schema.maxUniqueItems"


def test_keywords_reached_through_ref_and_all_of_are_checked():
    document = schema({"size": {"$ref": "#/$defs/size"}})
    document["$defs"]["size"] = {"type": "array", "items": {"type": "object", "properties": {
        "value": {"allOf": [{"type": "string"}, {"maxUtf8ByteLength": 4}]}}}}
    [issue] = CompiledProductType("TEST", document).validate({"size": [{"value": "XXLé"}]})
    assert issue.code == "schema.maxUtf8ByteLength"


def test_keywords_under_conditional_branches_are_listed_as_unchecked():
    product = compiled({"item_name": text_attribute()}, all_of=[
        {"if": {"required": ["item_name"]}, "then": {"properties": {"item_name": {"maxUniqueItems": 1}}}}])
    assert product.unchecked_keywords == ("#/allOf/0/then/properties/item_name/maxUniqueItems",)


def test_informational_keywords_are_ignored():
    attribute = text_attribute()
    attribute["items"]["properties"]["value"].update(
        {"enumNames": ["Red"], "$lifecycle": {"enumDeprecated": ["RED"]}, "replacedBy": ["../color"], "editable": False})
    product = compiled({"color": attribute})
    assert product.validate({"color": text("Blue")}) == []


def test_the_schema_uri_is_never_fetched():
    # Amazon's meta-schema URI does not resolve; an attempt to fetch it would fail the compile.
    document = schema({"item_name": text_attribute()})
    document["$schema"] = "https://schemas.invalid/selling-partners/meta-schema/v1"
    assert CompiledProductType("TEST", document).validate({"item_name": text("ok")}) == []


def test_amazon_keywords_and_schema_errors_are_reported_together():
    product = compiled({"item_name": text_attribute(max_length=3, max_bytes=4, max_unique=1)})
    issues = product.validate({"item_name": text("ééé") + text("abcd")})
    assert codes(issues) == [
        ("schema.maxLength", "/attributes/item_name/1/value"),
        ("schema.maxUniqueItems", "/attributes/item_name"),
        ("schema.maxUtf8ByteLength", "/attributes/item_name/0/value"),
    ]
