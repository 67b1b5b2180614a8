"""What the emulator refuses, as Amazon does (issue 18): logins of unknown applications, tokens used
for sellers that never granted them, unknown marketplaces and product types, nested PATCH paths;
and what it answers as Amazon's model says: complete getListingsItem bodies, the rate-limit header
on 404, and a static sandbox."""

import json
from urllib.parse import urlencode

import pytest

from catalog_sync.amazon_emulator.emulator import Emulator, EmulatorConfig
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.spapi_accounts import SellerCredentials

US = "ATVPDKIKX0DER"
SELLERS = [SellerCredentials("S1", "app", "s", "Atzr|1"), SellerCredentials("S2", "app", "s", "Atzr|2"),
           SellerCredentials("S3", "other-app", "t", "Atzr|3")]
ATTRIBUTES = {"item_name": [{"value": "Band", "language_tag": "en_US", "marketplace_id": US}],
              "brand": [{"value": "Acme", "marketplace_id": US}],
              "condition_type": [{"value": "new_new", "marketplace_id": US}],
              "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": US,
                                     "our_price": [{"schedule": [{"value_with_tax": 19.99}]}]}],
              "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}]}
GOOD = {"productType": "HAIRBAND", "requirements": "LISTING", "attributes": ATTRIBUTES}


def login(emulator, refresh="Atzr|1", client="app", secret="s"):
    form = urlencode({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client,
                      "client_secret": secret}).encode()
    answer = emulator.handle("POST", "/auth/o2/token", "", {}, form)
    return answer.status, json.loads(answer.body)


def call(emulator, token, method="PUT", sku="SKU-1", body=GOOD, query=f"marketplaceIds={US}", seller="S1", prefix=""):
    answer = emulator.handle(method, f"{prefix}/listings/2021-08-01/items/{seller}/{sku}", query,
                             {"x-amz-access-token": token, "content-type": "application/json"},
                             json.dumps(body).encode() if body is not None else b"")
    return answer.status, json.loads(answer.body), dict(answer.headers)


def get(emulator, token, sku="SKU-1", included="summaries", **kwargs):
    return call(emulator, token, "GET", sku, None, f"marketplaceIds={US}&includedData={included}", **kwargs)


@pytest.fixture
def emulator():
    return Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), throttled=False))


@pytest.fixture
def token(emulator):
    return login(emulator)[1]["access_token"]


# -- Login with Amazon: only known applications, refresh tokens bound to theirs -------------------
@pytest.mark.parametrize(("refresh", "client", "secret", "status", "error"), [
    ("Atzr|1", "app", "wrong", 401, "invalid_client"),
    ("Atzr|1", "stranger", "s", 401, "invalid_client"),
    ("Atzr|unknown", "app", "s", 400, "invalid_grant"),
    ("Atzr|3", "app", "s", 400, "invalid_grant"),  # S3 granted its token to other-app, not to app
])
def test_login_refuses_unknown_clients_wrong_secrets_and_foreign_refresh_tokens(emulator, refresh, client, secret,
                                                                                 status, error):
    got, body = login(emulator, refresh, client, secret)
    assert (got, body["error"]) == (status, error) and "access_token" not in body
    assert login(emulator, "Atzr|3", "other-app", "t")[0] == 200


def test_an_emulator_without_accounts_lets_nobody_in_unless_told_to_accept_anyone():
    assert login(Emulator(EmulatorConfig()))[0] == 401
    anyone = Emulator(EmulatorConfig(accounts=LwaAccounts(any_credentials=True)))
    status, body = login(anyone, "Atzr|whatever", "any-app", "any-secret")
    assert status == 200
    assert call(anyone, body["access_token"], seller="ANY-SELLER")[0] == 200


def test_an_access_token_works_only_for_the_seller_that_granted_its_refresh_token(emulator, token):
    assert call(emulator, token, seller="S1")[0] == 200
    status, body, headers = call(emulator, token, seller="S2")
    assert status == 403 and body["errors"][0]["code"] == "Unauthorized"
    assert "x-amzn-ratelimit-limit" not in headers  # the model declares it on 200/400/404 only
    assert emulator.requests()[-1]["error_code"] == "Unauthorized"


