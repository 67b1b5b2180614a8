"""A preview or test run never changes a live listing, over the whole pipeline as a user runs it:
`catalog-sync publish` → broker → validator → submitter → Amazon emulator (real HTTP, production
and sandbox hosts) → recorder → read API."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from catalog_sync.demo import DEMO_CREDENTIALS, sample_catalog

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

LIVE, OTHER = "HB-1001", "HB-1002"  # valid HAIRBAND items of the sample catalog


def cli(stack, *args: str) -> str:
    """Run a catalog-sync command that opens a run; wait for the run to end; its id."""
    result = subprocess.run([sys.executable, "-m", "catalog_sync", *args], env={**os.environ, **stack.env()},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    stack.wait_for_run(run_id, timeout_s=60)
    return run_id


def publish(stack, tmp_path, lines: list[dict], mode: str) -> str:
    catalog = tmp_path / f"{mode}.jsonl"
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return cli(stack, "publish", str(catalog), "--mode", mode)


def listing_requests(stack) -> list[dict]:
    log = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]
    return [r for r in log if r.get("operation") in ("putListingsItem", "deleteListingsItem", "patchListingsItem")]


def live_at_amazon(stack, sku: str) -> bool:
    """getListingsItem on the production host, as the seller's own tools would ask."""
    token = httpx.post(f"{stack.emulator_url}/auth/o2/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": DEMO_CREDENTIALS["LWA_REFRESH_TOKEN"],
        "client_id": DEMO_CREDENTIALS["LWA_CLIENT_ID"], "client_secret": DEMO_CREDENTIALS["LWA_CLIENT_SECRET"]})
    answer = httpx.get(f"{stack.emulator_url}/listings/2021-08-01/items/{DEMO_CREDENTIALS['SELLER_ID']}/{sku}",
                       params={"marketplaceIds": "ATVPDKIKX0DER"}, timeout=10,
                       headers={"x-amz-access-token": token.json()["access_token"]})
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def item(stack, run_id: str, reference: str) -> dict:
    items = stack.api_get("/api/items", run_id=run_id, reference=reference)["items"]
    (found,) = [i for i in items if i["reference"] == reference]
    return found


def test_preview_and_test_runs_leave_production_listings_alone(stack, tmp_path):
    catalog = {line["reference"]: line for line in map(json.loads, sample_catalog().read_text().splitlines())}
    live, other = catalog[LIVE], catalog[OTHER]
    first = publish(stack, tmp_path, [live, other], "production")
    assert item(stack, first, LIVE)["status"] == "finished" and live_at_amazon(stack, LIVE)
    sent = len(listing_requests(stack))

    delete = {key: live[key] for key in ("reference", "item_type", "marketplace_id", "product_type")}
    delete["operation"] = "delete"
    changed = json.loads(json.dumps(other))
    changed["attributes"]["item_name"][0]["value"] += " (preview)"

    preview = publish(stack, tmp_path, [changed, delete], "preview")
    calls = [(r["endpoint"], r["method"], r["mode"], r["sku"]) for r in listing_requests(stack)[sent:]]
    assert calls and set(calls) == {("production", "PUT", "VALIDATION_PREVIEW", OTHER)}, calls
    assert live_at_amazon(stack, LIVE), "a preview run deleted a live listing"
    shown = item(stack, preview, LIVE)
    assert (shown["status"], shown["outcome"], shown["endpoint"]) == ("finished", "preview_not_sent", "production")
    assert "deletes cannot be previewed" in shown["note"] and "nothing was changed" in shown["note"]
    assert shown["request_id"] is None
    # `retry` of the preview run (every item, in the run's own mode) takes the same route.
    cli(stack, "retry", preview, "--status", "all")
    calls = [(r["endpoint"], r["method"], r["mode"], r["sku"]) for r in listing_requests(stack)[sent:]]
    assert set(calls) == {("production", "PUT", "VALIDATION_PREVIEW", OTHER)}, calls
    assert live_at_amazon(stack, LIVE)
    sent = len(listing_requests(stack))

    test_run = publish(stack, tmp_path, [changed, delete], "test")
    calls = [(r["endpoint"], r["method"], r["mode"], r["sku"]) for r in listing_requests(stack)[sent:]]
    assert {(host, method, sku) for host, method, _mode, sku in calls} == \
        {("sandbox", "PUT", OTHER), ("sandbox", "DELETE", LIVE)}, calls
    assert all(mode is None for *_, mode, _sku in calls)
    assert live_at_amazon(stack, LIVE), "a test run deleted a live listing"
    assert item(stack, test_run, LIVE)["endpoint"] == "test"
