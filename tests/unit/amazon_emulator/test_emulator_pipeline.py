"""The emulator's request pipeline without a server: LWA, token checks, usage plans, faults,
Amazon-shaped answers. What it refuses as Amazon does is in test_emulator_strictness.py."""

import json
from urllib.parse import urlencode

import pytest

from catalog_sync.amazon_emulator.emulator import Emulator, EmulatorConfig
from catalog_sync.amazon_emulator.quota import Quotas, parse_plan
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.spapi_accounts import SellerCredentials
from catalog_sync.runtime.usage_plans import UsagePlan

# One application; refresh token Atzr|<n> was granted by seller S<n>.
SELLERS = [SellerCredentials(f"S{n}", "app", "s", f"Atzr|{n}") for n in (1, 2)]

GOOD = {"productType": "HAIRBAND", "requirements": "LISTING", "attributes": {
    "item_name": [{"value": "Band", "marketplace_id": "ATVPDKIKX0DER"}], "brand": [{"value": "Acme"}],
    "condition_type": [{"value": "new_new"}]}}


def login(emulator, refresh="Atzr|1", client="app"):
    form = urlencode({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client,
                      "client_secret": "s"}).encode()
    answer = emulator.handle("POST", "/auth/o2/token", "", {}, form)
    return answer.status, json.loads(answer.body)


def put(emulator, token, sku="SKU-1", body=GOOD, query="marketplaceIds=ATVPDKIKX0DER", seller="S1",
        prefix="", content_type="application/json", method="PUT"):
    answer = emulator.handle(method, f"{prefix}/listings/2021-08-01/items/{seller}/{sku}", query,
                             {"x-amz-access-token": token, "content-type": content_type},
                             json.dumps(body).encode() if body is not None else b"")
    return answer, json.loads(answer.body), dict(answer.headers)


def configured(**settings) -> Emulator:
    return Emulator(EmulatorConfig(accounts=LwaAccounts.of(SELLERS), **settings))


@pytest.fixture
def emulator():
    return configured()


@pytest.fixture
def token(emulator):
    return login(emulator)[1]["access_token"]


def test_login_with_amazon_issues_bearer_tokens_and_refuses_bad_requests(emulator):
    status, body = login(emulator)
    assert status == 200 and body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("Atza|")
    bad = emulator.handle("POST", "/auth/o2/token", "", {}, b"grant_type=password")
    assert bad.status == 400 and json.loads(bad.body)["error"] == "unsupported_grant_type"


def test_unknown_and_expired_tokens_get_403(emulator, token):
    answer, body, _ = put(emulator, "Atza|forged")
    assert answer.status == 403 and body["errors"][0]["code"] == "Unauthorized"
    emulator.expire_tokens()
    answer, body, _ = put(emulator, token)
    assert answer.status == 403 and "expired" in body["errors"][0]["details"]


def test_accepted_answers_carry_fresh_ids_and_the_rate_limit_header(emulator, token):
    first, body, headers = put(emulator, token)
    second, body2, headers2 = put(emulator, token, sku="SKU-2")
    assert body["status"] == "ACCEPTED" and body["issues"] == []
    assert headers["x-amzn-requestid"] != headers2["x-amzn-requestid"]
    assert body["submissionId"] != body2["submissionId"]
    assert headers["x-amzn-ratelimit-limit"] == "5.0"


def test_missing_required_attributes_are_invalid_with_90220(emulator, token):
    _, body, _ = put(emulator, token, body={"productType": "HAIRBAND", "attributes": {"item_name": [{"value": "x"}]}})
    assert body["status"] == "INVALID"
    assert [(i["code"], i["attributeNames"], i["categories"]) for i in body["issues"]] == [
        ("90220", ["brand"], ["MISSING_ATTRIBUTE"]), ("90220", ["condition_type"], ["MISSING_ATTRIBUTE"])]
    _, offer_only, _ = put(emulator, token, body={"productType": "HAIRBAND", "requirements": "LISTING_OFFER_ONLY",
                                                   "attributes": {"condition_type": [{"value": "new_new"}]}})
    assert offer_only["status"] == "ACCEPTED"


def test_preview_validates_without_persisting(emulator, token):
    query = "marketplaceIds=ATVPDKIKX0DER&mode=VALIDATION_PREVIEW&includedData=issues,identifiers"
    _, body, _ = put(emulator, token, query=query)
    assert body["status"] == "VALID" and body["identifiers"] == []
    got, _, _ = put(emulator, token, body=None, method="GET")
    assert got.status == 404
    put(emulator, token)
    got, body, _ = put(emulator, token, body=None, method="GET")
    assert got.status == 200 and body["summaries"][0]["itemName"] == "Band"
    _, body, _ = put(emulator, token, body=None, method="GET", query="marketplaceIds=ATVPDKIKX0DER&includedData=attributes")
    assert body["attributes"] == GOOD["attributes"]


