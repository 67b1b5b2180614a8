"""End to end with the bulk lane on (issue 21): a run whose backlog for one seller is above the
threshold goes to Amazon as JSON_LISTINGS_FEEDs and every item ends with its own status and
feed/message IDs in the read API; a one-item run published while a feed is in flight goes item by
item and finishes first. Amazon time 50x faster on the emulator and the submitter."""

import json

import httpx
import pytest

from catalog_sync.demo import DemoStack, sample_catalog
from catalog_sync.runtime.processes import free_port
from tests.support.background import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SCALE = "50"
ITEMS = 400


@pytest.fixture
def stack(tmp_path, kafka_env):
    stack = DemoStack(tmp_path / "stack", api_port=free_port(), kafka_env=kafka_env,
                      emulator_args=["--time-scale", SCALE, "--feed-processing-s", "600"],
                      extra_env={"SUBMITTER_BULK_LANE": "on", "SUBMITTER_FEED_THRESHOLD": "40",
                                 "SUBMITTER_FEED_LINGER_S": "25", "SUBMITTER_FEED_POLL_S": "10",
                                 "SPAPI_TIME_SCALE": SCALE})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def catalog(path, references):
    template = next(json.loads(line) for line in sample_catalog().read_text().splitlines()
                    if line.strip() and json.loads(line)["reference"] == "HB-1001")
    path.write_text("".join(json.dumps({**template, "reference": r}) + "\n" for r in references))
    return path


def items_of(stack, run_id):
    found, cursor = {}, None
    while True:
        page = stack.api_get("/api/items", run_id=run_id, limit=500, **({"cursor": cursor} if cursor else {}))
        found.update({i["reference"]: i for i in page["items"]})
        cursor = page["next_cursor"]
        if not cursor:
            return found


def test_a_backlog_goes_by_feed_and_an_urgent_run_goes_item_by_item(stack, tmp_path):
    backlog = stack.publish(catalog(tmp_path / "backlog.jsonl", [f"BULK-{n:04d}" for n in range(ITEMS)]), "production")

    def feeds_created():
        log = httpx.get(f"{stack.emulator_url}/_emulator/requests", timeout=10).json()["requests"]
        return [r for r in log if r.get("operation") == "createFeed" and r["status"] == 202]

    wait_until(feeds_created, timeout_s=120, message="a feed created")
    urgent = stack.publish(catalog(tmp_path / "urgent.jsonl", ["URGENT-1"]), "production")
    urgent_run = stack.wait_for_run(urgent, timeout_s=120)
    assert urgent_run["status"] == "finished"
    assert stack.find_run(backlog)["status"] == "in_progress"  # the feed is still out while the change is done
    run = stack.wait_for_run(backlog, timeout_s=180)
    assert run["status"] == "finished" and run["counts"]["finished"] == ITEMS

    items = items_of(stack, backlog)
    assert len(items) == ITEMS and {i["status"] for i in items.values()} == {"finished"}
    by_feed = [i for i in items.values() if i["feed_id"]]
    assert len(by_feed) >= ITEMS - 200
    assert {i["feed_id"] for i in by_feed} == {r["feed_id"] for r in feeds_created()}
    assert all(i["feed_message_id"] and i["request_id"] for i in by_feed)
    (urgent_item,) = items_of(stack, urgent).values()
    assert urgent_item["feed_id"] is None and urgent_item["request_id"]
    case = stack.api_get("/api/support-case", reference=by_feed[0]["reference"], marketplace_id="ATVPDKIKX0DER")
    assert case["api"] == "Feeds API" and by_feed[0]["feed_id"] in case["text"]
