"""Clients no one here wrote, against the emulator over real HTTP: Amazon's official Python SDK
(amzn-sp-api) and the community's python-amazon-sp-api, each pointed at the emulator's base URL
and Login with Amazon URL, through every Listings operation the project uses (put, patch, delete,
get; normal and VALIDATION_PREVIEW; the sandbox) and the 400/403/404/429 answers. Each must parse
every answer without error and see what Amazon would give."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
import sp_api.auth.access_token_client
from sp_api.api import ListingsItems
from sp_api.auth import AccessTokenClient
from sp_api.auth.exceptions import AuthorizationError
from sp_api.base import Marketplaces
from sp_api.base.exceptions import (
    SellingApiBadRequestException,
    SellingApiForbiddenException,
    SellingApiNotFoundException,
    SellingApiRequestThrottledException,
)
from spapi import SPAPIClient, SPAPIConfig
from spapi.api.listings_items_v2021_08_01.listings_api import ListingsApi
from spapi.models.listings_items_v2021_08_01 import (
    ListingsItemPatchRequest,
    ListingsItemPutRequest,
    PatchOperation,
)
from spapi.rest import ApiException

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.spapi_accounts import SellerCredentials

US = "ATVPDKIKX0DER"
SELLER = SellerCredentials("A1CONFORMSELLER", "amzn1.application-oa2-client.conform", "conform-secret",
                           "Atzr|conform-refresh")
OTHER = SellerCredentials("A2OTHERSELLER", SELLER.client_id, SELLER.client_secret, "Atzr|other-refresh")
ATTRIBUTES = {
    "item_name": [{"value": "Satin Headband", "language_tag": "en_US", "marketplace_id": US}],
    "brand": [{"value": "Maple & Rye", "marketplace_id": US}],
    "condition_type": [{"value": "new_new", "marketplace_id": US}],
    "purchasable_offer": [{"currency": "USD", "audience": "ALL", "marketplace_id": US,
                           "our_price": [{"schedule": [{"value_with_tax": 15.99}]}]}],
    "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 40}],
}
RENAMED = [{"value": "Satin Headband, Blush", "language_tag": "en_US", "marketplace_id": US}]
EVERY_GET_DATA_SET = ["summaries", "attributes", "issues", "offers", "fulfillmentAvailability", "procurement",
                      "relationships", "productTypes"]
PREVIEW_DATA = ["identifiers", "issues"]


@pytest.fixture
def emulator():
    # Unthrottled but for the 429 tests, which set a plan: preview's 1 req/s would only slow these down.
    config = EmulatorConfig(accounts=LwaAccounts.of([SELLER, OTHER]), throttled=False)
    with start_in_thread(config) as running:
        yield running


# -- Amazon's official SDK ------------------------------------------------------------------------
def official(base_url: str, token_url: str, account: SellerCredentials = SELLER) -> ListingsApi:
    """The SDK's documented overrides: `endpoint` for the SP-API host, `oauth_endpoint` for LWA."""
    config = SPAPIConfig(client_id=account.client_id, client_secret=account.client_secret,
                         refresh_token=account.refresh_token, region="NA")
    return ListingsApi(SPAPIClient(config, oauth_endpoint=token_url, endpoint=base_url).api_client)


def official_errors(api: ListingsApi, refused: ApiException):
    """The SDK raises ApiException with the raw body; its own ErrorList model must parse it."""
    return api.api_client.deserialize(SimpleNamespace(data=refused.body), "ErrorList").errors


def rate_limit(api: ListingsApi) -> str | None:
    return api.api_client.last_response.getheader("x-amzn-RateLimit-Limit")


