"""Variation families over the whole pipeline with every worker scaled to two processes: a parent
reaches Amazon before its variants whatever the file's order, and the variants of a parent that
failed (locally, or at Amazon) are not sent and say why."""

import copy
import json
import os
import subprocess
import sys

import httpx
import pytest

from catalog_sync.demo import DemoStack, sample_catalog
from catalog_sync.runtime.processes import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def stack(tmp_path, kafka_env):
    stack = DemoStack(tmp_path / "stack", api_port=free_port(), kafka_env=kafka_env,
                      scale={"validator": 2, "submitter": 2, "recorder": 2})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def family(parent: str, lines: dict, *, parent_brand: bool = True) -> list[dict]:
    """A backpack family of the sample catalog under new references, variants listed first."""
    top = copy.deepcopy(lines["BP-3000"]) | {"reference": parent}
    # The sample's parent lacks condition_type, which Amazon (the emulator) requires of a LISTING.
    top["attributes"]["condition_type"] = copy.deepcopy(lines["BP-3000-BLACK"]["attributes"]["condition_type"])
    if not parent_brand:
        del top["attributes"]["brand"]  # required by the product type: fails locally
    children = [copy.deepcopy(lines[f"BP-3000-{colour}"]) | {"reference": f"{parent}-{colour}",
                                                              "parent_reference": parent}
                for colour in ("BLACK", "FOREST")]
    for child in children:
        for relation in child["attributes"]["child_parent_sku_relationship"]:
            relation["parent_sku"] = parent
    return [*children, top]


def test_parents_go_first_and_children_of_a_failed_parent_are_never_sent(stack, tmp_path):
    lines = {line["reference"]: line for line in map(json.loads, sample_catalog().read_text().splitlines())}
    catalog = family("FAM-OK", lines) + family("FAM-BAD", lines, parent_brand=False) + family("FAM-REJ", lines)
    # Amazon turns the third parent down whatever it holds (a final 400, not retried).
    httpx.post(f"{stack.emulator_url}/_emulator/script", json={"status": 400, "times": 100, "sku": "FAM-REJ"},
               timeout=10).raise_for_status()
    path = tmp_path / "families.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in catalog))
    published = subprocess.run([sys.executable, "-m", "catalog_sync", "publish", str(path), "--mode", "production"],
                               env={**os.environ, **stack.env()}, capture_output=True, text=True, timeout=60)
    assert published.returncode == 0, published.stderr
    run_id = published.stdout.strip()
    stack.wait_for_run(run_id, timeout_s=90)

    log = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]
    puts = [r["sku"] for r in log if r.get("operation") == "putListingsItem"]
    assert "FAM-OK" in puts
    for child in ("FAM-OK-BLACK", "FAM-OK-FOREST"):
        assert child in puts and puts.index("FAM-OK") < puts.index(child), puts
    assert not {"FAM-BAD", "FAM-BAD-BLACK", "FAM-BAD-FOREST", "FAM-REJ-BLACK", "FAM-REJ-FOREST"} & set(puts), puts

    items = {i["reference"]: i for i in stack.api_get("/api/items", run_id=run_id, limit=100)["items"]}
    assert [items[r]["status"] for r in ("FAM-OK", "FAM-OK-BLACK", "FAM-OK-FOREST")] == ["finished"] * 3
    for child in ("FAM-BAD-BLACK", "FAM-BAD-FOREST"):
        error = items[child]["error"]
        assert (items[child]["status"], error["type"]) == ("error", "validation")
        assert any(d["code"] == "variant.parent_failed" and "FAM-BAD" in d["message"] for d in error["details"])
    for child in ("FAM-REJ-BLACK", "FAM-REJ-FOREST"):
        error = items[child]["error"]
        assert (items[child]["status"], error["code"]) == ("error", "parent_not_accepted")
        assert "FAM-REJ" in error["message"] and "not sent" in error["message"]