def test_accounts_set_through_the_control_api_take_effect(emulator):
    # The accounts file's JSON, as POST /_emulator/config sends it.
    emulator.configure(accounts={"client_id": "late-app", "client_secret": "x", "sellers": {"S9": "Atzr|9"}})
    assert login(emulator)[0] == 401  # the old accounts are gone
    status, body = login(emulator, "Atzr|9", "late-app", "x")
    assert status == 200 and call(emulator, body["access_token"], seller="S9")[0] == 200


# -- Listings: marketplaces, product types, PATCH paths --------------------------------------------
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "GET"])
def test_an_unknown_marketplace_is_a_400_invalid_input_for_every_operation(emulator, token, method):
    body = {"productType": "HAIRBAND", "patches": [{"op": "delete", "path": "/attributes/brand"}]} \
        if method == "PATCH" else GOOD if method == "PUT" else None
    status, answer, headers = call(emulator, token, method, body=body, query="marketplaceIds=XXXX")
    assert status == 400
    assert answer["errors"][0] == {"code": "InvalidInput", "message": "Invalid 'marketplaceIds' provided.",
                                   "details": ""}
    assert headers["x-amzn-ratelimit-limit"] == "5.0"


def test_an_unknown_product_type_is_invalid_with_4000003_and_nothing_is_stored(emulator, token):
    status, body, _ = call(emulator, token, body={**GOOD, "productType": "NOT_A_TYPE"})
    assert status == 200 and body["status"] == "INVALID"
    assert body["issues"] == [{"code": "4000003", "message": "The Amazon product type specified is invalid or "
                               "not supported.", "severity": "ERROR", "categories": []}]
    assert get(emulator, token)[0] == 404
    patched = call(emulator, token, "PATCH", body={"productType": "NOT_A_TYPE", "patches": [
        {"op": "replace", "path": "/attributes/brand", "value": [{"value": "X"}]}]})[1]
    assert (patched["status"], patched["issues"][0]["code"]) == ("INVALID", "4000003")


def test_the_generic_product_type_carries_offers_only(emulator, token):
    body = call(emulator, token, body={**GOOD, "productType": "PRODUCT"})[1]
    assert (body["status"], body["issues"][0]["code"]) == ("INVALID", "4000004")
    offer = {"productType": "PRODUCT", "requirements": "LISTING_OFFER_ONLY",
             "attributes": {"condition_type": ATTRIBUTES["condition_type"]}}
    assert call(emulator, token, body=offer)[1]["status"] == "ACCEPTED"


def test_more_product_types_can_be_declared():
    emulator = Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), product_types=frozenset({"SHIRT"})))
    token = login(emulator)[1]["access_token"]
    assert call(emulator, token, body={**GOOD, "productType": "SHIRT"})[1]["status"] == "ACCEPTED"
    assert call(emulator, token, body=GOOD)[1]["status"] == "INVALID"  # no longer one of the declared


@pytest.mark.parametrize("path", ["/attributes/item_name/0/value", "/attributes/item_name/0", "/attributes/",
                                  "/attributes", "/item_name", "attributes/item_name", "/productType"])
def test_patch_paths_other_than_a_top_level_attribute_are_refused_and_change_nothing(emulator, token, path):
    call(emulator, token)
    status, body, _ = call(emulator, token, "PATCH", body={"productType": "HAIRBAND", "patches": [
        {"op": "replace", "path": "/attributes/brand", "value": [{"value": "Other", "marketplace_id": US}]},
        {"op": "replace", "path": path, "value": [{"value": "Renamed"}]}]})
    assert status == 400
    assert body["errors"][0]["message"] == "Invalid path provided in patch at index of 1."
    assert get(emulator, token, included="attributes")[1]["attributes"] == ATTRIBUTES


@pytest.mark.parametrize("patch", [
    {"op": "copy", "path": "/attributes/brand", "value": [{"value": "x"}]},
    {"op": "replace", "path": "/attributes/brand", "value": "Acme"},
    {"op": "replace", "path": "/attributes/brand"},
    {"op": "add", "path": "/attributes/brand", "value": ["Acme"]},
])
def test_patches_that_break_the_model_are_400(emulator, token, patch):
    status, body, _ = call(emulator, token, "PATCH", body={"productType": "HAIRBAND", "patches": [patch]})
    assert status == 400 and body["errors"][0]["code"] == "InvalidInput"


