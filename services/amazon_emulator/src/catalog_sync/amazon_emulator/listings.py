"""The Listings Items API 2021-08-01 behaviour of the production host (and of the sandbox when it
is asked to validate): request checks, Amazon-shaped issues, and a store of accepted listings so
getListingsItem answers.

Shapes follow Amazon's model (listingsItems_2021-08-01.json): a rejected submission is HTTP 200
with status INVALID and `issues`; malformed requests are 400 `{"errors": [...]}`; a listing read
back carries every field the model requires (summaries with createdDate, lastUpdatedDate, status).
Where the model is silent, the answers are the ones Amazon gives, with the thread that shows them."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import orjson

from catalog_sync.amazon_emulator.post_acceptance import Fate
from catalog_sync.amazon_emulator.product_types import KNOWN_PRODUCT_TYPES
from catalog_sync.runtime.events import new_event_id  # ids like Amazon's, without a syscall each
from catalog_sync.runtime.marketplaces import MARKETPLACES

VALIDATION_PREVIEW = "VALIDATION_PREVIEW"
BAD_SKU = "BadSKU"  # the model's sandbox example of a 400; production answers it the same way (fault tests)
REQUIREMENTS = ("LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY")
PATCH_OPS = ("add", "replace", "merge", "delete")
# "Only top-level listings item attributes can be patched. Patching nested attributes is not
# supported." (the model's patchListingsItem): a path is /attributes/<name> and nothing deeper.
PATCH_PATH = re.compile(r"/attributes/[^/]+")

# includedData each operation accepts (the model's enums) and its default.
INCLUDED_DATA = {
    "putListingsItem": ("identifiers", "issues"),
    "patchListingsItem": ("identifiers", "issues"),
    "getListingsItem": ("summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "procurement",
                        "relationships", "productTypes"),
}
DEFAULT_INCLUDED = {"putListingsItem": ("issues",), "patchListingsItem": ("issues",), "getListingsItem": ("summaries",)}

# Attributes whose absence the emulator reports as 90220 per requirements set. Real product
# types require more (see the product type definitions); these are the ones every listing needs.
DEFAULT_REQUIRED: dict[str, tuple[str, ...]] = {
    "LISTING": ("item_name", "brand", "condition_type"),
    "LISTING_PRODUCT_ONLY": ("item_name", "brand"),
    "LISTING_OFFER_ONLY": ("condition_type",),
}
CONDITION_TYPES = frozenset({  # ItemSummaryByMarketplace.conditionType in the model
    "new_new", "new_open_box", "new_oem", "refurbished_refurbished", "used_like_new", "used_very_good", "used_good",
    "used_acceptable", "collectible_like_new", "collectible_very_good", "collectible_good", "collectible_acceptable",
    "club_club"})

MAX_BODY_BYTES = 1_000_000  # larger bodies get 413, as Amazon's gateway does
CANNOT_PARSE = "Request has missing or invalid parameters and cannot be parsed."

OPERATIONS = {"PUT": "putListingsItem", "DELETE": "deleteListingsItem", "GET": "getListingsItem",
              "PATCH": "patchListingsItem"}  # Listings Items operations by HTTP method


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


@dataclass
class ListingRequest:
    method: str
    seller_id: str
    sku: str
    marketplace_ids: list[str]
    mode: str | None
    included_data: list[str] | None  # None: the parameter was not sent
    content_type: str
    body: bytes
    sandbox: bool = False
    issue_locale: str | None = None

    @property
    def operation(self) -> str:
        return OPERATIONS[self.method]

    @property
    def included(self) -> tuple[str, ...]:
        """The data sets the answer carries: as asked, else the operation's default."""
        if self.included_data is None:
            return DEFAULT_INCLUDED.get(self.operation, ())
        return tuple(self.included_data)


@dataclass(frozen=True, slots=True)
class StoredListing:
    product_type: str
    requirements: str
    # Kept serialized: a 100,000-item run stores 100,000 listings, and as parsed trees (~50
    # objects each) every pass of the garbage collector walked them. In 30,000-item pipeline
    # runs the emulator's collections took 1.25-1.39 s of its 4.5 s of CPU; 0.10-0.16 s serialized.
    attributes_json: bytes
    submission_id: str
    issues: tuple
    created: float  # epoch seconds: getListingsItem's createdDate and lastUpdatedDate, formatted when read
    updated: float
    fate: Fate | None = None  # what happens after acceptance, when scripted (post_acceptance.py)

    @property
    def attributes(self) -> dict:
        return orjson.loads(self.attributes_json)


