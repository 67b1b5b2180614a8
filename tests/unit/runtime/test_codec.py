import io
import json
import struct
from datetime import UTC, datetime
from importlib import resources

import fastavro
import pytest
from fastavro.schema import to_parsing_canonical_form

from catalog_sync.runtime.codec import MARKER, AvroCodec, DecodeError, crc64_avro, load_schema_versions
from catalog_sync.runtime.events import new_header

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def sample_events() -> dict[str, dict]:
    item = {
        "reference": "HB-1001", "item_type": "product", "operation": "upsert", "seller_id": "A3SELLER",
        "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND", "requirements": "LISTING",
        "parent_reference": None, "attributes_json": '{"item_name":[{"value":"Band"}]}', "changed_at": NOW,
    }
    return {
        "CatalogItemChanged": {**new_header("run-1"), "mode": "production", **item},
        "RunOpened": {**new_header("run-1"), "mode": "test", "endpoint": "test", "started_at": NOW,
                      "next_run_at": None, "source": "catalog.jsonl"},
        "RunClosed": {**new_header("run-1"), "item_count": 3, "closed_at": NOW},
        "ValidationFailed": {**new_header("run-1"), "mode": "production", "source_event_id": "e1",
                             "reference": "HB-1", "item_type": "variant", "seller_id": None,
                             "marketplace_id": "ATVPDKIKX0DER",
                             "errors": [{"code": "schema.required", "message": "m", "path": "/attributes/brand"}]},
        "ListingReady": {**new_header("run-1"), "mode": "preview", "source_event_id": "e1", **item,
                         "content_hash": "ab" * 32},
        "SubmissionCompleted": {
            **new_header("run-1"), "mode": "production", "endpoint": "production", "source_event_id": "e2",
            "reference": "HB-1", "item_type": "product", "operation": "upsert", "seller_id": "S",
            "marketplace_id": "ATVPDKIKX0DER", "outcome": "invalid", "status": "error", "http_status": 200,
            "amazon_status": "INVALID", "request_id": "r2", "attempt_request_ids": ["r1", "r2"],
            "submission_id": "sub", "issues": [{"code": "90220", "message": "'brand' is required",
                                                 "severity": "ERROR", "attribute_names": ["brand"],
                                                 "categories": ["MISSING_ATTRIBUTE"]}],
            "error_code": None, "error_message": None, "attempts": 2, "latency_ms": 812.5,
            "content_hash": None, "feed_id": "50012345678", "feed_message_id": 7,
            "create_feed_request_id": "r-cf", "get_feed_request_id": "r-gf", "feed_processing_status": "DONE"},
        "DeadLetter": {**new_header(None), "service": "validator", "topic": "catalog.item.changed",
                       "partition": 1, "offset": 42, "key": b"k", "value": b"\x00\xff", "reason": "not_avro",
                       "error": "marker missing"},
    }


def test_every_schema_file_parses_and_documents_every_field():
    versions = load_schema_versions()
    assert len(versions) >= 8
    for version in versions:
        schema = json.loads((resources.files("catalog_sync.schemas") / f"{_stem(version)}").read_text())
        assert schema.get("doc"), version.record_name
        for field in schema["fields"]:
            assert field.get("doc"), f"{version.record_name}.{field['name']} has no doc"


def _stem(version):
    for entry in resources.files("catalog_sync.schemas").iterdir():
        if entry.name.endswith(f".v{version.version}.avsc") and json.loads(entry.read_text())["name"] == version.record_name:
            return entry.name
    raise AssertionError(version)


@pytest.mark.parametrize("record_name", sorted(sample_events()))
def test_round_trip(record_name):
    codec = AvroCodec()
    event = sample_events()[record_name]
    data = codec.encode(record_name, event)
    assert data[:2] == MARKER
    assert data[2:10] == codec.latest(record_name).fingerprint
    assert codec.decode(data) == (record_name, event)


def test_fingerprint_is_crc64_avro_of_the_canonical_form_little_endian():
    codec = AvroCodec()
    version = codec.latest("RunClosed")
    canonical = to_parsing_canonical_form(version.parsed)
    assert version.fingerprint == struct.pack("<Q", crc64_avro(canonical.encode()))
    # fastavro's own implementation agrees (it prints the little-endian bytes in hex)
    assert version.fingerprint.hex() == fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")


def test_a_record_written_with_the_older_schema_is_read_by_the_newer_one():
    codec = AvroCodec()
    v1 = next(v for v in load_schema_versions() if v.record_name == "CatalogItemChanged" and v.version == 1)
    old = dict(sample_events()["CatalogItemChanged"])
    old.pop("requirements")
    data = codec.encode("CatalogItemChanged", old, version=v1)
    name, event = codec.decode(data)
    assert name == "CatalogItemChanged"
    assert event["requirements"] == "LISTING"  # the field v2 added, filled from its default
    assert event["reference"] == "HB-1001"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_avro"),
        (b'{"reference": "json, not avro"}', "not_avro"),
        (MARKER + b"\x00" * 8 + b"body", "unknown_schema"),
    ],
)
def test_bad_bytes_are_a_decode_error_with_a_reason(data, reason):
    with pytest.raises(DecodeError) as caught:
        AvroCodec().decode(data)
    assert caught.value.reason == reason


def test_truncated_and_padded_bodies_are_undecodable():
    codec = AvroCodec()
    data = codec.encode("RunClosed", sample_events()["RunClosed"])
    for broken in (data[:-3], data + b"\x01\x02"):
        with pytest.raises(DecodeError) as caught:
            codec.decode(broken)
        assert caught.value.reason == "undecodable"


def test_every_older_version_is_readable_by_its_successor():
    versions = load_schema_versions()
    by_record: dict[str, list] = {}
    for version in versions:
        by_record.setdefault(version.record_name, []).append(version)
    checked = 0
    for record_versions in by_record.values():
        record_versions.sort(key=lambda v: v.version)
        for older, newer in zip(record_versions, record_versions[1:], strict=False):
            # fastavro raises SchemaResolutionError when the newer schema cannot read the older one
            sample = sample_events()[older.record_name]
            fields = {f["name"] for f in older.parsed["fields"]}
            data = io.BytesIO()
            fastavro.schemaless_writer(data, older.parsed, {k: v for k, v in sample.items() if k in fields})
            data.seek(0)
            fastavro.schemaless_reader(data, older.parsed, newer.parsed)
            checked += 1
    assert checked >= 1
