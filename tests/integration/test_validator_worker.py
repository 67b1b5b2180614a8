"""The validator worker over a Kafka-protocol broker: Avro in, ListingReady / ValidationFailed out,
undecodable input dead-lettered, metrics on the registry."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.consumer_loop import StopSignal
from catalog_sync.runtime.events import item_key, new_header
from catalog_sync.runtime.topics import CATALOG_ITEM_CHANGED, LISTING_READY, LISTING_VALIDATION_FAILED
from catalog_sync.validator.service import build_worker
from catalog_sync.validator.settings import ValidatorSettings
from tests.support.background import running_in_thread
from tests.support.broker import publish_raw, read_events

pytestmark = pytest.mark.kafka
US = "ATVPDKIKX0DER"


def text(value):
    return [{"value": value, "language_tag": "en_US", "marketplace_id": US}]


def value(v):
    return [{"value": v, "marketplace_id": US}]


HAIRBAND = {
    "item_name": text("Satin Headband, Blush"), "brand": text("Maple & Rye"),
    "externally_assigned_product_identifier": [{"type": "upc", "value": "036000291452", "marketplace_id": US}],
    "item_type_keyword": value("hair-bands"), "bullet_point": text("Soft satin"),
    "product_description": text("A padded satin headband."), "country_of_origin": value("CN"),
    "supplier_declared_dg_hz_regulation": value("not_applicable"), "material": text("Satin"),
    "condition_type": value("new_new"),
    "purchasable_offer": [{"currency": "USD", "marketplace_id": US, "our_price": [{"schedule": [{"value_with_tax": 9.99}]}]}],
    "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 5}],
}


def change_event(reference, attributes, **fields):
    event = {**new_header("run-7"), "mode": "test", "reference": reference, "item_type": "product",
             "operation": "upsert", "seller_id": None, "marketplace_id": US, "product_type": "HAIRBAND",
             "requirements": "LISTING", "parent_reference": None, "attributes_json": json.dumps(attributes),
             "changed_at": None}
    event.update(fields)
    return event


def test_the_worker_validates_routes_and_dead_letters(runtime_settings):
    settings = runtime_settings("validator")
    codec = AvroCodec()
    good = change_event("HB-1", HAIRBAND)
    broken = change_event("HB-2", {**HAIRBAND, "brand": None}, seller_id="A2OTHER")
    category = change_event("CAT-HAIR", {}, item_type="category")
    publish_raw(settings, CATALOG_ITEM_CHANGED, [
        (item_key("A1DEFAULT", US, "HB-1"), codec.encode("CatalogItemChanged", good)),
        (item_key("A2OTHER", US, "HB-2"), codec.encode("CatalogItemChanged", broken)),
        ("garbage", b"not avro at all"),
        (item_key("A1DEFAULT", US, "CAT-HAIR"), codec.encode("CatalogItemChanged", category)),
    ])
    registry, stop = CollectorRegistry(), StopSignal()
    worker = build_worker(settings, ValidatorSettings(default_seller_id="A1DEFAULT"), registry=registry, stop=stop)
    with running_in_thread(worker.run, stop, "validator"):
        ready = read_events(settings, LISTING_READY, 2)
        failed = read_events(settings, LISTING_VALIDATION_FAILED, 1)
        dead = read_events(settings, "validator.dlq", 1)

    by_reference = {event["reference"]: (key, event) for key, _, event in ready}
    key, listing = by_reference["HB-1"]
    assert key == "A1DEFAULT" and listing["seller_id"] == "A1DEFAULT"
    assert listing["source_event_id"] == good["event_id"] and listing["run_id"] == "run-7"
    assert json.loads(listing["attributes_json"]) == HAIRBAND and len(listing["content_hash"]) == 64
    assert by_reference["CAT-HAIR"][1]["item_type"] == "category"

    [(key, name, rejection)] = failed
    assert (key, name) == (item_key("A2OTHER", US, "HB-2"), "ValidationFailed")
    assert [(e["code"], e["path"]) for e in rejection["errors"]] == [("schema.type", "/attributes/brand")]

    [(key, _, letter)] = dead
    assert key == "garbage"

    metric = registry.get_sample_value
    assert metric("validator_events_total", {"outcome": "ready"}) == 2
    assert metric("validator_events_total", {"outcome": "invalid"}) == 1
    assert metric("validator_errors_total", {"code": "schema.type"}) == 1