def test_a_top_level_patch_replaces_that_attribute_only(emulator, token):
    call(emulator, token)
    name = [{"value": "Renamed band", "language_tag": "en_US", "marketplace_id": US}]
    status, body, _ = call(emulator, token, "PATCH", body={"productType": "HAIRBAND", "patches": [
        {"op": "replace", "path": "/attributes/item_name", "value": name},
        {"op": "delete", "path": "/attributes/fulfillment_availability"}]})
    assert (status, body["status"]) == (200, "ACCEPTED")
    attributes = get(emulator, token, included="attributes")[1]["attributes"]
    assert attributes["item_name"] == name and attributes["brand"] == ATTRIBUTES["brand"]
    assert "fulfillment_availability" not in attributes


@pytest.mark.parametrize(("query", "detail"), [
    (f"marketplaceIds={US}&includedData=issues,colours", "putListingsItem accepts identifiers, issues."),
    (f"marketplaceIds={US}&includedData=identifiers", "identifiers can only be requested when mode is "
                                                      "VALIDATION_PREVIEW."),
])
def test_included_data_outside_the_models_enum_is_400(emulator, token, query, detail):
    status, body, _ = call(emulator, token, query=query)
    assert status == 400 and body["errors"][0]["details"] == detail


# -- getListingsItem: bodies complete per the model -------------------------------------------------
def test_a_listing_reads_back_with_every_field_the_model_requires(emulator, token):
    call(emulator, token)
    status, item, headers = get(emulator, token, included="summaries,issues,offers,fulfillmentAvailability,"
                                                          "productTypes,relationships,procurement")
    assert status == 200 and headers["x-amzn-ratelimit-limit"] == "5.0"
    (summary,) = item["summaries"]
    assert summary["marketplaceId"] == US and summary["productType"] == "HAIRBAND"
    assert summary["status"] == ["BUYABLE", "DISCOVERABLE"] and summary["conditionType"] == "new_new"
    assert summary["itemName"] == "Band" and summary["asin"].startswith("B0") and len(summary["asin"]) == 10
    assert summary["createdDate"].endswith("Z") and summary["lastUpdatedDate"] == summary["createdDate"]
    assert item["offers"] == [{"marketplaceId": US, "offerType": "B2C", "price": {"currencyCode": "USD",
                                                                                  "amount": "19.99"},
                               "audience": {"value": "ALL"}}]
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 7}]
    assert item["productTypes"] == [{"marketplaceId": US, "productType": "HAIRBAND"}]
    assert item["relationships"] == [{"marketplaceId": US, "relationships": []}]
    assert item["issues"] == [] and item["procurement"] == []


def test_an_update_keeps_the_creation_date_and_moves_the_update_date(emulator, token):
    call(emulator, token)
    first = get(emulator, token)[1]["summaries"][0]
    call(emulator, token, body={**GOOD, "attributes": {**ATTRIBUTES, "brand": [{"value": "Other"}]}})
    second = get(emulator, token)[1]["summaries"][0]
    assert second["createdDate"] == first["createdDate"] and second["lastUpdatedDate"] >= first["lastUpdatedDate"]


def test_a_listing_without_a_name_has_no_item_name_rather_than_null(emulator, token):
    offer_only = {"productType": "HAIRBAND", "requirements": "LISTING_OFFER_ONLY",
                  "attributes": {"condition_type": ATTRIBUTES["condition_type"]}}
    assert call(emulator, token, body=offer_only)[1]["status"] == "ACCEPTED"
    summary = get(emulator, token)[1]["summaries"][0]
    assert "itemName" not in summary and summary["status"] == ["DISCOVERABLE"]


def test_a_404_carries_the_rate_limit_header_and_the_request_id(emulator, token):
    status, body, headers = get(emulator, token, sku="NEVER-LISTED")
    assert status == 404 and body["errors"][0]["code"] == "NOT_FOUND"
    assert headers["x-amzn-ratelimit-limit"] == "5.0" and headers["x-amzn-requestid"]


def test_a_429_carries_no_rate_limit_header(emulator, token):
    emulator.configure(throttled=True)
    answers = [call(emulator, token, "GET", sku="X", body=None) for _ in range(11)]
    status, body, headers = answers[-1]
    assert status == 429 and body["errors"][0]["code"] == "QuotaExceeded"
    assert "x-amzn-ratelimit-limit" not in headers