def errors(status: int, code: str, message: str, details: str = "") -> Answer:
    # Amazon's error bodies carry `details`, empty when there is nothing to add.
    return Answer(status, {"errors": [{"code": code, "message": message, "details": details}]})


def lane_of(method: str, mode: str | None) -> str:
    if mode == VALIDATION_PREVIEW:
        return "preview"
    return {"PUT": "put", "PATCH": "patch", "DELETE": "delete", "GET": "get"}[method]


def issue(code: str, message: str, attributes: list[str], categories: list[str], severity: str = "ERROR") -> dict:
    found = {"code": code, "message": message, "severity": severity, "categories": categories}
    if attributes:
        found["attributeNames"] = attributes
    return found


def check_request(req: ListingRequest) -> tuple[Answer | None, dict | None]:
    """The model's rules for parameters and body, which both hosts enforce before anything else:
    (a 4xx answer, None) or (None, the parsed body of a PUT or PATCH)."""
    if not req.marketplace_ids:
        return errors(400, "InvalidInput", "Missing required parameter: marketplaceIds."), None
    if len(req.marketplace_ids) > 1 and req.method != "GET":
        return errors(400, "InvalidInput", "Only one marketplaceId is allowed per request."), None
    if req.mode is not None and req.method in ("DELETE", "GET"):
        # Amazon's model defines `mode` on putListingsItem and patchListingsItem only.
        return errors(400, "InvalidInput", CANNOT_PARSE, f"{req.operation} does not take the parameter mode."), None
    if req.mode not in (None, VALIDATION_PREVIEW):
        return errors(400, "InvalidInput", f"Invalid value for parameter mode: {req.mode}."), None
    allowed = INCLUDED_DATA.get(req.operation)
    if allowed is not None and req.included_data is not None:
        unknown = [d for d in req.included_data if d not in allowed]
        if unknown:
            return errors(400, "InvalidInput", f"Invalid value for parameter includedData: {','.join(unknown)}.",
                          f"{req.operation} accepts {', '.join(allowed)}."), None
        if "identifiers" in req.included_data and req.mode != VALIDATION_PREVIEW:
            # The model: identifiers "can only be requested when mode is VALIDATION_PREVIEW".
            return errors(400, "InvalidInput", "Invalid value for parameter includedData: identifiers.",
                          "identifiers can only be requested when mode is VALIDATION_PREVIEW."), None
    if req.method not in ("PUT", "PATCH"):
        return None, None
    if len(req.body) > MAX_BODY_BYTES:
        return errors(413, "RequestEntityTooLarge", "The request size exceeded the maximum accepted size."), None
    if not req.content_type.startswith("application/json"):
        return errors(415, "UnsupportedMediaType", "The request payload is in an unsupported format."), None
    try:
        body = orjson.loads(req.body)  # what it parses, it can store again (orjson.dumps)
    except ValueError:
        return errors(400, "InvalidInput", CANNOT_PARSE, "The request body is not valid JSON."), None
    if not isinstance(body, dict):
        return errors(400, "InvalidInput", CANNOT_PARSE, "The request body must be a JSON object."), None
    return None, body


