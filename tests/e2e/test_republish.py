"""`publish --changed-only` and `retry` as a user runs them, over the real pipeline: broker, validator,
submitter, Amazon emulator (real HTTP), recorder, read API."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from catalog_sync.demo import sample_catalog

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def cli(stack, *args):
    result = subprocess.run([sys.executable, "-m", "catalog_sync", *args], env={**os.environ, **stack.env()},
                            capture_output=True, text=True, timeout=60)
    return result


def items_of(stack, run_id):
    body = httpx.get(f"{stack.api_url}/api/items", params={"run_id": run_id, "limit": 100}, timeout=10).json()
    return {item["reference"]: item for item in body["items"]}


def amazon_skus_since(stack, seen: int) -> list[str]:
    requests = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]
    calls = [r for r in requests if r.get("operation") in ("putListingsItem", "deleteListingsItem")]
    return [r["sku"] for r in calls[seen:]]


def test_changed_only_skips_what_finished_and_retry_resends_only_the_errors(stack, tmp_path):
    lines = [json.loads(line) for line in sample_catalog().read_text().splitlines() if line.strip()]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first = cli(stack, "publish", str(catalog), "--mode", "production")
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip()
    stack.wait_for_run(first_id, timeout_s=60)
    before = items_of(stack, first_id)
    errors = {ref for ref, item in before.items() if item["status"] == "error"}
    at_amazon = {ref for ref, item in before.items() if item["status"] == "finished" and item["item_type"] != "category"}
    assert errors and len(at_amazon) >= 3
    sent_so_far = len(amazon_skus_since(stack, 0))

    # (i) The same file with one finished item edited: what Amazon already holds is skipped.
    edited = "HB-1001"
    assert edited in at_amazon
    for line in lines:
        if line["reference"] == edited:
            line["attributes"]["item_name"][0]["value"] += " (2027 edition)"
    catalog.write_text("".join(json.dumps(line) + "\n" for line in lines))
    second = cli(stack, "publish", str(catalog), "--mode", "production", "--changed-only")
    assert second.returncode == 0, second.stderr
    skipped = at_amazon - {edited}
    assert f"{len(skipped)} unchanged item(s) skipped" in second.stderr
    second_id = second.stdout.strip()
    run = stack.wait_for_run(second_id, timeout_s=60)
    assert run["counts"]["total"] == len(lines) - len(skipped)
    resent = items_of(stack, second_id)
    assert edited in resent and not skipped & set(resent)
    assert resent[edited]["status"] == "finished"
    sent_again = amazon_skus_since(stack, sent_so_far)
    assert edited in sent_again and not skipped & set(sent_again)

    # (ii) Retry the first run: only its error items, from the recorded payloads, as a new run.
    retry = cli(stack, "retry", first_id)
    assert retry.returncode == 0, retry.stderr
    retry_id = retry.stdout.strip()
    assert retry_id not in (first_id, second_id)
    run = stack.wait_for_run(retry_id, timeout_s=60)
    assert run["counts"]["total"] == len(errors) and run["mode"] == "production"
    assert run["source"] == f"retry of {first_id}"
    assert set(items_of(stack, retry_id)) == errors

    # No such items, or no such run: a clear refusal, nothing published.
    for args, message in ((["retry", retry_id, "--status", "pending"], "has no pending items"),
                          (["retry", "run-nope"], "no run run-nope")):
        refused = cli(stack, *args)
        assert refused.returncode == 2 and message in refused.stderr and refused.stdout == ""
