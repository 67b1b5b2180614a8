import json

from catalog_sync.runtime.contract import parse_change

PRODUCT = {
    "reference": "HB-1001", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER",
    "product_type": "HAIRBAND", "attributes": {"item_name": [{"value": "Band"}]},
    "changed_at": "2026-11-27T10:00:00Z",
}


def test_a_valid_product_gets_defaults():
    fields, errors = parse_change(PRODUCT)
    assert errors == []
    assert fields["operation"] == "upsert"
    assert fields["requirements"] == "LISTING"
    assert fields["seller_id"] is None
    assert json.loads(fields["attributes_json"]) == PRODUCT["attributes"]
    assert fields["changed_at"].isoformat() == "2026-11-27T10:00:00+00:00"


def test_every_contract_error_is_reported():
    _, errors = parse_change({"item_type": "variant", "operation": "replace", "colour": "red",
                              "changed_at": "yesterday", "attributes": []}, line_no=7)
    codes = {(e.code, e.path) for e in errors}
    assert ("contract.required", "/reference") in codes
    assert ("contract.required", "/marketplace_id") in codes
    assert ("contract.enum", "/operation") in codes
    assert ("contract.unknown_field", "/colour") in codes
    assert ("contract.time", "/changed_at") in codes
    assert ("contract.type", "/attributes") in codes
    assert all("line 7" in e.message for e in errors if e.code in ("contract.required", "contract.unknown_field"))


def test_variant_needs_a_parent_and_product_a_type():
    _, errors = parse_change({**PRODUCT, "item_type": "variant"})
    assert [e.path for e in errors] == ["/parent_reference"]
    _, errors = parse_change({k: v for k, v in PRODUCT.items() if k != "product_type"})
    assert [e.path for e in errors] == ["/product_type"]


def test_a_delete_needs_only_reference_and_marketplace():
    fields, errors = parse_change({"reference": "HB-1", "item_type": "product", "operation": "delete",
                                   "marketplace_id": "ATVPDKIKX0DER"})
    assert errors == []
    assert fields["operation"] == "delete"


def test_not_an_object():
    fields, errors = parse_change(["a"])
    assert fields is None and errors[0].code == "contract.not_object"



def test_the_content_hash_formula_is_fixed():
    # Values of the formula as the validator first shipped it: a change here would make every
    # stored hash (submitter's unchanged check, publish --changed-only) stop matching.
    from catalog_sync.runtime.contract import content_hash

    attributes = {"item_name": [{"value": "Band", "language_tag": "en_US"}], "brand": [{"value": "Acme"}]}
    assert content_hash("upsert", "HAIRBAND", "LISTING", attributes) == \
        "4df5694e8f23363f909e7537cd0b2ba6893e2963ca891822bd993dd634b92762"
    # A listing of several KB (hashed piece by piece) gives the one-shot SHA-256 of the same JSON.
    long = {"bullet_point": [{"value": f"Soft satin band number {i}, gentle on hair", "language_tag": "en_US"}
                             for i in range(120)], "brand": [{"value": "Acme"}]}
    assert content_hash("upsert", "HAIRBAND", "LISTING", long) == \
        "1b2404f9da5f69cc85c107ac6a027f6b67352570fd95fd00c0ffa4d681d3a2f2"
    # A delete sends only the SKU: its hash ignores everything else.
    assert content_hash("delete", "X", "LISTING_OFFER_ONLY", {"a": 1}) == content_hash("delete", None, "LISTING", {}) == \
        "782c5bb77f186f3a6602165de1b69abf7482baff68887e307f1085e243cac688"
