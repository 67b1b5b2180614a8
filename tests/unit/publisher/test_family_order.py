"""A run's items leave the publisher in the order Amazon needs, keyed so a family stays together."""

from catalog_sync.publisher import family_order
from catalog_sync.runtime.events import family_key, item_key


def change(reference, item_type="product", operation="upsert", parent=None):
    return {"reference": reference, "item_type": item_type, "operation": operation, "parent_reference": parent}


def test_parents_before_their_variants_and_variant_deletes_before_everything():
    items = [change("P-1-A", "variant", parent="P-1"), change("C-1", "category"), change("P-1"),
             change("P-2-A", "variant", "delete", parent="P-2"), change("P-2", operation="delete"),
             change("P-1-B", "variant", parent="P-1")]
    assert [i["reference"] for i in family_order(items)] == ["P-2-A", "C-1", "P-1", "P-2", "P-1-A", "P-1-B"]


def test_a_variant_is_keyed_like_its_parent_and_every_other_item_like_itself():
    assert family_key("S", "M", "P-1-A", "P-1") == item_key("S", "M", "P-1") == family_key("S", "M", "P-1", None)
