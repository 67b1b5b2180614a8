"""The JSON contract (interfaces.md §1) on input of any shape: parse_change answers fields that
encode as a CatalogItemChanged, or contract errors; `publish`'s file reader names every bad line.
Nothing raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_sync.publisher import read_catalog
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.contract import FIELDS, parse_change
from catalog_sync.runtime.events import new_header

CODEC = AvroCodec()
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as json.loads can produce it: lone surrogates come from \ud800 escapes.
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=30)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
                           max_leaves=15)
good_values = {
    "reference": st.just("HB-1"), "item_type": st.sampled_from(["product", "variant", "category"]),
    "operation": st.sampled_from(["upsert", "delete"]), "seller_id": st.just("A3SELLER"),
    "marketplace_id": st.just("ATVPDKIKX0DER"), "product_type": st.just("HAIRBAND"),
    "requirements": st.just("LISTING"), "parent_reference": st.just("HB-0"),
    "attributes": st.just({"item_name": [{"value": "Band"}]}), "changed_at": st.just("2026-01-01T00:00:00Z"),
}

GOOD = {"reference": "HB-1", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND"}


@st.composite
def change_objects(draw):
    """Contract objects where any field may be missing, well-formed, or of any JSON type."""
    obj = {}
    for name in FIELDS:
        choice = draw(st.sampled_from(["absent", "good", "any"]))
        if choice == "good":
            obj[name] = draw(good_values[name])
        elif choice == "any":
            obj[name] = draw(json_values)
    obj.update(draw(st.dictionaries(any_text, json_values, max_size=2)))
    return obj


def check_answer(obj, line_no=7):
    fields, errors = parse_change(obj, line_no)
    if fields is None:
        assert errors, "rejected without a reason"
        for error in errors:
            assert error.code.startswith("contract.") and error.message and isinstance(error.path, str)
            assert len(error.message) <= 400
    else:
        assert errors == []
        event = {**new_header("run-1"), "mode": "production", **fields}
        name, decoded = CODEC.decode(CODEC.encode("CatalogItemChanged", event))  # what publish sends
        assert decoded["reference"] == fields["reference"]
        assert json.loads(decoded["attributes_json"]) == (obj.get("attributes") or {})
    return fields, errors


@FAST
@given(json_values)
def test_any_json_value_is_an_object_or_a_contract_error(value):
    fields, errors = check_answer(value)
    if not isinstance(value, dict):
        assert [e.code for e in errors] == ["contract.not_object"]


@FAST
@given(change_objects())
def test_objects_with_fields_of_any_type_get_contract_errors_or_encodable_fields(obj):
    check_answer(obj)


@FAST
@given(st.sampled_from(FIELDS), st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2),
                                          st.dictionaries(st.text(), st.integers(), max_size=2)), st.data())
def test_a_wrong_type_in_a_field_is_named(name, wrong, data):
    obj = {k: data.draw(good_values[k]) for k in FIELDS}
    if name == "attributes" and isinstance(wrong, dict):
        wrong = [wrong]
    obj[name] = wrong
    fields, errors = check_answer(obj)
    assert fields is None and any(e.path == f"/{name}" for e in errors)


def test_lone_surrogates_are_a_contract_error_not_a_publish_crash():
    obj = json.loads('{"reference": "HB-\\ud800", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER", '
                     '"product_type": "HAIRBAND", "attributes": {"item_name": [{"value": "\\udfff"}]}}')
    fields, errors = check_answer(obj)
    assert fields is None and {e.path for e in errors} >= {"/reference", "/attributes"}


@pytest.mark.parametrize("changed_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-14:00", "2026-02-30",
                                        "2026-01-01T25:00", "\u0660\u0661", "Z"])
def test_extreme_and_broken_times(changed_at):
    fields, errors = check_answer({**GOOD, "changed_at": changed_at})
    assert fields is None and [e.path for e in errors] == ["/changed_at"]


def test_huge_strings_and_deep_attributes():
    huge = {"reference": "R" * 1_000_000, "item_type": "product", "marketplace_id": "ATVPDKIKX0DER",
            "product_type": "HAIRBAND", "attributes": {"item_name": [{"value": "v" * 1_000_000}]}}
    check_answer(huge)
    deep: dict = {}
    node = deep
    for _ in range(5_000):
        node["a"] = {}
        node = node["a"]
    fields, errors = check_answer({**huge, "reference": "HB-1", "attributes": deep})
    assert fields is None and [e.path for e in errors] == ["/attributes"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.binary(max_size=60), json_values.map(lambda v: json.dumps(v).encode()),
                                change_objects().map(lambda o: json.dumps(o).encode())), min_size=1, max_size=6))
def test_publish_reads_any_file_naming_every_bad_line(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("catalog") / "catalog.jsonl"
    path.write_bytes(b"\n".join(line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines) + b"\n")
    try:
        catalog = read_catalog(path)
    except ValueError as exc:  # the file is not UTF-8: named as such, nothing published
        assert "not UTF-8" in str(exc)
        return
    for problem in catalog.problems:  # the command prints FILE:LINE: description
        assert 1 <= problem.line_no <= len(lines) and problem.describe()
    for fields in catalog.items:
        CODEC.encode("CatalogItemChanged", {**new_header(None), "mode": "test", **fields})


def test_publish_names_a_line_nested_deeper_than_json_can_go(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    catalog = read_catalog(path)
    assert [p.line_no for p in catalog.problems] == [2]
