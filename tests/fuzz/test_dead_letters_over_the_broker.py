"""The validator worker over a Kafka-protocol broker, fed garbage mixed with good events: every
bad message lands in validator.dlq with its reason and its original key and bytes, and every good
event around it is still validated and routed."""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest
from prometheus_client import CollectorRegistry

from catalog_sync.runtime.bus import BusConsumer
from catalog_sync.runtime.codec import MARKER, AvroCodec
from catalog_sync.runtime.consumer_loop import StopSignal
from catalog_sync.runtime.events import new_header
from catalog_sync.runtime.topics import CATALOG_ITEM_CHANGED, LISTING_READY, LISTING_VALIDATION_FAILED
from catalog_sync.validator.service import build_worker
from catalog_sync.validator.settings import ValidatorSettings
from tests.support.background import running_in_thread
from tests.support.broker import publish_raw

pytestmark = pytest.mark.kafka
US = "ATVPDKIKX0DER"
CODEC = AvroCodec()


def change(reference: str, attributes_json: str = "{}", **fields) -> bytes:
    event = {**new_header("run-9"), "mode": "test", "reference": reference, "item_type": "category",
             "operation": "upsert", "seller_id": "A1SELLER", "marketplace_id": US, "product_type": "HAIRBAND",
             "requirements": "LISTING", "parent_reference": None, "attributes_json": attributes_json,
             "changed_at": None, **fields}
    return CODEC.encode("CatalogItemChanged", event)


def garbage() -> dict[str, tuple[bytes, str]]:
    """key -> (value, reason the worker must give)."""
    rng = random.Random(7)
    good = change("GOOD-TEMPLATE")
    run_opened = CODEC.encode("RunOpened", {**new_header("run-9"), "mode": "test", "endpoint": "test",
                                            "started_at": new_header(None)["event_time"], "next_run_at": None,
                                            "source": "x"})
    found = {
        "random-bytes": (bytes(rng.randrange(256) for _ in range(64)), "not_avro"),
        "json-instead-of-avro": (b'{"reference": "HB-1"}', "not_avro"),
        "unknown-fingerprint": (MARKER + b"\x00" * 8 + b"\x02ab", "unknown_schema"),
        "truncated": (good[: len(good) // 2], "undecodable"),
        "trailing-bytes": (good + b"\x00\x01", "undecodable"),
        "just-the-marker": (MARKER, "not_avro"),
        "huge-random": (MARKER + good[2:10] + bytes(rng.randrange(256) for _ in range(200_000)), "undecodable"),
        "wrong-record": (run_opened, "unexpected_schema"),
    }
    at = good.index(b"GOOD-TEMPLATE")
    found["invalid-utf8"] = (good[:at] + b"\xff\xfe\xfd\xfc" + good[at + 4:], "undecodable")
    return found


def read_outputs(settings, expected: dict[str, int], timeout_s: float = 60.0) -> dict[str, list[dict]]:
    """Events of several topics through one consumer (one group join instead of one per topic)."""
    consumer = BusConsumer(settings, [settings.topic(t) for t in expected], group_id=f"reader-{uuid.uuid4().hex[:8]}")
    found: dict[str, list[dict]] = {t: [] for t in expected}
    deadline = time.monotonic() + timeout_s
    try:
        while any(len(found[t]) < n for t, n in expected.items()):
            assert time.monotonic() < deadline, {t: len(v) for t, v in found.items()}
            for record in consumer.poll(timeout_ms=200):
                found[record.topic.removeprefix(settings.topic_prefix)].append(CODEC.decode(record.value)[1])
    finally:
        consumer.close()
    return found


def test_garbage_is_dead_lettered_with_reason_and_bytes_and_good_events_flow_on(runtime_settings):
    settings = runtime_settings("validator")
    bad = garbage()
    good = {
        "GOOD-1": change("GOOD-1"),
        "GOOD-DEEP": change("GOOD-DEEP", '{"a":' * 600 + "1" + "}" * 600, item_type="product"),
        "GOOD-NOT-JSON": change("GOOD-NOT-JSON", "{not json", item_type="product"),
        "GOOD-ODD-NAMES": change("GOOD-ODD-NAMES", json.dumps({"²": [{"value": 1}], "brand": [None, None]}),
                                 item_type="product"),
        "GOOD-2": change("GOOD-2"),
    }
    messages = [(key, value) for key, (value, _) in bad.items()] + list(good.items())
    random.Random(3).shuffle(messages)
    publish_raw(settings, CATALOG_ITEM_CHANGED, messages)

    stop = StopSignal()
    worker = build_worker(settings, ValidatorSettings(default_seller_id="A1SELLER"), registry=CollectorRegistry(),
                          stop=stop)
    with running_in_thread(worker.run, stop, "validator"):
        out = read_outputs(settings, {"validator.dlq": len(bad), LISTING_READY: 2, LISTING_VALIDATION_FAILED: 3})

    dead, ready, failed = out["validator.dlq"], out[LISTING_READY], out[LISTING_VALIDATION_FAILED]
    letters = {event["key"].decode(): event for event in dead}
    assert set(letters) == set(bad)
    for key, (value, reason) in bad.items():
        letter = letters[key]
        assert letter["reason"] == reason, (key, letter["error"])
        assert letter["value"] == value, f"{key}: the original bytes are not kept"
        assert letter["error"] and letter["service"] == "validator"
        assert letter["topic"].endswith(CATALOG_ITEM_CHANGED) and letter["offset"] >= 0

    assert sorted(e["reference"] for e in ready) == ["GOOD-1", "GOOD-2"]
    codes = {e["reference"]: {x["code"] for x in e["errors"]} for e in failed}
    assert codes["GOOD-DEEP"] == {"attributes.too_deep"}
    assert codes["GOOD-NOT-JSON"] == {"attributes.not_json"}
    assert "schema.required" in codes["GOOD-ODD-NAMES"]
