"""End to end: publish → validator → submitter → Amazon emulator (real HTTP) → recorder → read API,
each worker a separate process over a real Kafka-protocol broker."""

import json

import httpx
import pytest

from catalog_sync.demo import sample_catalog

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def all_items(stack, run_id):
    body = httpx.get(f"{stack.api_url}/api/items", params={"run_id": run_id, "limit": 100}, timeout=10).json()
    return {item["reference"]: item for item in body["items"]}, body["summary"]


def test_sample_catalog_reaches_its_final_status_with_amazon_request_ids(stack):
    catalog = [json.loads(line) for line in sample_catalog().read_text().splitlines() if line.strip()]
    run_id = stack.publish(sample_catalog(), "production")
    run = stack.wait_for_run(run_id, timeout_s=120)
    assert run["status"] == "finished_with_errors"
    items, summary = all_items(stack, run_id)
    assert set(items) == {c["reference"] for c in catalog}
    assert summary == {"total": len(catalog), "pending": 0, "error": 8, "finished": len(catalog) - 8}

    amazon = [r for r in httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]
              if r.get("operation") in ("putListingsItem", "deleteListingsItem")]
    by_request_id = {r["request_id"]: r for r in amazon}

    # Categories never call Amazon; local validation failures never reach it either.
    sent_skus = {r["sku"] for r in amazon}
    for reference, item in items.items():
        if item["item_type"] == "category" or (item["error"] or {}).get("type") == "validation":
            assert reference not in sent_skus, f"{reference} should not have been sent"
            assert item["request_id"] is None

    # Amazon turns BP-3000 down: its variants are not sent, and say which parent and why.
    for reference in ("BP-3000-BLACK", "BP-3000-FOREST"):
        assert reference not in sent_skus and items[reference]["error"]["code"] == "parent_not_accepted"
        assert "BP-3000" in items[reference]["error"]["message"]

    for reference in ("HB-1001", "HB-1002", "BP-2001"):
        item = items[reference]
        assert item["status"] == "finished"
        assert item["endpoint"] == "production"
        request = by_request_id[item["request_id"]]
        assert (request["sku"], request["status"], request["operation"]) == (reference, 200, "putListingsItem")
        assert request["seller_id"] == item["seller_id"] == "A3DEMOSELLER01"
        assert item["submission_id"]

    deleted = items["HB-0999"]
    assert by_request_id[deleted["request_id"]]["operation"] == "deleteListingsItem"

    bad = items["BadSKU"]
    assert bad["status"] == "error" and bad["error"]["type"] == "amazon_response"
    assert by_request_id[bad["request_id"]]["status"] == 400

    invalid = items["HB-1003"]
    assert invalid["error"]["type"] == "validation"
    codes = {d["code"] for d in invalid["error"]["details"]}
    assert {"schema.required", "schema.maxUtf8ByteLength"} <= codes
    assert items["CAT-GARDEN-HOSES"]["error"]["code"] == "product_type.unknown"
