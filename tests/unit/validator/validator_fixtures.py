"""Helpers for the validator's unit tests: small schemas and items written here, in Amazon's shape."""

from __future__ import annotations

import json

US = "ATVPDKIKX0DER"
DE = "A1PA6795UKMFR9"
META = "https://schemas.amazon.com/selling-partners/definitions/product-types/meta-schema/v1"


def text_attribute(max_length=None, max_bytes=None, min_bytes=None, max_unique=1, selectors=("marketplace_id", "language_tag")):
    value = {"type": "string", "editable": True, "hidden": False}
    if max_length is not None:
        value["maxLength"] = max_length
    if max_bytes is not None:
        value["maxUtf8ByteLength"] = max_bytes
    if min_bytes is not None:
        value["minUtf8ByteLength"] = min_bytes
    node = {
        "type": "array", "minItems": 1, "minUniqueItems": 1, "maxUniqueItems": max_unique,
        "items": {"type": "object", "required": ["value"], "additionalProperties": False,
                  "properties": {"value": value, "language_tag": {"$ref": "#/$defs/language_tag"},
                                 "marketplace_id": {"$ref": "#/$defs/marketplace_id"}}},
    }
    if selectors is not None:
        node["selectors"] = list(selectors)
    return node


def schema(properties: dict, required=(), all_of=()) -> dict:
    return {
        "$schema": META,
        "$id": "https://schemas.amazon.com/selling-partners/definitions/product-types/schema/v1/TEST",
        "$defs": {
            "marketplace_id": {"type": "string", "editable": False, "hidden": True, "default": US},
            "language_tag": {"type": "string", "editable": False, "hidden": True, "default": "en_US"},
        },
        "type": "object",
        "required": list(required),
        "properties": properties,
        "additionalProperties": False,
        **({"allOf": list(all_of)} if all_of else {}),
    }


def text(value, language="en_US", marketplace=US):
    return [{"value": value, "language_tag": language, "marketplace_id": marketplace}]


def change(attributes: dict | None = None, **fields) -> dict:
    base = {"reference": "SKU-1", "item_type": "product", "operation": "upsert", "seller_id": "A1SELLER",
            "marketplace_id": US, "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
            "attributes_json": json.dumps(attributes or {}), "changed_at": None}
    base.update(fields)
    return base


def complete_hairband(marketplace: str = US) -> dict:
    """A complete, valid standalone HAIRBAND for the bundled sample schema."""
    mp = marketplace

    def value(v):
        return [{"value": v, "marketplace_id": mp}]

    return {
        "item_name": text("Maple & Rye Satin Headband, Blush", marketplace=mp),
        "brand": text("Maple & Rye", marketplace=mp),
        "externally_assigned_product_identifier": [{"type": "ean", "value": "4006381333931", "marketplace_id": mp}],
        "item_type_keyword": value("hair-bands"),
        "bullet_point": [{"value": f"Feature {i}", "language_tag": "en_US", "marketplace_id": mp} for i in range(3)],
        "product_description": text("A padded satin headband.", marketplace=mp),
        "country_of_origin": value("CN"),
        "supplier_declared_dg_hz_regulation": value("not_applicable"),
        "material": text("Satin", marketplace=mp),
        "condition_type": value("new_new"),
        "list_price": [{"currency": "USD", "value": 19.99, "marketplace_id": mp}],
        "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": mp,
                               "our_price": [{"schedule": [{"value_with_tax": 14.99}]}]}],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 25}],
        "main_product_image_locator": [{"media_location": "https://example.com/hb.jpg", "marketplace_id": mp}],
        "merchant_release_date": value("2026-11-27"),
    }
