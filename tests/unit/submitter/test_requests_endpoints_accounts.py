"""Building the SP-API call, choosing the host, reading accounts."""

import json

import pytest

from catalog_sync.submitter.accounts import Accounts, AccountsError
from catalog_sync.submitter.endpoints import Endpoints, UnknownMarketplace
from catalog_sync.submitter.listing_requests import InvalidReadyEvent, NotSent, build_call


def ready(**fields):
    event = {"mode": "production", "reference": "HB-1", "operation": "upsert", "seller_id": "S1",
             "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND", "requirements": "LISTING",
             "attributes_json": '{"item_name": [{"value": "Bänd"}]}'}
    event.update(fields)
    return event


def test_put_call_has_one_marketplace_the_body_and_a_once_encoded_utf8_sku():
    call = build_call(ready(reference="A/B 100%é"))
    assert call.path == "/listings/2021-08-01/items/S1/A%2FB%20100%25%C3%A9"
    assert (call.operation, call.method, call.lane) == ("putListingsItem", "PUT", "put")
    assert ("marketplaceIds", "ATVPDKIKX0DER") in call.params and ("mode", "VALIDATION_PREVIEW") not in call.params
    assert json.loads(call.body) == {"productType": "HAIRBAND", "requirements": "LISTING",
                                     "attributes": {"item_name": [{"value": "Bänd"}]}}


def test_preview_uses_validation_preview_and_its_own_lane():
    call = build_call(ready(mode="preview"))
    assert ("mode", "VALIDATION_PREVIEW") in call.params and call.lane == "preview"


def test_delete_has_no_body():
    call = build_call(ready(operation="delete"))
    assert (call.operation, call.method, call.body, call.lane) == ("deleteListingsItem", "DELETE", None, "delete")


def test_a_delete_in_a_preview_run_is_never_a_call():
    not_sent = build_call(ready(mode="preview", operation="delete"))
    assert isinstance(not_sent, NotSent) and not_sent.outcome == "preview_not_sent"
    assert "nothing was changed" in not_sent.message


@pytest.mark.parametrize("operation", ["upsert", "delete"])
def test_a_test_run_goes_to_the_sandbox_whatever_the_operation(operation):
    call = build_call(ready(mode="test", operation=operation))
    assert call.sandbox and ("mode", "VALIDATION_PREVIEW") not in call.params


def test_bad_ready_events_are_refused():
    with pytest.raises(InvalidReadyEvent):
        build_call(ready(product_type=None))
    with pytest.raises(InvalidReadyEvent):
        build_call(ready(attributes_json="[1]"))


@pytest.mark.parametrize(("marketplace", "sandbox", "url"), [
    ("ATVPDKIKX0DER", False, "https://sellingpartnerapi-na.amazon.com"),
    ("A1PA6795UKMFR9", False, "https://sellingpartnerapi-eu.amazon.com"),
    ("A1VC38T7YXB528", True, "https://sandbox.sellingpartnerapi-fe.amazon.com"),
    ("A21TJRUUN4KGV", True, "https://sandbox.sellingpartnerapi-eu.amazon.com"),
])
def test_endpoint_by_region_and_host(marketplace, sandbox, url):
    endpoints = Endpoints()
    assert endpoints.base_url(marketplace, sandbox=sandbox) == url
    assert endpoints.host_kind(url) == ("sandbox" if sandbox else "production")


def test_a_sandbox_override_equal_to_production_is_refused():
    with pytest.raises(ValueError, match="SPAPI_SANDBOX_ENDPOINT equals SPAPI_ENDPOINT"):
        Endpoints("http://emu:1", "http://emu:1/")


def test_overrides_replace_every_region():
    endpoints = Endpoints("http://emu:1/", "http://emu:1/sandbox")
    assert endpoints.base_url("A1VC38T7YXB528", sandbox=False) == "http://emu:1"
    assert endpoints.base_url("ATVPDKIKX0DER", sandbox=True) == "http://emu:1/sandbox"
    assert [endpoints.host_kind(u) for u in ("http://emu:1", "http://emu:1/sandbox", "http://other")] == \
        ["production", "sandbox", None]
    with pytest.raises(UnknownMarketplace):
        Endpoints().base_url("NOPE", sandbox=False)


def test_one_account_from_the_environment():
    accounts = Accounts.from_env({"LWA_CLIENT_ID": "app", "LWA_CLIENT_SECRET": "s3cr3t",
                                  "LWA_REFRESH_TOKEN": "Atzr|tok", "SELLER_ID": "S1"})
    account = accounts.get("S1")
    assert (account.client_id, account.refresh_token, accounts.default_seller) == ("app", "Atzr|tok", "S1")
    assert "s3cr3t" not in repr(account) and "Atzr|tok" not in repr(account)


def test_many_accounts_from_a_file_with_rate_overrides(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps({"client_id": "app", "client_secret": "s", "sellers": {
        "S1": "Atzr|1", "S2": {"refresh_token": "Atzr|2", "rates": {"put": {"rate": 10, "burst": 20}, "preview": 2}}}}))
    accounts = Accounts.from_env({"SPAPI_ACCOUNTS_FILE": str(path)})
    assert accounts.sellers() == ["S1", "S2"]
    overrides = accounts.rate_overrides()
    assert list(overrides) == ["S2"]
    assert (overrides["S2"]["put"].rate, overrides["S2"]["put"].burst, overrides["S2"]["preview"].rate) == (10, 20, 2)


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ('{"sellers": {"S1": {}}}', "needs a refresh_token"),
    ('{"sellers": {"S1": "Atzr|1"}}', "no client_id"),
    ('{"client_id": "a", "client_secret": "b", "sellers": {"S1": {"refresh_token": "t", "rates": {"fly": 1}}}}',
     "unknown lane"),
])
def test_bad_accounts_files_fail_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "accounts.json"
    path.write_text(content)
    with pytest.raises(AccountsError, match=message):
        Accounts.from_env({"SPAPI_ACCOUNTS_FILE": str(path)})