def test_a_stored_listing_reads_back_even_with_a_number_beyond_64_bits(emulator, token):
    # Stored listings keep their attributes serialized: whatever the parser accepted must store.
    body = {**GOOD, "attributes": {**GOOD["attributes"], "quantity": [{"value": 2 ** 70}]}}
    answer, _, _ = put(emulator, token, body=body)
    assert answer.status == 200
    _, got, _ = put(emulator, token, body=None, method="GET", query="marketplaceIds=ATVPDKIKX0DER&includedData=attributes")
    assert got["attributes"]["quantity"] == [{"value": float(2 ** 70)}]


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"body": {"attributes": {}}}, 400, "InvalidInput"),
    ({"query": ""}, 400, "InvalidInput"),
    ({"query": "marketplaceIds=ATVPDKIKX0DER,A1PA6795UKMFR9"}, 400, "InvalidInput"),
    ({"content_type": "text/plain"}, 415, "UnsupportedMediaType"),
    ({"body": {"productType": "X", "attributes": {"a": [{"v": "x" * 1_000_001}]}}}, 413, "RequestEntityTooLarge"),
    ({"sku": "BadSKU"}, 400, "BAD_REQUEST"),
])
def test_malformed_requests(emulator, token, kwargs, status, code):
    answer, body, _ = put(emulator, token, **kwargs)
    assert answer.status == status and body["errors"][0]["code"] == code


@pytest.mark.parametrize("method", ["DELETE", "GET"])
def test_mode_is_refused_where_amazons_model_does_not_define_it(emulator, token, method):
    put(emulator, token)
    query = "marketplaceIds=ATVPDKIKX0DER&mode=VALIDATION_PREVIEW"
    answer, body, _ = put(emulator, token, body=None, method=method, query=query)
    assert answer.status == 400 and body["errors"][0]["code"] == "InvalidInput"
    assert "does not take the parameter mode" in body["errors"][0]["details"]
    assert put(emulator, token, body=None, method="GET")[0].status == 200  # the listing is still there


def test_the_sandbox_and_production_never_share_listings(emulator, token):
    emulator.configure(validating_sandbox=True)  # the static sandbox stores nothing to share
    put(emulator, token, sku="SHARED")
    assert put(emulator, token, sku="SHARED", body=None, method="GET", prefix="/sandbox")[0].status == 404
    put(emulator, token, sku="SHARED", body=None, method="DELETE", prefix="/sandbox")
    assert put(emulator, token, sku="SHARED", body=None, method="GET")[0].status == 200
    put(emulator, token, sku="SANDBOX-ONLY", prefix="/sandbox")
    assert put(emulator, token, sku="SANDBOX-ONLY", body=None, method="GET")[0].status == 404


def test_usage_plan_per_seller_and_unthrottled_mode(emulator, token):
    statuses = [put(emulator, token, sku=f"K{i}")[0].status for i in range(11)]
    assert statuses == [200] * 10 + [429]
    other = login(emulator, refresh="Atzr|2")[1]["access_token"]
    assert put(emulator, other, seller="S2")[0].status == 200  # another seller has its own bucket
    body = put(emulator, token, sku="K-over")[1]
    assert body["errors"][0]["code"] == "QuotaExceeded"
    emulator.configure(throttled=False)
    assert all(put(emulator, token, sku=f"U{i}")[0].status == 200 for i in range(30))


def test_quota_bucket_refills_at_the_plan_rate():
    now = [0.0]
    quotas = Quotas({"put": UsagePlan(5.0, 10)}, clock=lambda: now[0])
    assert sum(quotas.take("S", "app", "put") for _ in range(20)) == 10
    now[0] = 1.0
    assert sum(quotas.take("S", "app", "put") for _ in range(20)) == 5
    assert parse_plan("put=2:4") == ("put", UsagePlan(2.0, 4))
    with pytest.raises(ValueError):
        parse_plan("fly=1")


def test_scripted_faults_and_random_5xx(emulator, token):
    emulator.script(503, times=2, sku="SKU-1")
    assert [put(emulator, token)[0].status for _ in range(3)] == [503, 503, 200]
    emulator.script(200, delay_ms=250)
    assert put(emulator, token)[0].delay_s == pytest.approx(0.25)
    noisy = configured(fault_5xx_rate=0.5, throttled=False, seed=3)
    noisy_token = login(noisy)[1]["access_token"]
    statuses = [put(noisy, noisy_token, sku=f"S{i}")[0].status for i in range(200)]
    assert 60 < sum(s in (500, 503) for s in statuses) < 140


def test_request_log_records_what_tests_assert_on(emulator, token):
    put(emulator, token, sku="A%2FB")
    entry = emulator.requests()[-1]
    assert (entry["operation"], entry["seller_id"], entry["sku"], entry["sku_raw"], entry["status"]) == \
        ("putListingsItem", "S1", "A/B", "A%2FB", 200)
    assert entry["request_id"] and entry["endpoint"] == "production" and entry["lane"] == "put"
    since = entry["seq"]
    put(emulator, token, sku="next")
    assert [e["sku"] for e in emulator.requests(since)] == ["next"]