class ListingsBehaviour:
    def __init__(
        self,
        *,
        required: Mapping[str, tuple[str, ...]] | None = None,
        product_type_required: Mapping[str, tuple[str, ...]] | None = None,
        product_types: frozenset[str] = KNOWN_PRODUCT_TYPES,
    ) -> None:
        self.configure(required=required, product_type_required=product_type_required, product_types=product_types)
        # Keyed (sandbox?, seller, marketplace, sku): the sandbox and production never share listings.
        self.store: dict[tuple[bool, str, str, str], StoredListing] = {}
        # (seller or None for any, sku) -> what happens to the listing after its next acceptance.
        self.fates: dict[tuple[str | None, str], Fate] = {}

    def configure(self, *, required, product_type_required, product_types) -> None:
        self.required = {**DEFAULT_REQUIRED, **(required or {})}
        # product type -> its schema's top-level `required`, when product type files are loaded.
        self.product_type_required = dict(product_type_required or {})
        self.product_types = frozenset(product_types) | set(self.product_type_required)

    def reset(self) -> None:
        self.store.clear()
        self.fates.clear()

    def handle(self, req: ListingRequest) -> Answer:
        if req.sku == BAD_SKU:
            return errors(400, "BAD_REQUEST", "Invalid input", "Invalid input")
        problem, body = check_request(req)
        if problem is not None:
            return problem
        if any(m not in MARKETPLACES for m in req.marketplace_ids):
            # What Amazon answers for a marketplace id it does not have (amzn/selling-partner-api-models#2771).
            return errors(400, "InvalidInput", "Invalid 'marketplaceIds' provided.")
        if req.method == "GET":
            return self._get(req)
        if req.method == "DELETE":
            return self._delete(req)
        assert body is not None  # check_request parses the body of every PUT and PATCH
        if req.method == "PATCH":
            return self._patch(req, body)
        return self._put(req, body)

    def _put(self, req: ListingRequest, body: dict) -> Answer:
        product_type = body.get("productType")
        attributes = body.get("attributes")
        requirements = body.get("requirements", "LISTING")
        if not isinstance(product_type, str) or not product_type:
            return errors(400, "InvalidInput", CANNOT_PARSE, "productType is required.")
        if not isinstance(attributes, dict):
            return errors(400, "InvalidInput", CANNOT_PARSE, "attributes is required and must be an object.")
        if requirements not in REQUIREMENTS:
            return errors(400, "InvalidInput", CANNOT_PARSE, f"requirements must be one of {', '.join(REQUIREMENTS)}.")
        refused = self._product_type_issue(product_type, requirements)
        if refused is not None:
            return self._verdict(req, [refused], product_type, requirements, attributes)
        issues = self._issues(req, product_type, requirements, attributes)
        return self._verdict(req, issues, product_type, requirements, attributes)

    def _patch(self, req: ListingRequest, body: dict) -> Answer:
        patches = body.get("patches")
        product_type = body.get("productType")
        if not isinstance(product_type, str) or not product_type or not isinstance(patches, list) or not patches:
            return errors(400, "InvalidInput", CANNOT_PARSE, "productType and patches (at least one) are required.")
        for index, patch in enumerate(patches):
            problem = _patch_problem(index, patch)
            if problem is not None:
                return problem
        current = self.store.get(_key(req, req.marketplace_ids[0]))
        requirements = current.requirements if current else "LISTING"
        attributes = current.attributes if current else {}
        refused = self._product_type_issue(product_type, requirements)
        if refused is not None:
            return self._verdict(req, [refused], product_type, requirements, attributes)
        for patch in patches:
            name = patch["path"][len("/attributes/"):]
            if patch["op"] == "delete":
                attributes.pop(name, None)
            else:
                attributes[name] = patch["value"]
        return self._verdict(req, self._value_issues(attributes), product_type, requirements, attributes)

    def _product_type_issue(self, product_type: str, requirements: str) -> dict | None:
        if product_type not in self.product_types:
            # Amazon answers a product type it does not have with HTTP 200, status INVALID and
            # issue 4000003 (amzn/selling-partner-api-models#2427, selling-partner-api-docs#864);
            # `categories` is empty because the model requires the field.
            return issue("4000003", "The Amazon product type specified is invalid or not supported.", [], [])
        if product_type == "PRODUCT" and requirements != "LISTING_OFFER_ONLY":
            # Same threads: the generic type only carries offers.
            return issue("4000004", 'Creating products is not supported with the "PRODUCT" Amazon product type. '
                         "Either specify a specific Amazon product type or specify an offer-only requirements set.",
                         [], [])
        return None

    def _verdict(self, req: ListingRequest, issues: list[dict], product_type: str, requirements: str,
                 attributes: dict) -> Answer:
        submission_id = new_event_id()
        rejected = any(i["severity"] == "ERROR" for i in issues)
        body: dict = {"sku": req.sku, "submissionId": submission_id}
        key = _key(req, req.marketplace_ids[0])
        if req.mode == VALIDATION_PREVIEW:
            body["status"] = "INVALID" if rejected else "VALID"
            if "identifiers" in req.included:
                known = self.store.get(key)
                body["identifiers"] = [{"marketplaceId": key[2], "asin": asin_of(req.seller_id, req.sku)}] if known else []
        elif rejected:
            body["status"] = "INVALID"
        else:
            body["status"] = "ACCEPTED"
            now = time.time()
            previous = self.store.get(key)
            fate = self.fates.get((req.seller_id, req.sku)) or self.fates.get((None, req.sku))
            self.store[key] = StoredListing(product_type, requirements, orjson.dumps(attributes), submission_id,
                                            tuple(issues), previous.created if previous else now, now, fate)
        if "issues" in req.included:
            body["issues"] = issues
        return Answer(200, body)

    def _issues(self, req: ListingRequest, product_type: str, requirements: str, attributes: dict) -> list[dict]:
        required = list(self.required.get(requirements, ()))
        if requirements != "LISTING_OFFER_ONLY":
            required += [a for a in self.product_type_required.get(product_type, ()) if a not in required]
        found = [
            issue("90220", f"'{name}' is required but not supplied.", [name], ["MISSING_ATTRIBUTE"])
            for name in required
            if not attributes.get(name)
        ]
        found += self._value_issues(attributes)
        marketplace = req.marketplace_ids[0]
        for name, values in attributes.items():
            if isinstance(values, list) and any(
                isinstance(v, dict) and v.get("marketplace_id") not in (None, marketplace) for v in values
            ):
                found.append(issue("4000001", f"The provided value for '{name}' is invalid: marketplace_id does "
                                   f"not match the request marketplace {marketplace}.", [name],
                                   ["INVALID_ATTRIBUTE"]))
        return found

    @staticmethod
    def _value_issues(attributes: dict) -> list[dict]:
        # Every attribute value is an array of objects in the 2021-08-01 API.
        bad = [n for n, v in attributes.items() if not isinstance(v, list) or not all(isinstance(x, dict) for x in v)]
        if not bad:
            return []
        return [issue("90000900", "The attributes are invalid.", bad, ["INVALID_ATTRIBUTE"])]

    def _delete(self, req: ListingRequest) -> Answer:
        self.store.pop(_key(req, req.marketplace_ids[0]), None)
        return Answer(200, {"sku": req.sku, "status": "ACCEPTED", "submissionId": new_event_id(), "issues": []})

    def _get(self, req: ListingRequest) -> Answer:
        found = [(m, s) for m in req.marketplace_ids if (s := self.store.get(_key(req, m))) is not None]
        if not found:
            return errors(404, "NOT_FOUND", f"SKU '{req.sku}' not found in marketplace "
                          f"{','.join(req.marketplace_ids)}")
        return Answer(200, item_body(req.seller_id, req.sku, found, req.included))