def test_official_sdk_puts_patches_reads_and_deletes_a_listing(emulator):
    api = official(emulator.url, emulator.token_url)
    put = api.put_listings_item(SELLER.seller_id, "HB-1", [US], ListingsItemPutRequest(
        product_type="HAIRBAND", requirements="LISTING", attributes=ATTRIBUTES), included_data=["issues"],
        issue_locale="en_US")
    assert (put.sku, put.status, put.issues) == ("HB-1", "ACCEPTED", []) and put.submission_id
    assert rate_limit(api) == "5.0"

    patched = api.patch_listings_item(SELLER.seller_id, "HB-1", [US], ListingsItemPatchRequest(
        product_type="HAIRBAND", patches=[PatchOperation(op="replace", path="/attributes/item_name", value=RENAMED)]))
    assert patched.status == "ACCEPTED"

    item = api.get_listings_item(SELLER.seller_id, "HB-1", [US], included_data=EVERY_GET_DATA_SET)
    (summary,) = item.summaries
    assert (summary.marketplace_id, summary.product_type, summary.item_name) == (US, "HAIRBAND", RENAMED[0]["value"])
    assert summary.status == ["BUYABLE", "DISCOVERABLE"] and summary.condition_type == "new_new"
    assert summary.asin and isinstance(summary.created_date, datetime.datetime)
    assert summary.last_updated_date >= summary.created_date
    assert item.attributes["item_name"] == RENAMED and item.issues == []
    (offer,) = item.offers
    assert (offer.offer_type, offer.price.currency_code, offer.price.amount) == ("B2C", "USD", "15.99")
    assert [(f.fulfillment_channel_code, f.quantity) for f in item.fulfillment_availability] == [("DEFAULT", 40)]
    assert [(p.marketplace_id, p.product_type) for p in item.product_types] == [(US, "HAIRBAND")]
    assert [r.marketplace_id for r in item.relationships] == [US] and item.procurement == []

    deleted = api.delete_listings_item(SELLER.seller_id, "HB-1", [US])
    assert deleted.status == "ACCEPTED"
    with pytest.raises(ApiException) as gone:
        api.get_listings_item(SELLER.seller_id, "HB-1", [US])
    assert gone.value.status == 404 and gone.value.headers["x-amzn-RateLimit-Limit"] == "5.0"
    assert official_errors(api, gone.value)[0].code == "NOT_FOUND"


def test_official_sdk_reads_previews_and_rejections(emulator):
    api = official(emulator.url, emulator.token_url)
    good = ListingsItemPutRequest(product_type="HAIRBAND", requirements="LISTING", attributes=ATTRIBUTES)
    valid = api.put_listings_item(SELLER.seller_id, "HB-P", [US], good, mode="VALIDATION_PREVIEW",
                                  included_data=PREVIEW_DATA)
    assert (valid.status, valid.identifiers, valid.issues) == ("VALID", [], [])
    thin = ListingsItemPutRequest(product_type="HAIRBAND", attributes={"item_name": ATTRIBUTES["item_name"]})
    invalid = api.put_listings_item(SELLER.seller_id, "HB-P", [US], thin, mode="VALIDATION_PREVIEW",
                                    included_data=PREVIEW_DATA)
    assert invalid.status == "INVALID"
    assert [(i.code, i.severity, i.attribute_names, i.categories) for i in invalid.issues] == [
        ("90220", "ERROR", ["brand"], ["MISSING_ATTRIBUTE"]), ("90220", "ERROR", ["condition_type"], ["MISSING_ATTRIBUTE"])]
    unknown = api.put_listings_item(SELLER.seller_id, "HB-X", [US], ListingsItemPutRequest(
        product_type="NOT_A_TYPE", attributes=ATTRIBUTES))
    assert (unknown.status, [(i.code, i.categories) for i in unknown.issues]) == ("INVALID", [("4000003", [])])
    patch_preview = api.patch_listings_item(SELLER.seller_id, "HB-P", [US], ListingsItemPatchRequest(
        product_type="HAIRBAND", patches=[PatchOperation(op="delete", path="/attributes/brand")]),
        mode="VALIDATION_PREVIEW")
    assert patch_preview.status == "VALID"


def test_official_sdk_sees_amazons_400_403_and_429(emulator):
    api = official(emulator.url, emulator.token_url)
    good = ListingsItemPutRequest(product_type="HAIRBAND", requirements="LISTING", attributes=ATTRIBUTES)
    with pytest.raises(ApiException) as marketplace:
        api.put_listings_item(SELLER.seller_id, "HB-400", ["XXXX"], good)
    assert marketplace.value.status == 400 and marketplace.value.headers["x-amzn-RateLimit-Limit"] == "5.0"
    assert [(e.code, e.message) for e in official_errors(api, marketplace.value)] == [
        ("InvalidInput", "Invalid 'marketplaceIds' provided.")]
    with pytest.raises(ApiException) as nested:
        api.patch_listings_item(SELLER.seller_id, "HB-400", [US], ListingsItemPatchRequest(
            product_type="HAIRBAND", patches=[PatchOperation(op="replace", path="/attributes/item_name/0/value",
                                                             value=RENAMED)]))
    assert nested.value.status == 400
    assert official_errors(api, nested.value)[0].message == "Invalid path provided in patch at index of 0."
    with pytest.raises(ApiException) as foreign:  # SELLER's token, OTHER's listings
        api.get_listings_item(OTHER.seller_id, "HB-403", [US])
    assert foreign.value.status == 403 and official_errors(api, foreign.value)[0].code == "Unauthorized"
    emulator.control("config", throttled=True, plans={"delete": [0.01, 1]})
    api.delete_listings_item(SELLER.seller_id, "HB-429", [US])
    with pytest.raises(ApiException) as throttled:
        api.delete_listings_item(SELLER.seller_id, "HB-429", [US])
    assert throttled.value.status == 429 and official_errors(api, throttled.value)[0].code == "QuotaExceeded"


