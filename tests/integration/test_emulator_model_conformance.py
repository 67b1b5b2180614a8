"""Every kind of answer the emulator gives over HTTP, checked against Amazon's own model of the
Listings Items API (../shared/amazon/listingsItems_2021-08-01.json, Swagger 2.0): the body
against the response schema of its operation and status (with no field the model does not
define), the headers the model declares for that answer, and the sandbox's static patterns
against the model's `x-amzn-api-sandbox` examples."""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jsonschema
import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.sandbox import PATTERNS
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.spapi_accounts import SellerCredentials
from tests.support.requirements import require

pytestmark = pytest.mark.shared

MODEL = Path(__file__).resolve().parents[2].parent / "shared" / "amazon" / "listingsItems_2021-08-01.json"
ITEM_PATH = "/listings/2021-08-01/items/{sellerId}/{sku}"
US = "ATVPDKIKX0DER"
SELLER = SellerCredentials("A1MODELSELLER", "app", "secret", "Atzr|model")
OTHER = SellerCredentials("A2MODELSELLER", "app", "secret", "Atzr|other")
ATTRIBUTES = {"item_name": [{"value": "Band", "language_tag": "en_US", "marketplace_id": US}],
              "brand": [{"value": "Acme", "marketplace_id": US}],
              "condition_type": [{"value": "new_new", "marketplace_id": US}],
              "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": US,
                                     "our_price": [{"schedule": [{"value_with_tax": 9.5}]}]}],
              "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 3}]}
PUT = {"productType": "HAIRBAND", "requirements": "LISTING", "attributes": ATTRIBUTES}
PREVIEW = {"mode": "VALIDATION_PREVIEW", "includedData": "identifiers,issues"}
EVERY_GET_DATA_SET = "summaries,attributes,issues,offers,fulfillmentAvailability,procurement,relationships,productTypes"
METHODS = {"putListingsItem": "PUT", "patchListingsItem": "PATCH", "deleteListingsItem": "DELETE",
           "getListingsItem": "GET"}


@dataclass(frozen=True)
class Case:
    name: str
    operation: str
    status: int
    sku: str = "HB-1"
    params: dict = field(default_factory=dict)
    body: dict | None = None
    sandbox: bool = False
    seller: str = SELLER.seller_id
    before: str | None = None  # "listed": the SKU is put first; "throttle": a plan of 1 request, spent


def patch_body(path: str = "/attributes/item_name", value=ATTRIBUTES["item_name"]) -> dict:
    return {"productType": "HAIRBAND", "patches": [{"op": "replace", "path": path, "value": value}]}


CASES = [
    Case("put accepted", "putListingsItem", 200, body=PUT),
    Case("put invalid: missing attributes", "putListingsItem", 200, body={**PUT, "attributes": {}}),
    Case("put invalid: unknown product type", "putListingsItem", 200, body={**PUT, "productType": "NOT_A_TYPE"}),
    Case("put preview valid", "putListingsItem", 200, params=PREVIEW, body=PUT, before="listed"),
    Case("put preview invalid", "putListingsItem", 200, params=PREVIEW, body={**PUT, "attributes": {}}),
    Case("put unknown marketplace", "putListingsItem", 400, params={"marketplaceIds": "XXXX"}, body=PUT),
    Case("put BadSKU", "putListingsItem", 400, sku="BadSKU", body=PUT),
    Case("put another seller's", "putListingsItem", 403, body=PUT, seller=OTHER.seller_id),
    Case("put too large", "putListingsItem", 413, body={**PUT, "attributes": {"x": [{"v": "x" * 1_000_001}]}}),
    Case("put throttled", "putListingsItem", 429, body=PUT, before="throttle"),
    Case("patch accepted", "patchListingsItem", 200, body=patch_body(), before="listed"),
    Case("patch preview", "patchListingsItem", 200, params=PREVIEW, body=patch_body(), before="listed"),
    Case("patch nested path", "patchListingsItem", 400, body=patch_body("/attributes/item_name/0/value", "x")),
    Case("delete accepted", "deleteListingsItem", 200, before="listed"),
    Case("delete unknown marketplace", "deleteListingsItem", 400, params={"marketplaceIds": "XXXX"}),
    Case("get every data set", "getListingsItem", 200, params={"includedData": EVERY_GET_DATA_SET}, before="listed"),
    Case("get never listed", "getListingsItem", 404, sku="NEVER-LISTED"),
    Case("get unknown data set", "getListingsItem", 400, params={"includedData": "colours"}),
    Case("get another seller's", "getListingsItem", 403, seller=OTHER.seller_id),
    Case("sandbox put", "putListingsItem", 200, body=PUT, sandbox=True),
    Case("sandbox put preview valid", "putListingsItem", 200, sku="VALIDATION_VALID", params=PREVIEW, body=PUT,
         sandbox=True),
    Case("sandbox put preview invalid", "putListingsItem", 200, sku="VALIDATION_INVALID", params=PREVIEW, body=PUT,
         sandbox=True),
    Case("sandbox patch preview invalid", "patchListingsItem", 200, sku="VALIDATION_INVALID", params=PREVIEW,
         body=patch_body(), sandbox=True),
    Case("sandbox patch", "patchListingsItem", 200, body=patch_body(), sandbox=True),
    Case("sandbox delete", "deleteListingsItem", 200, sandbox=True),
    Case("sandbox get", "getListingsItem", 200, params={"includedData": EVERY_GET_DATA_SET}, sandbox=True),
    Case("sandbox BadSKU", "getListingsItem", 400, sku="BadSKU", sandbox=True),
]


