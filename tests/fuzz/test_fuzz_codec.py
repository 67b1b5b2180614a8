"""Every byte string a topic can hold either decodes into an event or raises DecodeError with a
reason the worker puts on the dead letter: random bytes, a foreign fingerprint, truncated or
padded Avro, corrupted bodies. Nothing else escapes the codec."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.runtime.codec import MARKER, AvroCodec, DecodeError
from catalog_sync.runtime.events import new_header

CODEC = AvroCodec()
FINGERPRINTS = sorted(CODEC._by_fingerprint)  # noqa: SLF001 - the wire form names them
REASONS = {"not_avro", "unknown_schema", "undecodable"}
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decodes_or_names_reason(data: bytes) -> str | None:
    """The record name, or None after checking the DecodeError is a clear one."""
    try:
        name, event = CODEC.decode(data)
    except DecodeError as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail and len(str(exc)) <= 600
        return None
    assert name in CODEC.record_names and isinstance(event, dict)
    return name


def good_change(reference: str = "HB-1", attributes_json: str = "{}") -> bytes:
    return CODEC.encode("CatalogItemChanged", {
        **new_header("run-1"), "mode": "production", "reference": reference, "item_type": "product",
        "operation": "upsert", "seller_id": None, "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
        "requirements": "LISTING", "parent_reference": None, "attributes_json": attributes_json,
        "changed_at": datetime(2026, 1, 1, tzinfo=UTC)})


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_decode_error(data):
    decodes_or_names_reason(data)


@FAST
@given(st.binary(min_size=8, max_size=8).filter(lambda fp: fp not in FINGERPRINTS), st.binary(max_size=200))
def test_a_fingerprint_no_schema_has_is_unknown_schema(fingerprint, body):
    try:
        CODEC.decode(MARKER + fingerprint + body)
    except DecodeError as exc:
        assert exc.reason == "unknown_schema" and fingerprint.hex() in exc.detail
    else:
        raise AssertionError("decoded bytes written by no known schema")


@FAST
@given(st.sampled_from(FINGERPRINTS), st.binary(max_size=400))
def test_a_known_fingerprint_with_a_random_body_decodes_or_is_undecodable(fingerprint, body):
    decodes_or_names_reason(MARKER + fingerprint + body)


@FAST
@given(st.text(max_size=50), st.data())
def test_truncated_avro_is_undecodable(reference, data):
    encoded = good_change(reference)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    try:
        CODEC.decode(encoded[:cut])
    except DecodeError as exc:
        assert exc.reason in REASONS
    else:
        raise AssertionError(f"{cut} of {len(encoded)} bytes decoded")


@FAST
@given(st.binary(min_size=1, max_size=50))
def test_trailing_bytes_after_an_event_are_undecodable(tail):
    try:
        CODEC.decode(good_change() + tail)
    except DecodeError as exc:
        assert exc.reason == "undecodable" and "trailing" in exc.detail
    else:
        raise AssertionError("trailing bytes accepted")


@FAST
@given(st.data())
def test_flipped_bytes_in_a_body_decode_or_are_undecodable(data):
    encoded = bytearray(good_change("HB-1", '{"item_name":[{"value":"Band"}]}'))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(min_value=10, max_value=len(encoded) - 1))
        encoded[at] = data.draw(st.integers(0, 255))
    decodes_or_names_reason(bytes(encoded))


def test_length_prefixes_claiming_gigabytes_are_undecodable_quickly():
    # A string length varint of ~2**62 must not make the reader allocate or hang.
    fingerprint = CODEC.latest("CatalogItemChanged").fingerprint
    huge_length = bytes([0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
    for data in (MARKER + fingerprint + huge_length, MARKER + fingerprint + b"\x01",
                 MARKER + fingerprint + bytes([0xFF] * 12)):
        assert decodes_or_names_reason(data) is None


def test_invalid_utf8_in_a_string_field_is_undecodable():
    encoded = good_change("HBXX")
    at = encoded.index(b"HBXX")
    try:
        CODEC.decode(encoded[:at] + b"\xff\xfe\xc3\x28" + encoded[at + 4:])
    except DecodeError as exc:
        assert exc.reason == "undecodable"
    else:
        raise AssertionError("invalid UTF-8 decoded")


def test_huge_strings_round_trip():
    attributes = '{"item_name":[{"value":"' + "x" * 2_000_000 + '"}]}'
    name, event = CODEC.decode(good_change("R" * 100_000, attributes))
    assert name == "CatalogItemChanged" and len(event["attributes_json"]) == len(attributes)


def test_none_and_empty_values_are_not_avro():
    for data in (None, b"", MARKER, MARKER + b"\x00" * 7, struct.pack("<Q", 1)):
        try:
            CODEC.decode(data)
        except DecodeError as exc:
            assert exc.reason == "not_avro"
        else:
            raise AssertionError(f"{data!r} decoded")