def test_official_sdk_reads_the_static_sandbox(emulator):
    api = official(emulator.sandbox_url, emulator.token_url)
    any_body = ListingsItemPutRequest(product_type="HAIRBAND", attributes={})
    assert api.put_listings_item(SELLER.seller_id, "MY-SKU", [US], any_body).sku == "GM-ZDPI-9B4E"
    valid = api.put_listings_item(SELLER.seller_id, "VALIDATION_VALID", [US], any_body, mode="VALIDATION_PREVIEW",
                                  included_data=PREVIEW_DATA)
    assert (valid.status, valid.identifiers[0].asin) == ("VALID", "B07N4M94X4")
    invalid = api.patch_listings_item(SELLER.seller_id, "VALIDATION_INVALID", [US], ListingsItemPatchRequest(
        product_type="HAIRBAND", patches=[PatchOperation(op="delete", path="/attributes/brand")]),
        mode="VALIDATION_PREVIEW", included_data=PREVIEW_DATA)
    assert [i.enforcements.actions[0].action for i in invalid.issues] == ["ATTRIBUTE_SUPPRESSED"]
    assert api.delete_listings_item(SELLER.seller_id, "MY-SKU", [US]).status == "ACCEPTED"
    item = api.get_listings_item(SELLER.seller_id, "MY-SKU", [US], included_data=EVERY_GET_DATA_SET)
    assert [s.product_type for s in item.summaries] == ["LUGGAGE", "LUGGAGE"]
    assert isinstance(item.issues[1].enforcements.exemption.expiry_date, datetime.datetime)
    with pytest.raises(ApiException) as bad:
        api.get_listings_item(SELLER.seller_id, "BadSKU", [US])
    assert bad.value.status == 400 and official_errors(api, bad.value)[0].code == "BAD_REQUEST"


# -- python-amazon-sp-api ------------------------------------------------------------------------
def community(base_url: str, token_url: str, account: SellerCredentials = SELLER):
    """The library's hooks: `auth_token_client_class` says where Login with Amazon is; the SP-API
    host comes from the marketplace, so the client's `endpoint` is set after construction."""
    lwa = urlsplit(token_url)
    emulator_lwa = type("EmulatorLwa", (AccessTokenClient,),
                        {"scheme": f"{lwa.scheme}://", "host": lwa.netloc, "path": lwa.path})
    client = ListingsItems(Marketplaces.US, refresh_token=account.refresh_token, version="2021-08-01",
                           credentials={"lwa_app_id": account.client_id, "lwa_client_secret": account.client_secret},
                           auth_token_client_class=emulator_lwa)
    client.endpoint = base_url
    return client


@pytest.fixture(autouse=True)
def fresh_community_tokens():
    # The library caches access tokens per refresh token for the whole process; each test's
    # emulator issues its own.
    sp_api.auth.access_token_client.cache.clear()
    yield
    sp_api.auth.access_token_client.cache.clear()


def test_community_client_puts_patches_reads_and_deletes_a_listing(emulator):
    client = community(emulator.url, emulator.token_url)
    put = client.put_listings_item(SELLER.seller_id, "HB-1", marketplaceIds=[US], includedData=["issues"],
                                   body={"productType": "HAIRBAND", "requirements": "LISTING", "attributes": ATTRIBUTES})
    assert (put.payload["status"], put.payload["issues"], put.rate_limit) == ("ACCEPTED", [], "5.0")
    patched = client.patch_listings_item(SELLER.seller_id, "HB-1", marketplaceIds=[US], body={
        "productType": "HAIRBAND", "patches": [{"op": "replace", "path": "/attributes/item_name", "value": RENAMED}]})
    assert patched.payload["status"] == "ACCEPTED"
    item = client.get_listings_item(SELLER.seller_id, "HB-1", marketplaceIds=[US], includedData=EVERY_GET_DATA_SET)
    (summary,) = item.payload["summaries"]
    assert summary["itemName"] == RENAMED[0]["value"] and summary["status"] == ["BUYABLE", "DISCOVERABLE"]
    assert datetime.datetime.fromisoformat(summary["createdDate"]) <= datetime.datetime.fromisoformat(
        summary["lastUpdatedDate"])
    assert item.payload["offers"][0]["price"] == {"currencyCode": "USD", "amount": "15.99"}
    deleted = client.delete_listings_item(SELLER.seller_id, "HB-1", marketplaceIds=[US])
    assert deleted.payload["status"] == "ACCEPTED"
    with pytest.raises(SellingApiNotFoundException) as gone:
        client.get_listings_item(SELLER.seller_id, "HB-1", marketplaceIds=[US])
    assert gone.value.amzn_code == "NOT_FOUND" and gone.value.headers["x-amzn-RateLimit-Limit"] == "5.0"