def item_body(seller_id: str, sku: str, found: list[tuple[str, StoredListing]], included: tuple[str, ...]) -> dict:
    """getListingsItem's Item for the listings stored under `sku` in each marketplace of `found`."""
    body: dict = {"sku": sku}
    listings = [(m, s, s.attributes) for m, s in found]
    now = time.time()
    if "summaries" in included:
        body["summaries"] = [_summary(seller_id, sku, m, s, a, now) for m, s, a in listings]
    if "attributes" in included:
        body["attributes"] = listings[0][2]
    if "issues" in included:
        body["issues"] = [{**i, "marketplaceIds": [m]} for m, s, _ in listings for i in _later_issues(s, now)]
    if "offers" in included:
        body["offers"] = [offer for m, _, a in listings for offer in _offers(m, a)]
    if "fulfillmentAvailability" in included:
        # Not per marketplace in the model (a seller's stock is shared): the first listing's.
        body["fulfillmentAvailability"] = [
            {"fulfillmentChannelCode": f["fulfillment_channel_code"],
             **({"quantity": f["quantity"]} if isinstance(f.get("quantity"), int) else {})}
            for _, _, a in listings[:1] for f in a.get("fulfillment_availability") or []
            if isinstance(f, dict) and isinstance(f.get("fulfillment_channel_code"), str)]
    if "procurement" in included:
        body["procurement"] = []  # vendors' cost prices: sellers have none
    if "relationships" in included:
        body["relationships"] = [{"marketplaceId": m, "relationships": []} for m, _, _ in listings]
    if "productTypes" in included:
        body["productTypes"] = [{"marketplaceId": m, "productType": s.product_type} for m, s, _ in listings]
    return body


