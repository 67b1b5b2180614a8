"""Amazon's Listings Items sandbox: static. It validates nothing and stores nothing; it answers the
`x-amzn-api-sandbox` examples of Amazon's model (listingsItems_2021-08-01.json) to requests that
match their parameters, so a client can practise credentials, request shapes and answer parsing.

Matching, as the model states the patterns: a pattern names some parameters with a value; a
request matches when it has those values (arrays compare as sets of values), whatever its other
parameters. A parameter named without a value (the model's `"body": {}`) matches any value. Of
the patterns a request matches, the one naming the most values answers (BadSKU's 400 beats the
catch-all ACCEPTED; the VALIDATION_PREVIEW ones beat both). No pattern: 400 "Could not match
input arguments", as Amazon's sandboxes answer. tests/unit/amazon_emulator compares these
patterns with the model when ../shared is present."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

from catalog_sync.amazon_emulator.listings import Answer, errors

US = "ATVPDKIKX0DER"
CA = "A2EUQ1WTGCTBG2"
ACCEPTED = {"sku": "GM-ZDPI-9B4E", "status": "ACCEPTED", "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003",
            "issues": []}
BAD_REQUEST = {"errors": [{"code": "BAD_REQUEST", "message": "Invalid input", "details": "Invalid input"}]}
PREVIEW = {"marketplaceIds": [US], "includedData": ["identifiers", "issues"], "mode": "VALIDATION_PREVIEW"}
VALID = {"sku": "VALIDATION_VALID", "status": "VALID", "submissionId": "1edc94ea-a3d7-210b-42bc-0ec72c1384762",
         "identifiers": [{"marketplaceId": US, "asin": "B07N4M94X4"}], "issues": []}


def _invalid(issues: list[dict]) -> dict:
    return {"sku": "VALIDATION_INVALID", "status": "INVALID", "submissionId": "a1c562c2-1695-11ee-be56-0242ac120002",
            "identifiers": [], "issues": issues}


def _enforced(action: str, exemption: dict) -> dict:
    return {"enforcements": {"actions": [{"action": action}], "exemption": exemption}}


NOT_EXEMPT = {"status": "NOT_EXEMPT"}
PUT_INVALID = _invalid([
    {"code": "90220", "message": "'condition_type' is required but not supplied.", "severity": "ERROR",
     "attributeNames": ["condition_type"], "categories": ["MISSING_ATTRIBUTE"],
     **_enforced("LISTING_SUPPRESSED", NOT_EXEMPT)},
    {"code": "90000900", "message": "The attributes are invalid.", "severity": "ERROR",
     "attributeNames": ["fake_attribute"], "categories": []},
])
PATCH_INVALID = _invalid([
    {"code": "90000900", "message": "The attributes are invalid.", "severity": "ERROR",
     "attributeNames": ["fake_attribute"], "categories": ["INVALID_ATTRIBUTE"],
     **_enforced("ATTRIBUTE_SUPPRESSED", NOT_EXEMPT)},
])


def _luggage_summary(marketplace: str, status: list[str], created: str, updated: str) -> dict:
    return {"marketplaceId": marketplace, "asin": "B071VG5N9D", "productType": "LUGGAGE", "conditionType": "new_new",
            "status": status, "itemName": "Hardside Carry-On Spinner Suitcase Luggage", "createdDate": created,
            "lastUpdatedDate": updated,
            "mainImage": {"link": "https://www.example.com/luggage.png", "height": 500, "width": 500}}


def _offer(marketplace: str, currency: str, amount: str) -> dict:
    return {"marketplaceId": marketplace, "offerType": "B2C", "price": {"currencyCode": currency, "amount": amount},
            "audience": {"value": "ALL", "displayName": "Sell on Amazon"}}


ITEM = {
    "sku": "GM-ZDPI-9B4E",
    "summaries": [_luggage_summary(US, ["BUYABLE"], "2021-02-01T00:00:00Z", "2021-03-01T00:00:00Z"),
                  _luggage_summary(CA, [], "2021-02-02T01:00:00Z", "2021-03-05T00:00:00Z")],
    "offers": [_offer(US, "USD", "100.00"), _offer(CA, "CAD", "130.00")],
    "fulfillmentAvailability": [{"fulfillmentChannelCode": "DEFAULT", "quantity": 100}],
    "issues": [
        {"code": "90220", "message": "'size' is required but not supplied.", "severity": "ERROR",
         "attributeNames": ["size"], "categories": ["MISSING_ATTRIBUTE"], "marketplaceIds": [US]},
        {"code": "18027", "message": "We believe the main image has text, logo, graphic, or watermark that is not "
         "permitted for this product type. Submit a compliant image to lift the suppression. Also refer to Product "
         "image requirements.", "severity": "ERROR", "categories": ["INVALID_IMAGE"],
         **_enforced("SEARCH_SUPPRESSED", {"status": "EXEMPT_UNTIL_EXPIRY_DATE", "expiryDate": "2025-05-28T00:36:48.914Z"}),
         "marketplaceIds": [US, CA]},
        {"code": "99300", "message": "Product Detail Page Rules Violation (Inaccurate information on product detail "
         "page).", "severity": "ERROR", "categories": [], **_enforced("ATTRIBUTE_SUPPRESSED", {"status": "EXEMPT"}),
         "marketplaceIds": [US, CA]},
        {"code": "18155", "message": "The 'minimum price' is greater than the selling price (excluding shipping) for "
         "the listing. Review and update your price and/or minimum price.", "severity": "ERROR",
         "categories": ["INVALID_PRICE"], **_enforced("LISTING_SUPPRESSED", NOT_EXEMPT), "marketplaceIds": [US]},
        {"code": "18742", "message": "Restricted Products Policy Violation", "severity": "ERROR", "categories": [],
         **_enforced("CATALOG_ITEM_REMOVED", NOT_EXEMPT), "marketplaceIds": [US]},
    ],
}


@dataclass(frozen=True)
class Pattern:
    when: Mapping[str, object]  # parameter name (the model's) -> the value it must have
    status: int
    body: dict

    def matches(self, request: Mapping[str, object]) -> bool:
        return all(_same(request.get(name), value) for name, value in self.when.items())


PATTERNS: dict[str, tuple[Pattern, ...]] = {
    "putListingsItem": (
        Pattern({}, 200, ACCEPTED),
        Pattern({"sku": "VALIDATION_VALID", **PREVIEW}, 200, VALID),
        Pattern({"sku": "VALIDATION_INVALID", **PREVIEW}, 200, PUT_INVALID),
        Pattern({"sku": "BadSKU"}, 400, BAD_REQUEST),
    ),
    "patchListingsItem": (
        Pattern({}, 200, ACCEPTED),
        Pattern({"sku": "VALIDATION_VALID", **PREVIEW}, 200, VALID),
        Pattern({"sku": "VALIDATION_INVALID", **PREVIEW}, 200, PATCH_INVALID),
        Pattern({"sku": "BadSKU"}, 400, BAD_REQUEST),
    ),
    "deleteListingsItem": (
        Pattern({}, 200, ACCEPTED),
        Pattern({"sku": "BadSKU"}, 400, BAD_REQUEST),
    ),
    "getListingsItem": (
        Pattern({}, 200, ITEM),
        Pattern({"sku": "BadSKU"}, 400, BAD_REQUEST),
    ),
}


def static_answer(operation: str, request: Mapping[str, object]) -> Answer:
    """The answer of Amazon's static sandbox to `request` (parameter name -> value, named as in the
    model: sellerId, sku, marketplaceIds, includedData, mode, issueLocale, body)."""
    matching = [p for p in PATTERNS[operation] if p.matches(request)]
    if not matching:
        return errors(400, "InvalidInput", "Could not match input arguments")
    best = max(matching, key=lambda p: len(p.when))  # max keeps the first of equals: the model's order
    return Answer(best.status, copy.deepcopy(best.body))  # an answer is its caller's; the patterns stay as the model has them


def _same(got, want) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and sorted(map(str, got)) == sorted(map(str, want))
    return got == want

