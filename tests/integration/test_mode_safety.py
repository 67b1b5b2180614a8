"""What each sync mode may send where, checked at Amazon's side (the emulator's request log) for
every (mode, operation, item type): the real submitter over real HTTP against the emulator's
production and sandbox hosts. A preview or test run must never change a live listing."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.server import start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.sync_modes import MODES, OPERATIONS, ModeViolation
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import RetryPolicy
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.listing_requests import ListingCall
from catalog_sync.submitter.spapi_client import ClientSettings, SpApiClient
from catalog_sync.submitter.submission import SpApiPorts, Submitter

ITEM_TYPES = ("category", "product", "variant")
ACCOUNT = Account("S1", "app", "secret", "Atzr|S1")  # the submitter's, and the only one the emulator knows
MARKETPLACE = "ATVPDKIKX0DER"
ATTRS = {"item_name": [{"value": "Band", "marketplace_id": MARKETPLACE}],
         "brand": [{"value": "Acme", "marketplace_id": MARKETPLACE}],
         "condition_type": [{"value": "new_new", "marketplace_id": MARKETPLACE}]}

# What Amazon must see for each combination: (host, method, `mode` query parameter), or nothing.
EXPECTED = {
    ("production", "upsert"): ("production", "PUT", None),
    ("production", "delete"): ("production", "DELETE", None),
    ("test", "upsert"): ("sandbox", "PUT", None),
    ("test", "delete"): ("sandbox", "DELETE", None),
    ("preview", "upsert"): ("production", "PUT", "VALIDATION_PREVIEW"),
    ("preview", "delete"): None,  # Amazon has no preview of deleteListingsItem: never sent
}
COMBINATIONS = list(itertools.product(MODES, OPERATIONS, ITEM_TYPES))


def test_the_expected_table_covers_every_mode_and_operation():
    assert set(EXPECTED) == set(itertools.product(MODES, OPERATIONS))


def ready(mode: str, operation: str, item_type: str, sku: str) -> dict:
    return {"event_id": f"ev-{sku}", "run_id": f"run-{mode}", "mode": mode, "reference": sku,
            "item_type": item_type, "operation": operation, "seller_id": "S1", "marketplace_id": MARKETPLACE,
            "product_type": "HAIRBAND", "requirements": "LISTING",
            "parent_reference": "PARENT" if item_type == "variant" else None,
            "attributes_json": json.dumps(ATTRS), "content_hash": f"h-{sku}"}


def submit_all(emulator, events: list[dict]):
    async def main():
        client = SpApiClient(ClientSettings(token_url=emulator.token_url),
                            endpoints=Endpoints(emulator.url, emulator.sandbox_url, emulator.token_url))
        submitter = Submitter(SpApiPorts(accounts=Accounts({"S1": ACCOUNT}), transport=client,
                                         endpoints=Endpoints(emulator.url, emulator.sandbox_url, emulator.token_url)),
                              policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05))
        try:
            return [await submitter.submit(e) for e in events]
        finally:
            await client.aclose()

    return asyncio.run(main())


def listing_calls(emulator, sku: str) -> list[tuple[str, str, str | None]]:
    return [(r["endpoint"], r["method"], r["mode"]) for r in emulator.requests()
            if r.get("operation") not in ("lwaToken", None) and r.get("sku") == sku]


def live_listing(emulator, sku: str) -> int:
    """HTTP status of getListingsItem on the production host: 200 while the listing exists."""
    token = httpx.post(emulator.token_url, data={"grant_type": "refresh_token", "refresh_token": ACCOUNT.refresh_token,
                                                 "client_id": ACCOUNT.client_id,
                                                 "client_secret": ACCOUNT.client_secret}).json()
    return httpx.get(f"{emulator.url}/listings/2021-08-01/items/S1/{sku}", params={"marketplaceIds": MARKETPLACE},
                     headers={"x-amz-access-token": token["access_token"]}).status_code


@pytest.fixture(scope="module")
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.of([ACCOUNT]))) as running:
        yield running


@pytest.mark.parametrize(("mode", "operation", "item_type"), COMBINATIONS)
def test_each_combination_reaches_only_the_host_and_mode_its_sync_mode_allows(emulator, mode, operation, item_type):
    sku = f"{mode}-{operation}-{item_type}"
    # A live production listing under this SKU: whatever a preview or test run does, it stays.
    (seeded,) = submit_all(emulator, [ready("production", "upsert", "product", sku)])
    assert seeded.result.outcome == "accepted"
    before = len(listing_calls(emulator, sku))

    expected = None if item_type == "category" else EXPECTED[(mode, operation)]
    if expected is not None:  # the retry path too: the first attempt fails
        emulator.emulator.script(503, times=1, sku=sku, method=expected[1])

    (submitted,) = submit_all(emulator, [ready(mode, operation, item_type, sku)])
    calls = listing_calls(emulator, sku)[before:]
    if expected is None:
        assert calls == []
    else:  # a 503, then the retry (and a 429 retried at the preview's 1 req/s): all on the one route
        assert len(calls) >= 2 and set(calls) == {expected}
    assert submitted.result.status == "finished", submitted.result
    if mode != "production":
        assert live_listing(emulator, sku) == 200, "a preview or test run changed a live listing"
    if item_type != "category" and (mode, operation) == ("preview", "delete"):
        assert submitted.result.outcome == "preview_not_sent"
        assert submitted.endpoint == "production"
    elif item_type != "category" and operation == "delete":
        assert submitted.result.outcome == "deleted"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(COMBINATIONS), min_size=1, max_size=8))
def test_any_mix_of_runs_in_one_submitter_sends_each_item_only_where_its_mode_allows(emulator, mix):
    emulator.emulator.reset()
    events = [ready(mode, operation, item_type, f"MIX-{i}") for i, (mode, operation, item_type) in enumerate(mix)]
    results = submit_all(emulator, events)
    for i, ((mode, operation, item_type), submitted) in enumerate(zip(mix, results, strict=True)):
        expected = None if item_type == "category" else EXPECTED[(mode, operation)]
        assert set(listing_calls(emulator, f"MIX-{i}")) == (set() if expected is None else {expected})
        assert submitted.result.outcome != "deleted" or mode != "preview"


# -- the guard at the wire: a request the table does not allow never leaves ---------------------
FORGETFUL_CALLS = [  # what a code path that forgot the table might build, per run mode
    ("preview", "DELETE", "production", ()),                               # the original bug
    ("preview", "PUT", "production", ()),                                  # preview without its mode
    ("test", "PUT", "production", ()),                                     # test run on production
    ("test", "DELETE", "production", ()),
    ("production", "PUT", "sandbox", ()),                                  # production on the sandbox
    ("production", "PUT", "production", (("mode", "VALIDATION_PREVIEW"),)),
    ("test", "DELETE", "sandbox", (("mode", "VALIDATION_PREVIEW"),)),
]


@pytest.mark.parametrize(("mode", "method", "host", "extra"), FORGETFUL_CALLS)
def test_the_client_refuses_a_request_its_run_mode_does_not_allow(emulator, mode, method, host, extra):
    refused = []
    endpoints = Endpoints(emulator.url, emulator.sandbox_url, emulator.token_url)
    sku = f"GUARD-{mode}-{method}-{host}-{len(extra)}"
    call = ListingCall("deleteListingsItem" if method == "DELETE" else "putListingsItem", method,
                       f"/listings/2021-08-01/items/S1/{sku}", (("marketplaceIds", MARKETPLACE), *extra),
                       None if method == "DELETE" else json.dumps({"productType": "HAIRBAND", "attributes": ATTRS}).encode(),
                       "put", mode, host == "sandbox")

    async def main():
        client = SpApiClient(ClientSettings(token_url=emulator.token_url), endpoints=endpoints, on_refused=refused.append)
        try:
            async with client.connection(emulator.sandbox_url if host == "sandbox" else emulator.url) as connection:
                base = emulator.sandbox_url if host == "sandbox" else emulator.url
                return await client.send(connection, ACCOUNT, base, call)
        finally:
            await client.aclose()

    with pytest.raises(ModeViolation) as refusal:
        asyncio.run(main())
    assert refusal.value.dead_letter_reason == "mode_violation" and len(refused) == 1
    assert listing_calls(emulator, sku) == [], "a refused request reached Amazon"
