"""Issue 18 item 5 as a user sees it, over the real pipeline (separate processes, the emulator over
real HTTP): a listing Amazon turns down after accepting it ends as an Amazon error with the request
id of the look that found it, the others go live, and the next run sends it again although the
file did not change (`publish --changed-only` does not skip it)."""

import os
import subprocess
import sys

import httpx
import pytest

from catalog_sync.demo import DemoStack, sample_catalog
from catalog_sync.runtime.processes import free_port
from tests.support.background import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
TURNED_DOWN = "HB-1001"


@pytest.fixture
def stack(tmp_path, kafka_env):
    quick = {"RECONCILE_FIRST_LOOK_S": "0.5", "RECONCILE_MAX_INTERVAL_S": "1", "RECONCILE_TIME_LIMIT_S": "60"}
    stack = DemoStack(tmp_path / "stack", api_port=free_port(), kafka_env=kafka_env, extra_env=quick)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def cli(stack, *args):
    return subprocess.run([sys.executable, "-m", "catalog_sync", *args], env={**os.environ, **stack.env()},
                          capture_output=True, text=True, timeout=60)


def items_of(stack, run_id):
    body = httpx.get(f"{stack.api_url}/api/items", params={"run_id": run_id, "limit": 100}, timeout=10).json()
    return {item["reference"]: item for item in body["items"]}


def amazon_requests(stack):
    return httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]


def test_a_listing_turned_down_after_acceptance_is_an_error_and_is_sent_again(stack, tmp_path):
    httpx.post(f"{stack.emulator_url}/_emulator/after-acceptance",
               json={"sku": TURNED_DOWN, "issues_after_s": 1.0}, timeout=10).raise_for_status()
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(sample_catalog().read_text())
    first = cli(stack, "publish", str(catalog), "--mode", "production")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.strip()
    stack.wait_for_run(run_id, timeout_s=120)

    def settled():
        items = items_of(stack, run_id)
        accepted = [i for i in items.values() if i["outcome"] == "accepted" or i["listing_state"]]
        return items if accepted and all(i["listing_state"] in ("live", "error") for i in accepted) else None

    items = wait_until(settled, timeout_s=60, interval_s=0.5)
    turned_down = items[TURNED_DOWN]
    assert (turned_down["status"], turned_down["listing_state"]) == ("error", "error")
    assert (turned_down["error"]["type"], turned_down["error"]["code"]) == ("amazon_response", "8541")
    gets = [r for r in amazon_requests(stack) if r.get("sku") == TURNED_DOWN and r["operation"] == "getListingsItem"]
    assert turned_down["request_id"] == gets[-1]["request_id"]
    live = [ref for ref, i in items.items() if i["listing_state"] == "live"]
    assert live and all(items[ref]["status"] == "finished" for ref in live)
    run = httpx.get(f"{stack.api_url}/api/runs/{run_id}", timeout=10).json()
    assert run["status"] == "finished_with_errors"

    # The same file again, only what changed: the turned-down item is not "unchanged".
    httpx.post(f"{stack.emulator_url}/_emulator/after-acceptance", json={"sku": TURNED_DOWN, "live_after_s": 0},
               timeout=10).raise_for_status()
    puts_before = sum(1 for r in amazon_requests(stack) if r.get("sku") == TURNED_DOWN and r["operation"] == "putListingsItem")
    second = cli(stack, "publish", str(catalog), "--mode", "production", "--changed-only")
    assert second.returncode == 0, second.stderr
    second_id = second.stdout.strip()
    stack.wait_for_run(second_id, timeout_s=120)
    again = wait_until(lambda: (i := items_of(stack, second_id).get(TURNED_DOWN)) and i["listing_state"] == "live" and i,
                       timeout_s=60, interval_s=0.5)
    assert (again["status"], again["outcome"]) == ("finished", "accepted")
    puts = sum(1 for r in amazon_requests(stack) if r.get("sku") == TURNED_DOWN and r["operation"] == "putListingsItem")
    assert puts == puts_before + 1
    assert live[0] not in items_of(stack, second_id)  # what went live was skipped as unchanged
