"""`publish --changed-only`: which items of a file are dropped as already finished at Amazon."""

import csv
import json

from catalog_sync.publisher import change_hash, drop_unchanged, read_catalog

US = "ATVPDKIKX0DER"
ITEMS = [
    {"reference": "HB-1", "item_type": "product", "seller_id": "A1SELLER", "marketplace_id": US,
     "product_type": "HAIRBAND", "attributes": {"item_name": [{"value": "Band", "language_tag": "en_US"}],
                                                "brand": [{"value": "Acme"}]}},
    {"reference": "HB-2", "item_type": "product", "marketplace_id": US, "product_type": "HAIRBAND",
     "attributes": {"item_name": [{"value": "Clip"}]}},
    {"reference": "HB-3", "item_type": "product", "seller_id": "A1SELLER", "marketplace_id": US,
     "operation": "delete"},
]


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def write_csv(path, items):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["reference", "item_type", "operation", "seller_id",
                                                    "marketplace_id", "product_type", "attributes"])
        writer.writeheader()
        for i in items:
            # Other key order and spacing than the JSONL file: the hash is of the content.
            attributes = json.dumps(dict(reversed(list(i.get("attributes", {}).items()))), indent=1)
            writer.writerow({**i, "attributes": attributes})
    return path


def finished_store(items, default_seller):
    """What the read store would answer after these items finished: key -> hash, and the keys asked."""
    stored = {f"{f['seller_id'] or default_seller}|{f['marketplace_id']}|{f['reference']}": change_hash(f)
              for f in items}
    asked = []

    def lookup(keys):
        asked.append(list(keys))
        return {k: stored[k] for k in keys if k in stored}

    return stored, asked, lookup


def test_items_equal_to_what_finished_are_dropped_from_jsonl_and_csv(tmp_path):
    finished = read_catalog(write_jsonl(tmp_path / "before.jsonl", ITEMS)).items
    edited = json.loads(json.dumps(ITEMS))
    edited[0]["attributes"]["brand"][0]["value"] = "Acme Labs"
    edited.append({**ITEMS[1], "reference": "HB-4"})  # never finished
    for path in (write_jsonl(tmp_path / "now.jsonl", edited), write_csv(tmp_path / "now.csv", edited)):
        catalog = read_catalog(path)
        assert not catalog.problems
        _, asked, lookup = finished_store(finished, "DEFAULTSELLER")
        kept, skipped = drop_unchanged(catalog.items, lookup, "DEFAULTSELLER")
        assert [f["reference"] for f in kept] == ["HB-1", "HB-4"], path.name
        assert skipped == 2
        assert len(asked) == 1 and "DEFAULTSELLER|ATVPDKIKX0DER|HB-2" in asked[0]  # one batched lookup


def test_a_delete_after_an_upsert_and_a_different_seller_are_changes(tmp_path):
    finished = read_catalog(write_jsonl(tmp_path / "before.jsonl", ITEMS[:2])).items
    now = [{**ITEMS[0], "operation": "delete"}, {**ITEMS[1], "seller_id": "A2OTHER"}]
    _, _, lookup = finished_store(finished, "DEFAULTSELLER")
    kept, skipped = drop_unchanged(read_catalog(write_jsonl(tmp_path / "now.jsonl", now)).items, lookup,
                                   "DEFAULTSELLER")
    assert (len(kept), skipped) == (2, 0)