def asin_of(seller_id: str, sku: str) -> str:
    """A stable made-up ASIN per listing (Amazon assigns one once the listing is processed)."""
    number = int.from_bytes(hashlib.blake2b(f"{seller_id}|{sku}".encode(), digest_size=8).digest(), "big")
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    for _ in range(8):
        number, digit = divmod(number, 36)
        text += digits[digit]
    return "B0" + text


def _later_issues(stored: StoredListing, now: float) -> tuple:
    """The issues of the submission plus those its fate has developed by `now`."""
    if stored.fate is None:
        return stored.issues
    return stored.issues + stored.fate.view(stored.updated, now, [])[1]


def _summary(seller_id: str, sku: str, marketplace: str, stored: StoredListing, attributes: dict,
             now: float) -> dict:
    summary: dict[str, object] = {"marketplaceId": marketplace, "asin": asin_of(seller_id, sku), "productType": stored.product_type}
    condition = _first_value(attributes.get("condition_type"))
    if condition in CONDITION_TYPES:
        summary["conditionType"] = condition
    # Offers make a listing buyable; product facts alone only make it discoverable.
    has_offer = stored.requirements != "LISTING_PRODUCT_ONLY" and bool(attributes.get("purchasable_offer"))
    status = ["BUYABLE", "DISCOVERABLE"] if has_offer else ["DISCOVERABLE"]
    if stored.fate is not None:
        status = stored.fate.view(stored.updated, now, status)[0]
    summary["status"] = status
    name = _first_value(attributes.get("item_name"))
    if isinstance(name, str):
        summary["itemName"] = name  # the model has itemName a string: absent, never null
    summary["createdDate"] = _iso(stored.created)
    summary["lastUpdatedDate"] = _iso(stored.updated)
    return summary


def _offers(marketplace: str, attributes: dict) -> list[dict]:
    offers = []
    for offer in attributes.get("purchasable_offer") or []:
        if not isinstance(offer, dict) or not isinstance(offer.get("currency"), str):
            continue
        amount = _price(offer.get("our_price"))
        if amount is None:
            continue
        audience = offer.get("audience") if isinstance(offer.get("audience"), str) else "ALL"
        offers.append({"marketplaceId": marketplace, "offerType": "B2B" if audience == "B2B" else "B2C",
                       "price": {"currencyCode": offer["currency"], "amount": amount}, "audience": {"value": audience}})
    return offers


def _price(our_price) -> str | None:
    """The first schedule's value_with_tax of purchasable_offer.our_price, as the model's Decimal (a string)."""
    try:
        value = our_price[0]["schedule"][0]["value_with_tax"]
        return str(Decimal(str(value)))
    except (TypeError, KeyError, IndexError, InvalidOperation):
        return None


def _patch_problem(index: int, patch) -> Answer | None:
    if not isinstance(patch, dict) or patch.get("op") not in PATCH_OPS:
        return errors(400, "InvalidInput", CANNOT_PARSE, f"patches[{index}]: op must be one of {', '.join(PATCH_OPS)}.")
    path = patch.get("path")
    if not isinstance(path, str) or not PATCH_PATH.fullmatch(path):
        # Amazon's words for a path other than /attributes/<name> (amzn/selling-partner-api-models#2531).
        return errors(400, "InvalidInput", f"Invalid path provided in patch at index of {index}.",
                      "Only top-level attributes can be patched: the path is /attributes/<attribute name>.")
    value = patch.get("value")
    if (value is not None or patch["op"] != "delete") and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        # The same thread: Amazon reports a bad `value` with the same words.
        return errors(400, "InvalidInput", f"Invalid path provided in patch at index of {index}.",
                      f"{patch['op']} needs a value: an array of objects.")
    return None


def _key(req: ListingRequest, marketplace_id: str) -> tuple[bool, str, str, str]:
    return req.sandbox, req.seller_id, marketplace_id, req.sku


def _first_value(values):
    if isinstance(values, list) and values and isinstance(values[0], dict):
        return values[0].get("value")
    return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