# -- the sandbox: static, as Amazon's -------------------------------------------------------------
PREVIEW = f"marketplaceIds={US}&mode=VALIDATION_PREVIEW&includedData=identifiers,issues"
ACCEPTED = {"sku": "GM-ZDPI-9B4E", "status": "ACCEPTED", "submissionId": "f1dc2914-75dd-11ea-bc55-0242ac130003",
            "issues": []}


@pytest.mark.parametrize(("method", "sku", "query", "status", "expected"), [
    ("PUT", "MY-OWN-SKU", f"marketplaceIds={US}", 200, ACCEPTED),
    ("PATCH", "MY-OWN-SKU", f"marketplaceIds={US}", 200, ACCEPTED),
    ("DELETE", "MY-OWN-SKU", f"marketplaceIds={US}", 200, ACCEPTED),
    ("PUT", "VALIDATION_VALID", PREVIEW, 200, {"status": "VALID", "sku": "VALIDATION_VALID"}),
    ("PUT", "VALIDATION_INVALID", PREVIEW, 200, {"status": "INVALID", "issue_codes": ["90220", "90000900"]}),
    ("PATCH", "VALIDATION_INVALID", PREVIEW, 200, {"status": "INVALID", "issue_codes": ["90000900"]}),
    ("PUT", "BadSKU", f"marketplaceIds={US}", 400, {"code": "BAD_REQUEST"}),
    ("GET", "BadSKU", f"marketplaceIds={US}", 400, {"code": "BAD_REQUEST"}),
])
def test_the_sandbox_answers_the_models_examples_for_every_operation(emulator, token, method, sku, query, status,
                                                                     expected):
    body = {"productType": "ANYTHING", "patches": [{"op": "replace", "path": "/attributes/x", "value": [{}]}]} \
        if method == "PATCH" else {"productType": "NOT_A_TYPE", "attributes": {}} if method == "PUT" else None
    got_status, answer, headers = call(emulator, token, method, sku=sku, body=body, query=query, prefix="/sandbox")
    assert got_status == status and headers["x-amzn-ratelimit-limit"]
    if "code" in expected:
        assert answer["errors"][0]["code"] == expected["code"]
    elif "issue_codes" in expected:
        assert answer["status"] == expected["status"] and [i["code"] for i in answer["issues"]] == expected["issue_codes"]
    else:
        assert {k: answer[k] for k in expected} == expected


def test_the_sandbox_validates_nothing_and_stores_nothing(emulator, token):
    call(emulator, token, sku="MY-OWN-SKU", body={"productType": "NOT_A_TYPE", "attributes": {}}, prefix="/sandbox")
    status, item, _ = get(emulator, token, sku="MY-OWN-SKU", prefix="/sandbox")
    # Whatever SKU is asked, Amazon's sandbox describes its example suitcase.
    assert status == 200 and item["sku"] == "GM-ZDPI-9B4E" and item["summaries"][0]["productType"] == "LUGGAGE"
    # A preview that does not name the example's parameters exactly gets the catch-all answer.
    assert call(emulator, token, sku="VALIDATION_VALID", query=f"marketplaceIds={US}&mode=VALIDATION_PREVIEW",
                prefix="/sandbox")[1] == ACCEPTED


def test_the_sandbox_still_checks_tokens_sellers_and_the_request_shape(emulator, token):
    assert call(emulator, "Atza|forged", prefix="/sandbox")[0] == 403
    assert call(emulator, token, seller="S2", prefix="/sandbox")[0] == 403
    assert call(emulator, token, query="", prefix="/sandbox")[0] == 400  # marketplaceIds is required


def test_the_validating_sandbox_flag_keeps_the_demo_sandbox():
    validating = Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), validating_sandbox=True))
    token = login(validating)[1]["access_token"]
    body = call(validating, token, sku="MY-OWN-SKU", body={**GOOD, "attributes": {}}, prefix="/sandbox")[1]
    assert body["status"] == "INVALID" and body["sku"] == "MY-OWN-SKU"
    assert call(validating, token, sku="MY-OWN-SKU", prefix="/sandbox")[1]["status"] == "ACCEPTED"
    assert get(validating, token, sku="MY-OWN-SKU", prefix="/sandbox")[1]["summaries"][0]["productType"] == "HAIRBAND"
    assert get(validating, token, sku="MY-OWN-SKU")[0] == 404  # production never sees sandbox listings
