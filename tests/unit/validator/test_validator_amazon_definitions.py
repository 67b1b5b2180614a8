"""Schemas fetched from Amazon's Product Type Definitions API, over a fake transport."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
from validator_fixtures import US, change, schema, text, text_attribute

from catalog_sync.validator.amazon_definitions import AmazonDefinitionsSource, LwaTokens
from catalog_sync.validator.schema_sources import ProductTypeSchemas, SchemaUnavailable
from catalog_sync.validator.validation import ItemValidator

SCHEMA = json.dumps(schema({"item_name": text_attribute()}, required=["item_name"])).encode()
CHECKSUM = base64.b64encode(hashlib.md5(SCHEMA).digest()).decode()


class FakeAmazon:
    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.down = False
        self.schema_body = SCHEMA
        self.token_count = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("unreachable", request=request)
        if request.url.path == "/auth/o2/token":
            self.token_count += 1
            form = dict(x.split("=") for x in request.content.decode().split("&"))
            assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "rt"
            return httpx.Response(200, json={"access_token": f"token-{self.token_count}", "expires_in": 3600})
        if request.url.path.startswith("/definitions/2020-09-01/productTypes/"):
            if request.url.path.endswith("/UNKNOWN"):
                return httpx.Response(404, json={"errors": [{"code": "NotFound", "message": "no"}]})
            assert request.headers["x-amz-access-token"].startswith("token-")
            return httpx.Response(200, json={
                "productType": "HAIRBAND", "requirements": request.url.params["requirements"],
                "productTypeVersion": {"version": "v1"},
                "schema": {"link": {"resource": "https://schemas.example/HAIRBAND.json", "verb": "GET"},
                           "checksum": CHECKSUM}})
        if request.url.host == "schemas.example":
            assert "x-amz-access-token" not in request.headers  # the token never leaves SP-API
            return httpx.Response(200, content=self.schema_body)
        return httpx.Response(500)


@pytest.fixture
def amazon():
    return FakeAmazon()


def source(amazon, tmp_path):
    client = httpx.Client(transport=httpx.MockTransport(amazon))
    tokens = LwaTokens(client, token_url="https://api.example/auth/o2/token", client_id="id",
                       client_secret="secret", refresh_token="rt")
    return AmazonDefinitionsSource(client, tokens, tmp_path, endpoint="https://spapi.example")


def paths(amazon):
    return [r.url.path for r in amazon.requests]


def test_fetches_definition_then_schema_and_validates(amazon, tmp_path):
    validator = ItemValidator(ProductTypeSchemas([source(amazon, tmp_path)]))
    assert validator.validate(change({"item_name": text("ok")}), seller_id="S").issues == []
    verdict = validator.validate(change({}), seller_id="S")
    assert [(i.code, i.path) for i in verdict.issues] == [("schema.required", "/attributes/item_name")]
    assert paths(amazon) == ["/auth/o2/token", "/definitions/2020-09-01/productTypes/HAIRBAND", "/HAIRBAND.json"]
    definition = amazon.requests[1]
    assert definition.url.params["marketplaceIds"] == US
    assert definition.url.params["requirementsEnforced"] == "ENFORCED"


def test_the_disk_cache_by_checksum_spares_the_download(amazon, tmp_path):
    first = source(amazon, tmp_path).load("HAIRBAND", US, "LISTING")
    second = source(amazon, tmp_path).load("HAIRBAND", US, "LISTING")
    assert first.identity == second.identity
    assert paths(amazon).count("/HAIRBAND.json") == 1
    assert paths(amazon).count("/auth/o2/token") == 2  # two processes, one token each


def test_the_access_token_is_reused_until_it_expires(amazon, tmp_path):
    src = source(amazon, tmp_path)
    for requirements in ("LISTING", "LISTING_OFFER_ONLY", "LISTING_PRODUCT_ONLY"):
        src.load("HAIRBAND", US, requirements)
    assert paths(amazon).count("/auth/o2/token") == 1


def test_an_unknown_product_type_is_none(amazon, tmp_path):
    assert source(amazon, tmp_path).load("UNKNOWN", US, "LISTING") is None


def test_a_schema_that_does_not_match_its_checksum_is_refused(amazon, tmp_path):
    amazon.schema_body = SCHEMA + b" "
    with pytest.raises(SchemaUnavailable, match="checksum"):
        source(amazon, tmp_path).load("HAIRBAND", US, "LISTING")


def test_when_amazon_is_unreachable_the_last_schema_is_used(amazon, tmp_path):
    source(amazon, tmp_path).load("HAIRBAND", US, "LISTING")
    amazon.down = True
    assert source(amazon, tmp_path).load("HAIRBAND", US, "LISTING").schema["required"] == ["item_name"]
    with pytest.raises(SchemaUnavailable, match="could not be fetched"):
        source(amazon, tmp_path).load("HAIRBAND", "A1PA6795UKMFR9", "LISTING")


def test_refused_credentials_do_not_leak_into_the_message(tmp_path):
    def refuse(request):
        return httpx.Response(401, json={"error": "invalid_client", "echo": request.content.decode()})

    client = httpx.Client(transport=httpx.MockTransport(refuse))
    tokens = LwaTokens(client, token_url="https://api.example/auth/o2/token", client_id="id",
                       client_secret="s3cr3t", refresh_token="rt-secret")
    src = AmazonDefinitionsSource(client, tokens, tmp_path, endpoint="https://spapi.example")
    with pytest.raises(SchemaUnavailable) as caught:
        src.load("HAIRBAND", US, "LISTING")
    assert "HTTP 401" in caught.value.message
    assert "s3cr3t" not in caught.value.message and "rt-secret" not in caught.value.message
