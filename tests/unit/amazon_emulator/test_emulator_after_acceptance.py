"""A SKU scripted to go live late, or to develop issues after Amazon ACCEPTED it: what
getListingsItem shows over time (issue 18: ACCEPTED is not live)."""

import json
from types import SimpleNamespace

import pytest

from catalog_sync.amazon_emulator import listings
from tests.unit.amazon_emulator.test_emulator_pipeline import configured, login, put

GET = "marketplaceIds=ATVPDKIKX0DER&includedData=summaries,issues"


@pytest.fixture
def clock(monkeypatch):
    now = SimpleNamespace(t=1_000_000.0)
    monkeypatch.setattr(listings, "time", SimpleNamespace(time=lambda: now.t))
    return now


def look(emulator, token, sku):
    answer = emulator.handle("GET", f"/listings/2021-08-01/items/S1/{sku}", GET, {"x-amz-access-token": token}, b"")
    body = json.loads(answer.body)
    return body["summaries"][0]["status"], body["issues"], dict(answer.headers)["x-amzn-requestid"]


def test_a_listing_develops_an_error_issue_seconds_after_acceptance(clock):
    emulator = configured()
    token = login(emulator)[1]["access_token"]
    emulator.after_acceptance("SKU-1", issues_after_s=30)
    answer, body, _ = put(emulator, token)
    assert body["status"] == "ACCEPTED" and body["issues"] == []
    status, issues, _ = look(emulator, token, "SKU-1")
    assert status == [] and issues == []  # still being processed
    clock.t += 30
    status, issues, request_id = look(emulator, token, "SKU-1")
    assert status == []  # suppressed
    assert [(i["code"], i["severity"], i["marketplaceIds"]) for i in issues] == [("8541", "ERROR", ["ATVPDKIKX0DER"])]
    assert request_id


def test_a_listing_goes_live_after_a_delay_and_other_skus_at_once(clock):
    emulator = configured()
    token = login(emulator)[1]["access_token"]
    emulator.after_acceptance("SKU-1", seller_id="S1", live_after_s=5)
    put(emulator, token, sku="SKU-1")
    put(emulator, token, sku="SKU-2")
    assert look(emulator, token, "SKU-1")[0] == []
    assert look(emulator, token, "SKU-2")[0] == ["DISCOVERABLE"]
    clock.t += 5
    assert look(emulator, token, "SKU-1")[0] == ["DISCOVERABLE"]


def test_the_control_endpoint_refuses_a_fate_without_a_sku():
    emulator = configured()
    with pytest.raises(ValueError):
        emulator.after_acceptance("", issues_after_s=1)


def test_a_listing_can_go_live_first_and_be_suppressed_later(clock):
    emulator = configured()
    token = login(emulator)[1]["access_token"]
    emulator.after_acceptance("SKU-1", live_after_s=0, issues_after_s=60)
    put(emulator, token)
    assert look(emulator, token, "SKU-1")[:2] == (["DISCOVERABLE"], [])
    clock.t += 60
    assert look(emulator, token, "SKU-1")[0] == []
