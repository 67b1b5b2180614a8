import json

import pytest

from catalog_sync.publisher import read_catalog

ITEM = {"reference": "HB-1", "item_type": "product", "marketplace_id": "ATVPDKIKX0DER", "product_type": "HAIRBAND",
        "attributes": {"item_name": [{"value": "Band", "language_tag": "en_US"}]}}


def test_jsonl_items_in_order_and_bad_lines_by_number(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join([
        json.dumps(ITEM),
        "",
        "{not json",
        json.dumps({**ITEM, "reference": "HB-2"}),
        json.dumps({"reference": "HB-3", "item_type": "gadget", "marketplace_id": "ATVPDKIKX0DER"}),
    ]) + "\n")
    catalog = read_catalog(path)
    assert [i["reference"] for i in catalog.items] == ["HB-1", "HB-2"]
    assert [p.line_no for p in catalog.problems] == [3, 5]
    assert "not valid JSON" in catalog.problems[0].describe()
    assert "'item_type' must be one of category, product, variant" in catalog.problems[1].describe()


def test_csv_with_attribute_json_column(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(
        "reference,item_type,marketplace_id,product_type,parent_reference,attributes\n"
        'CAT-1,category,ATVPDKIKX0DER,HAIRBAND,,\n'
        'HB-1,product,ATVPDKIKX0DER,HAIRBAND,,"{""item_name"": [{""value"": ""Band""}]}"\n'
        'HB-1-RED,variant,ATVPDKIKX0DER,HAIRBAND,,\n'
        'HB-2,product,ATVPDKIKX0DER,HAIRBAND,,"{broken"\n'
    )
    catalog = read_catalog(path)
    assert [i["reference"] for i in catalog.items] == ["CAT-1", "HB-1"]
    assert json.loads(catalog.items[1]["attributes_json"]) == {"item_name": [{"value": "Band"}]}
    assert [p.line_no for p in catalog.problems] == [4, 5]
    assert "parent_reference" in catalog.problems[0].describe()


def test_csv_with_an_unknown_column_is_rejected_at_the_header(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text("reference,colour\nHB-1,red\n")
    catalog = read_catalog(path)
    assert catalog.items == []
    assert catalog.problems[0].line_no == 1
    assert "colour" in catalog.problems[0].describe()


def test_non_utf8_file_is_a_clear_error(tmp_path):
    path = tmp_path / "catalog.jsonl"
    path.write_bytes(b'{"reference": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="not UTF-8"):
        read_catalog(path)