@pytest.fixture(scope="module")
def model() -> dict:
    require(MODEL.is_file(), f"Amazon's Listings Items model is not at {MODEL}")
    return json.loads(MODEL.read_text(encoding="utf-8"))


@pytest.fixture
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.of([SELLER, OTHER]), throttled=False)) as running:
        yield running


def closed(definitions: dict) -> dict:
    """The model's definitions, refusing properties they do not list: the SDKs ignore unknown
    fields, so only this catches an answer that invents some."""
    definitions = copy.deepcopy(definitions)

    def close(node):
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(definitions)
    return definitions


DATE_TIME = jsonschema.FormatChecker(formats=())


@DATE_TIME.checks("date-time", raises=ValueError)
def _date_time(value) -> bool:
    if isinstance(value, str):
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def response_of(model: dict, operation: str, status: int) -> dict:
    return model["paths"][ITEM_PATH][METHODS[operation].lower()]["responses"][str(status)]


def call(emulator, case: Case) -> httpx.Response:
    base = emulator.sandbox_url if case.sandbox else emulator.url
    with httpx.Client(base_url=base, timeout=10) as client:
        token = httpx.post(emulator.token_url, data={
            "grant_type": "refresh_token", "refresh_token": SELLER.refresh_token, "client_id": SELLER.client_id,
            "client_secret": SELLER.client_secret}).json()["access_token"]
        headers = {"x-amz-access-token": token, "content-type": "application/json"}
        if case.before == "listed":
            assert client.put(f"/listings/2021-08-01/items/{SELLER.seller_id}/{case.sku}", params={"marketplaceIds": US},
                              json=PUT, headers=headers).json()["status"] == "ACCEPTED"
        if case.before == "throttle":
            emulator.control("config", throttled=True, plans={"put": [0.01, 1]})
            client.put(f"/listings/2021-08-01/items/{SELLER.seller_id}/{case.sku}", params={"marketplaceIds": US},
                       json=PUT, headers=headers)
        return client.request(METHODS[case.operation], f"/listings/2021-08-01/items/{case.seller}/{case.sku}",
                              params={"marketplaceIds": US, **case.params}, headers=headers,
                              content=json.dumps(case.body) if case.body is not None else None)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_answer_is_what_the_model_describes(model, emulator, case):
    answer = call(emulator, case)
    assert answer.status_code == case.status, answer.text
    declared = response_of(model, case.operation, case.status)
    schema = {**declared["schema"], "definitions": closed(model["definitions"])}
    errors = sorted(jsonschema.Draft4Validator(schema, format_checker=DATE_TIME).iter_errors(answer.json()),
                    key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    # Headers exactly where the model declares them: x-amzn-RequestId on all, x-amzn-RateLimit-Limit
    # on 200, 400 and 404.
    for header in ("x-amzn-RequestId", "x-amzn-RateLimit-Limit"):
        assert (header in answer.headers) == (header in declared.get("headers", {})), (header, case.status)


def test_the_cases_cover_every_operation_and_answer_the_project_meets():
    seen = {(c.operation, c.status) for c in CASES}
    assert {op for op, _ in seen} == set(METHODS)
    assert {s for _, s in seen} >= {200, 400, 403, 404, 413, 429}


def test_the_sandbox_answers_exactly_the_models_examples(model):
    for operation, method in METHODS.items():
        declared = model["paths"][ITEM_PATH][method.lower()]["responses"]
        examples = [(int(status), {name: p["value"] for name, p in example["request"]["parameters"].items()
                                   if "value" in p}, example["response"])
                    for status, response in declared.items()
                    for example in response.get("x-amzn-api-sandbox", {}).get("static", [])]
        emulated = [(p.status, dict(p.when), p.body) for p in PATTERNS[operation]]
        assert emulated == examples, operation
