"""The submitter's SP-API client over real HTTP against the emulator: tokens, retries, final
errors, and the request rate as Amazon's side sees it (the emulator's log)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest

from catalog_sync.amazon_emulator.emulator import EmulatorConfig
from catalog_sync.amazon_emulator.quota import admitted_by_plan
from catalog_sync.amazon_emulator.server import start_in_subprocess, start_in_thread
from catalog_sync.amazon_emulator.tokens import LwaAccounts
from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import RetryPolicy
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.spapi_client import USER_AGENT, ClientSettings, SpApiClient
from catalog_sync.submitter.submission import SpApiPorts, Submitter

SELLERS = [f"SELLER{i:02d}" for i in range(50)]


def account(seller: str) -> Account:
    """Every seller of these tests granted the one application its own refresh token."""
    return Account(seller, "app", "secret", f"Atzr|{seller}")


ATTRS = {"item_name": [{"value": "Band"}], "brand": [{"value": "Acme"}], "condition_type": [{"value": "new_new"}]}


def ready(sku: str, seller: str = "S1", mode: str = "production", attributes=None) -> dict:
    return {"event_id": f"ev-{seller}-{sku}", "run_id": "run-1", "mode": mode, "reference": sku, "item_type": "product",
            "operation": "upsert", "seller_id": seller, "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
            "requirements": "LISTING", "parent_reference": None,
            "attributes_json": json.dumps(ATTRS if attributes is None else attributes), "content_hash": f"h-{sku}"}


@pytest.fixture
def emulator():
    with start_in_thread(EmulatorConfig(accounts=LwaAccounts.of([account("S1")]))) as running:
        yield running


@pytest.fixture
def emulator_process(tmp_path):
    """For rate measurements: an emulator in this process would share the client's GIL and stamp
    arrivals late and bunched; in its own process it stamps them as Amazon would."""
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps({"client_id": "app", "client_secret": "secret",
                                    "sellers": {s: account(s).refresh_token for s in SELLERS}}))
    with start_in_subprocess(["--accounts-file", str(accounts)]) as running:
        yield running


def run_submissions(emulator, events, sellers=("S1",), policy=None):
    async def main():
        client = SpApiClient(ClientSettings(token_url=emulator.token_url), endpoints=Endpoints(emulator.url, emulator.sandbox_url))
        accounts = Accounts({s: account(s) for s in sellers})
        submitter = Submitter(SpApiPorts(accounts=accounts, transport=client,
                                         endpoints=Endpoints(emulator.url, emulator.sandbox_url, emulator.token_url)),
                              policy=policy or RetryPolicy(base_delay_s=0.02, max_delay_s=0.2))
        try:
            return await asyncio.gather(*(submitter.submit(e) for e in events)), client.token_requests
        finally:
            await client.aclose()

    return asyncio.run(main())


def listing_calls(emulator):
    return [r for r in emulator.requests() if r.get("operation") not in ("lwaToken", None)]



def test_one_token_request_serves_every_call_of_a_seller_and_headers_are_sent(emulator):
    results, logins = run_submissions(emulator, [ready(f"SKU-{i}") for i in range(12)])
    assert [r.result.outcome for r in results] == ["accepted"] * 12
    assert logins == 1
    log = emulator.requests()
    assert sum(1 for r in log if r["operation"] == "lwaToken") == 1
    assert {r["user_agent"] for r in log if r["operation"] == "putListingsItem"} == {USER_AGENT}
    assert {r["request_id"] for r in log if r.get("request_id")} == {r.result.request_ids[0] for r in results}


def test_expired_token_is_refreshed_once_and_the_call_succeeds(emulator):
    async def main():
        client = SpApiClient(ClientSettings(token_url=emulator.token_url), endpoints=Endpoints(emulator.url, emulator.sandbox_url))
        submitter = Submitter(SpApiPorts(accounts=Accounts({"S1": account("S1")}), transport=client,
                                         endpoints=Endpoints(emulator.url, emulator.sandbox_url)))
        try:
            await submitter.submit(ready("warm-up"))
            emulator.emulator.expire_tokens()  # the cached token is now refused with 403
            return await submitter.submit(ready("after-expiry")), client.token_requests
        finally:
            await client.aclose()

    done, logins = asyncio.run(main())
    assert (done.result.outcome, done.result.attempts, logins) == ("accepted", 2, 2)
    statuses = [r["status"] for r in listing_calls(emulator) if r["sku"] == "after-expiry"]
    assert statuses == [403, 200]


def test_403_triggers_one_refresh_then_success_and_a_surviving_403_is_final(emulator):
    emulator.emulator.script(403, times=1, sku="once")
    emulator.emulator.script(403, times=5, sku="always")
    (once, always), logins = run_submissions(emulator, [ready("once"), ready("always")])
    assert (once.result.outcome, once.result.attempts) == ("accepted", 2)
    assert (always.result.outcome, always.result.http_status, always.result.attempts) == ("rejected", 403, 2)
    assert always.result.error_code == "Unauthorized"
    assert sum(1 for r in listing_calls(emulator) if r["sku"] == "always") == 2


def test_429_then_success_keeps_every_request_id(emulator):
    emulator.emulator.script(429, times=1, sku="throttled")
    (done,), _ = run_submissions(emulator, [ready("throttled")])
    assert (done.result.outcome, done.result.attempts) == ("accepted", 2)
    logged = [r["request_id"] for r in listing_calls(emulator) if r["sku"] == "throttled"]
    assert done.result.request_ids == logged and len(set(logged)) == 2


def test_503_then_success(emulator):
    emulator.emulator.script(503, times=2, sku="flaky")
    (done,), _ = run_submissions(emulator, [ready("flaky")])
    assert (done.result.outcome, done.result.attempts, done.result.http_status) == ("accepted", 3, 200)


def test_invalid_answer_carries_amazons_issues(emulator):
    (done,), _ = run_submissions(emulator, [ready("thin", attributes={"item_name": [{"value": "x"}]})])
    assert (done.result.outcome, done.result.amazon_status, done.result.error_code) == ("invalid", "INVALID", "90220")
    assert {i["attribute_names"][0] for i in done.result.issues} == {"brand", "condition_type"}
    assert done.result.submission_id


def test_400_is_not_retried(emulator):
    (done,), _ = run_submissions(emulator, [ready("BadSKU")])
    assert (done.result.outcome, done.result.http_status, done.result.attempts) == ("rejected", 400, 1)
    assert len(listing_calls(emulator)) == 1


def test_timeouts_are_retried_then_fail_within_the_budget(emulator):
    emulator.emulator.script(200, times=10, sku="slow", delay_ms=400)

    async def main():
        client = SpApiClient(ClientSettings(token_url=emulator.token_url, read_timeout_s=0.1), endpoints=Endpoints(emulator.url, emulator.sandbox_url))
        submitter = Submitter(SpApiPorts(accounts=Accounts({"S1": account("S1")}), transport=client,
                                         endpoints=Endpoints(emulator.url, emulator.sandbox_url)),
                              policy=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02))
        try:
            return await submitter.submit(ready("slow"))
        finally:
            await client.aclose()

    done = asyncio.run(main())
    assert (done.result.outcome, done.result.attempts, done.result.error_code) == ("failed", 3, "timeout")


def test_one_seller_never_exceeds_its_plan_as_amazon_measures_it(emulator):
    results, _ = run_submissions(emulator, [ready(f"SKU-{i}") for i in range(25)])
    assert all(r.result.outcome == "accepted" for r in results)
    calls = listing_calls(emulator)
    assert [r["status"] for r in calls] == [200] * 25  # not a single 429
    times = sorted(r["monotonic"] for r in calls)
    assert admitted_by_plan(times, UsagePlan(5.0, 10))
    # The burst was used: 8 at once (Amazon's 10 less 2 in reserve), where 5/s would take 1.4 s;
    # then the plan's pace, the whole backlog ~1.4 s sooner than 5/s from the first call.
    assert times[7] - times[0] < 1.0
    assert times[-1] - times[0] < 24 / 5 - 0.4


def test_preview_runs_at_one_request_per_second(emulator):
    results, _ = run_submissions(emulator, [ready(f"P-{i}", mode="preview") for i in range(3)])
    assert [r.result.outcome for r in results] == ["valid"] * 3
    times = [r["monotonic"] for r in listing_calls(emulator)]
    assert admitted_by_plan(times, UsagePlan(1.0, 1)) and times[-1] - times[0] >= 2.0


def test_fifty_sellers_at_once_each_within_its_plan(emulator_process):
    emulator = emulator_process
    events = [ready(f"SKU-{i}", seller=s) for i in range(12) for s in SELLERS]
    results, logins = run_submissions(emulator, events, sellers=SELLERS)
    assert all(r.result.outcome == "accepted" for r in results)
    assert logins == 50
    by_seller = defaultdict(list)
    for r in listing_calls(emulator):
        assert r["status"] == 200
        by_seller[r["seller_id"]].append(r["monotonic"])
    assert len(by_seller) == 50
    assert all(admitted_by_plan(times, UsagePlan(5.0, 10)) for times in by_seller.values())
    # Served side by side: one seller after another, the plan alone would take 50 x 0.6 s = 30 s
    # (each seller's 3 items beyond its burst); together it is about 1 s, plus load.
    times = [t for seller_times in by_seller.values() for t in seller_times]
    assert max(times) - min(times) < 10.0