def test_community_client_reads_previews_and_rejections(emulator):
    client = community(emulator.url, emulator.token_url)
    valid = client.put_listings_item(SELLER.seller_id, "HB-P", marketplaceIds=[US], mode="VALIDATION_PREVIEW",
                                     includedData=PREVIEW_DATA, body={"productType": "HAIRBAND",
                                                                      "requirements": "LISTING",
                                                                      "attributes": ATTRIBUTES})
    assert (valid.payload["status"], valid.payload["identifiers"]) == ("VALID", [])
    unknown = client.put_listings_item(SELLER.seller_id, "HB-X", marketplaceIds=[US], body={
        "productType": "NOT_A_TYPE", "attributes": ATTRIBUTES})
    assert unknown.payload["status"] == "INVALID" and unknown.payload["issues"][0]["code"] == "4000003"


def test_community_client_sees_amazons_400_403_429_and_lwa_refusals(emulator):
    wrong_secret = SellerCredentials(OTHER.seller_id, OTHER.client_id, "not-the-secret", OTHER.refresh_token)
    with pytest.raises(AuthorizationError) as refused:
        community(emulator.url, emulator.token_url, wrong_secret).get_listings_item(
            OTHER.seller_id, "HB-1", marketplaceIds=[US])
    assert (refused.value.status_code, refused.value.error_code) == (401, "invalid_client")
    client = community(emulator.url, emulator.token_url)
    with pytest.raises(SellingApiBadRequestException) as nested:
        client.patch_listings_item(SELLER.seller_id, "HB-400", marketplaceIds=[US], body={
            "productType": "HAIRBAND", "patches": [{"op": "replace", "path": "/attributes/item_name/0/value",
                                                    "value": RENAMED}]})
    assert nested.value.message == "Invalid path provided in patch at index of 0."
    with pytest.raises(SellingApiBadRequestException) as marketplace:
        client.get_listings_item(SELLER.seller_id, "HB-400", marketplaceIds=["XXXX"])
    assert marketplace.value.message == "Invalid 'marketplaceIds' provided."
    with pytest.raises(SellingApiForbiddenException) as foreign:
        client.get_listings_item(OTHER.seller_id, "HB-403", marketplaceIds=[US])
    assert foreign.value.amzn_code == "Unauthorized"
    emulator.control("config", throttled=True, plans={"get": [0.01, 1]})
    with pytest.raises(SellingApiNotFoundException):
        client.get_listings_item(SELLER.seller_id, "HB-429", marketplaceIds=[US])
    with pytest.raises(SellingApiRequestThrottledException) as throttled:
        client.get_listings_item(SELLER.seller_id, "HB-429", marketplaceIds=[US])
    assert throttled.value.amzn_code == "QuotaExceeded"


def test_community_client_reads_the_static_sandbox(emulator):
    client = community(emulator.sandbox_url, emulator.token_url)
    put = client.put_listings_item(SELLER.seller_id, "MY-SKU", marketplaceIds=[US], body={
        "productType": "HAIRBAND", "attributes": {}})
    assert (put.payload["sku"], put.payload["status"]) == ("GM-ZDPI-9B4E", "ACCEPTED")
    item = client.get_listings_item(SELLER.seller_id, "MY-SKU", marketplaceIds=[US], includedData=["summaries"])
    assert item.payload["summaries"][0]["itemName"] == "Hardside Carry-On Spinner Suitcase Luggage"
    deleted = client.delete_listings_item(SELLER.seller_id, "MY-SKU", marketplaceIds=[US])
    assert deleted.payload["submissionId"] == "f1dc2914-75dd-11ea-bc55-0242ac130003"
    with pytest.raises(SellingApiBadRequestException) as bad:
        client.put_listings_item(SELLER.seller_id, "BadSKU", marketplaceIds=[US], body={"productType": "X",
                                                                                          "attributes": {}})
    assert bad.value.amzn_code == "BAD_REQUEST"
